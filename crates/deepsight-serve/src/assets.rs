//! The page and the shipped sample images, embedded in the binary (the server reads no file).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// The sample images the page offers, by name.
pub const SAMPLES: [(&str, &[u8]); 2] = [
    ("dog.jpg", include_bytes!("../../../samples/dog.jpg")),
    (
        "grace_hopper.jpg",
        include_bytes!("../../../samples/grace_hopper.jpg"),
    ),
];

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX.as_bytes())
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS.as_bytes())
}

pub async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS.as_bytes())
}

pub async fn sample(Path(name): Path<String>) -> Response {
    match SAMPLES.iter().find(|(n, _)| *n == name) {
        Some((_, bytes)) => asset("image/jpeg", bytes),
        None => crate::error::ApiError::new(StatusCode::NOT_FOUND, "no such sample").into_response(),
    }
}
