//! The served OpenAPI document describes what the handlers really take and answer: every write
//! that reads a body declares it, every operation lists the errors it can give, and the
//! parameters' documented limits are the ones enforced.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;

use attendansee_store::Role;
use common::{TestApp, app};

/// The POST/PUT/PATCH operations whose handlers read no body. Every other write must declare its
/// `requestBody`; the test checks this list against both the document and the handlers.
const BODYLESS: [(&str, &str); 8] = [
    ("POST", "/api/auth/logout/"),
    ("POST", "/api/attendance/courses/{id}/clusters/recluster/"),
    ("POST", "/api/attendance/face-crops/{id}/not-a-student/"),
    ("POST", "/api/attendance/face-crops/{id}/reset/"),
    ("POST", "/api/attendance/face-crops/{id}/undo/"),
    ("POST", "/api/attendance/jobs/{id}/cancel/"),
    ("POST", "/api/attendance/sessions/{id}/assign/"),
    ("POST", "/api/attendance/sessions/{id}/process/"),
];

const PUBLIC: [(&str, &str); 3] = [
    ("POST", "/api/auth/login/"),
    ("GET", "/api/health/"),
    ("GET", "/metrics"),
];

struct Operation {
    method: String,
    path: String,
    op: Value,
}

async fn document(t: &TestApp, token: &str) -> Value {
    let schema = t.get("/api/schema/", token).await;
    assert_eq!(schema.status, StatusCode::OK);
    schema.body
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    op: op.clone(),
                });
            }
        }
    }
    assert!(
        ops.len() > 50,
        "the document lists only {} operations",
        ops.len()
    );
    ops
}

/// A path template with every parameter replaced by an id that exists nowhere.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| {
            if part.starts_with('{') {
                "987654"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_write_that_reads_a_body_declares_its_request_body() {
    let t = app().await;
    let (_, token) = t.user("root", Role::Admin).await;
    let doc = document(&t, &token).await;
    let bodyless: BTreeSet<(String, String)> = BODYLESS
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let mut writes = BTreeSet::new();
    let mut missing = Vec::new();
    for Operation { method, path, op } in operations(&doc) {
        if !["POST", "PUT", "PATCH"].contains(&method.as_str()) {
            continue;
        }
        writes.insert((method.clone(), path.clone()));
        let declared = op.get("requestBody").is_some();
        let listed = bodyless.contains(&(method.clone(), path.clone()));
        if declared == listed {
            missing.push(format!(
                "{method} {path}: requestBody {}, BODYLESS {}",
                if declared { "declared" } else { "missing" },
                if listed {
                    "lists it"
                } else {
                    "does not list it"
                }
            ));
        }
        if declared {
            let content = op["requestBody"]["content"].as_object().unwrap();
            assert!(
                content.contains_key("application/json")
                    || content.contains_key("multipart/form-data"),
                "{method} {path}: {content:?}"
            );
            assert_eq!(op["requestBody"]["required"], true, "{method} {path}");
        }

        // The handlers agree: one that reads a body refuses a request without one (400 or 415)
        // before it looks anything up; one that reads none goes on to look for the object, which
        // does not exist (404). Logout reads none but would end this token, so it is not called.
        if path == "/api/auth/logout/" {
            continue;
        }
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(concrete(&path))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = t.send(request).await;
        let refused_for_the_body = [StatusCode::BAD_REQUEST, StatusCode::UNSUPPORTED_MEDIA_TYPE]
            .contains(&response.status);
        assert_eq!(
            refused_for_the_body, !listed,
            "{method} {path} without a body answered {} {}",
            response.status, response.body
        );
        if listed {
            assert_eq!(response.status, StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    let stale: Vec<_> = bodyless.difference(&writes).collect();
    assert!(
        stale.is_empty(),
        "BODYLESS names unknown operations: {stale:?}"
    );
}

/// The `$ref`'d response, or the response itself.
fn resolve<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            &doc["components"]["responses"][name]
        }
        None => response,
    }
}

#[tokio::test]
async fn every_operation_documents_its_error_answers_as_the_error_body() {
    let t = app().await;
    let (_, token) = t.user("root", Role::Admin).await;
    let doc = document(&t, &token).await;
    let mut problems = Vec::new();
    for Operation { method, path, op } in operations(&doc) {
        let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
        let has_parameters = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
        let has_body = op.get("requestBody").is_some();
        let mut expected = vec!["500", "503"];
        if !public {
            expected.push("401");
        }
        if path.contains('{') {
            expected.push("404");
        }
        if has_parameters || has_body {
            expected.push("400");
        }
        if has_body {
            expected.extend(["413", "415"]);
        }
        if path == "/api/auth/login/" {
            expected.push("429");
        }
        if path.starts_with("/api/auth/users/") {
            expected.push("403");
        }
        let responses = op["responses"].as_object().unwrap();
        for status in expected {
            match responses.get(status) {
                None => problems.push(format!("{method} {path}: no {status}")),
                // Health answers its degraded report with its own body.
                Some(_) if path == "/api/health/" && status == "503" => {}
                Some(response) => {
                    let schema = &resolve(&doc, response)["content"]["application/json"]["schema"];
                    if schema["$ref"] != "#/components/schemas/ErrorBody" {
                        problems.push(format!("{method} {path} {status}: {schema}"));
                    }
                }
            }
        }
        if public == op["security"].is_null() {
            problems.push(format!("{method} {path}: security {}", op["security"]));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The error types the answers can carry include login's.
    let types = doc["components"]["schemas"]["ErrorType"]["enum"]
        .as_array()
        .unwrap();
    assert!(types.contains(&Value::from("TooManyRequests")), "{types:?}");
}

/// Each bounded parameter documents its bounds, and the server enforces exactly them.
#[tokio::test]
async fn parameter_limits_are_documented_and_are_the_enforced_ones() {
    let t = app().await;
    let (_, token) = t.user("root", Role::Admin).await;
    let doc = document(&t, &token).await;
    let parameter = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"))["schema"]
            .clone()
    };
    let paged = [
        "/api/attendance/courses/",
        "/api/attendance/students/",
        "/api/attendance/sessions/",
        "/api/attendance/jobs/",
        "/api/auth/users/",
        "/api/attendance/sessions/{id}/face-crops/",
    ];
    for path in paged {
        assert_eq!(parameter(path, "page")["minimum"], 1, "{path}");
        assert_eq!(parameter(path, "page")["maximum"], 2147483647_i64, "{path}");
        assert_eq!(parameter(path, "page_size")["minimum"], 1, "{path}");
        assert_eq!(parameter(path, "page_size")["maximum"], 500, "{path}");
    }
    let similar = "/api/attendance/face-crops/{id}/similar/";
    assert_eq!(parameter(similar, "k")["minimum"], 1);
    assert_eq!(parameter(similar, "k")["maximum"], 100);

    // The bounds are the server's: just inside is accepted, just outside refused.
    for (query, status) in [
        ("page=1&page_size=500", StatusCode::OK),
        ("page=1&page_size=1", StatusCode::OK),
        ("page=0", StatusCode::BAD_REQUEST),
        ("page_size=0", StatusCode::BAD_REQUEST),
        ("page_size=501", StatusCode::BAD_REQUEST),
    ] {
        let r = t
            .get(&format!("/api/attendance/courses/?{query}"), &token)
            .await;
        assert_eq!(r.status, status, "{query}: {}", r.body);
    }
    for (k, status) in [
        ("0", StatusCode::BAD_REQUEST),
        ("101", StatusCode::BAD_REQUEST),
    ] {
        let r = t
            .get(
                &format!("/api/attendance/face-crops/1/similar/?k={k}"),
                &token,
            )
            .await;
        assert_eq!(r.status, status, "k={k}: {}", r.body);
    }
}
