//! The static files of the UI, compiled into the binary: the style sheet, the one script, the
//! icon. No build step: what is in `src/ui/assets/` is what the browser gets.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Every static file: name, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "kloud.css",
        "text/css; charset=utf-8",
        include_str!("assets/kloud.css"),
    ),
    (
        "kloud.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/kloud.js"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
];

/// `GET /ui/static/{file}` (no session needed: nothing here is secret).
pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
