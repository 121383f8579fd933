//! The error answers every operation of the OpenAPI document can give, added to the document
//! after the routes are collected, so that each route lists them without repeating them by hand.
//!
//! A client (or schemathesis) reading the document must find every status the server can send:
//! 400 where there is a parameter or a body to refuse, 401 on every protected route, 413/415 on
//! every body, 404 wherever a path names an object, 429 on login, and 500/503 everywhere.

use utoipa::openapi::path::Operation;
use utoipa::openapi::{
    ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder, ResponsesBuilder, Schema,
};

/// One shared error answer: its status, the name of its `components.responses` entry, and what
/// it means, with the `error_type`s it carries.
struct ErrorAnswer {
    status: &'static str,
    name: &'static str,
    description: &'static str,
}

const BAD_REQUEST: ErrorAnswer = ErrorAnswer {
    status: "400",
    name: "ValidationError",
    description: "`ValidationError`: a parameter or the body is malformed, of the wrong type, out \
                  of range or names an unknown field; `details.field` names the field when there is one.",
};
const UNAUTHORIZED: ErrorAnswer = ErrorAnswer {
    status: "401",
    name: "Unauthorized",
    description: "`Unauthorized`: no bearer token, or one that is malformed, unknown, expired or revoked.",
};
const FORBIDDEN: ErrorAnswer = ErrorAnswer {
    status: "403",
    name: "Forbidden",
    description: "`Forbidden`: the action needs the admin role.",
};
const NOT_FOUND: ErrorAnswer = ErrorAnswer {
    status: "404",
    name: "NotFound",
    description: "`NotFound`: no such object, or one the caller may not see.",
};
const TOO_LARGE: ErrorAnswer = ErrorAnswer {
    status: "413",
    name: "PayloadTooLarge",
    description: "`PayloadTooLarge`: the body is larger than this route accepts.",
};
const MEDIA_TYPE: ErrorAnswer = ErrorAnswer {
    status: "415",
    name: "UnsupportedMediaType",
    description: "`UnsupportedMediaType`: the body is not of the content type this route accepts.",
};
const TOO_MANY: ErrorAnswer = ErrorAnswer {
    status: "429",
    name: "TooManyRequests",
    description: "`TooManyRequests`: too many failed attempts; retry after the `Retry-After` seconds.",
};
const INTERNAL: ErrorAnswer = ErrorAnswer {
    status: "500",
    name: "Internal",
    description: "`Internal`: an unexpected failure; the server log has it under the request id.",
};
const UNAVAILABLE: ErrorAnswer = ErrorAnswer {
    status: "503",
    name: "Unavailable",
    description: "The server cannot do this now: `Overloaded` or `StorageUnavailable` (retry after \
                  `Retry-After` seconds; a refused write changed nothing), or `ModelNotAvailable`.",
};

const ALL: [&ErrorAnswer; 9] = [
    &BAD_REQUEST,
    &UNAUTHORIZED,
    &FORBIDDEN,
    &NOT_FOUND,
    &TOO_LARGE,
    &MEDIA_TYPE,
    &TOO_MANY,
    &INTERNAL,
    &UNAVAILABLE,
];

/// Adds the shared error answers to `components.responses` and each operation's missing ones.
/// An operation keeps the answers its own annotation documents (with their own descriptions).
pub fn document_errors(openapi: &mut OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    for answer in ALL {
        let content = ContentBuilder::new()
            .schema(Some(RefOr::<Schema>::Ref(Ref::from_schema_name(
                "ErrorBody",
            ))))
            .build();
        let response = ResponseBuilder::new()
            .description(answer.description)
            .content("application/json", content)
            .build();
        components
            .responses
            .insert(answer.name.to_owned(), RefOr::T(response));
    }
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            add_errors(path, operation);
        }
    }
}

fn add_errors(path: &str, operation: &mut Operation) {
    let has_body = operation.request_body.is_some();
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    // Public routes say `security(())`: one requirement that names no scheme.
    let public = operation
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
    let mut answers = vec![&INTERNAL];
    if has_parameters || has_body {
        answers.push(&BAD_REQUEST);
    }
    if !public {
        answers.push(&UNAUTHORIZED);
    }
    if path.starts_with("/api/auth/users/") {
        answers.push(&FORBIDDEN);
    }
    if path.contains('{') {
        answers.push(&NOT_FOUND);
    }
    if has_body {
        answers.extend([&TOO_LARGE, &MEDIA_TYPE]);
    }
    if path == "/api/auth/login/" {
        answers.push(&TOO_MANY);
    }
    // Any request can meet storage that fails (even a read records its token's use).
    answers.push(&UNAVAILABLE);
    let mut responses = ResponsesBuilder::new();
    for answer in answers {
        if !operation.responses.responses.contains_key(answer.status) {
            responses = responses.response(
                answer.status,
                RefOr::<utoipa::openapi::Response>::Ref(Ref::from_response_name(answer.name)),
            );
        }
    }
    operation
        .responses
        .responses
        .extend(responses.build().responses);
}
