//! The web UI: static files compiled into the binary and served by `serve` itself (no separate
//! front-end server, no build step, nothing fetched from the network). The page is a set of native
//! ES modules that talk to the JSON API with a bearer token like any other client; serving them
//! needs no authentication.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the UI under `/ui/`: name, content type, body. A new module needs a row here.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../ui/app.css"),
    ),
    ("main.js", JS, include_str!("../ui/main.js")),
    ("api.js", JS, include_str!("../ui/api.js")),
    ("dom.js", JS, include_str!("../ui/dom.js")),
    ("router.js", JS, include_str!("../ui/router.js")),
    ("faces.js", JS, include_str!("../ui/faces.js")),
    ("page-login.js", JS, include_str!("../ui/page-login.js")),
    ("page-home.js", JS, include_str!("../ui/page-home.js")),
    ("page-course.js", JS, include_str!("../ui/page-course.js")),
    ("page-session.js", JS, include_str!("../ui/page-session.js")),
    ("page-review.js", JS, include_str!("../ui/page-review.js")),
];

const INDEX_HTML: &str = include_str!("../ui/index.html");

/// Only this origin's scripts and styles; images also from `blob:` (photos are fetched with the
/// token and shown as object URLs).
const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

pub fn routes() -> Router<AppState> {
    let mut router =
        Router::new().route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)));
    for &(name, content_type, body) in ASSETS {
        router = router.route(
            &format!("/ui/{name}"),
            get(move || asset(content_type, body)),
        );
    }
    router
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// Every module a module imports is served: a missing row would break the page at load.
    #[test]
    fn every_imported_module_is_served() {
        for (name, _, body) in ASSETS {
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let Some(from) = line.split("from \"./").nth(1) else {
                    continue;
                };
                let target = from.split('"').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == target),
                    "{name} imports {target}, which is not served"
                );
            }
        }
    }
}
