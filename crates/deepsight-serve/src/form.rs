//! The multipart form of `/api/explain` and `/api/classify` into an upload and a typed request.
//! Every field is checked here or by the pipeline; none is ever used as a file path.

use crate::error::ApiError;
use axum::extract::Multipart;
use axum::http::StatusCode;
use deepsight_pipeline::{Classes, ExplainRequest};
use deepsight_render::Colormap;

/// An uploaded image: its bytes and the name to give it in messages.
pub struct Upload {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The form's image, request and job id.
pub struct Form {
    pub image: Upload,
    pub request: ExplainRequest,
    pub job: Option<String>,
}

fn multipart_error(e: axum::extract::multipart::MultipartError, limit: usize) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            format!("upload over the limit of {limit} bytes (see --max-upload)"),
        )
    } else {
        ApiError::new(status, format!("malformed form: {}", e.body_text()))
    }
}

/// A display name for an upload: printable, short, never a path.
fn display_name(file_name: Option<&str>) -> String {
    let name: String = file_name
        .unwrap_or("upload")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("upload")
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    format!("image '{name}'")
}

/// Reads the whole form; `limit` is the upload limit (for the message).
pub async fn read(mut multipart: Multipart, limit: usize) -> Result<Form, ApiError> {
    let mut image = None;
    let mut request = ExplainRequest {
        methods: Vec::new(),
        ..ExplainRequest::default()
    };
    let (mut classes, mut top, mut job) = (Vec::new(), None, None);
    let mut fields = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "image" {
            let file = display_name(field.file_name());
            let bytes = field.bytes().await.map_err(|e| multipart_error(e, limit))?;
            image = Some(Upload {
                name: file,
                bytes: bytes.to_vec(),
            });
            continue;
        }
        let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
        fields.push((name, text));
    }
    // The whole form is read before any field is judged, so that a refusal never closes the
    // connection while the client is still sending.
    for (name, text) in &fields {
        let text = text.trim();
        let number = |what: &str| -> Result<usize, ApiError> {
            text.parse()
                .map_err(|_| ApiError::bad(format!("{what} '{text}': not a class index (a whole number)")))
        };
        match name.as_str() {
            "methods" => {
                request.methods = text
                    .split(',')
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty())
                    .collect()
            }
            "class" => classes.push(number("class")?),
            "top" => top = Some(number("top")?),
            "layer" if !text.is_empty() => request.layer = Some(text.to_string()),
            "layer" => {}
            "colormap" => {
                request.drawing.colormap = match text {
                    "jet" => Colormap::Jet,
                    "turbo" => Colormap::Turbo,
                    "viridis" => Colormap::Viridis,
                    _ => {
                        return Err(ApiError::bad(format!(
                            "colormap '{text}': expected jet, turbo or viridis"
                        )));
                    }
                }
            }
            "alpha" => {
                request.drawing.alpha = text
                    .parse()
                    .ok()
                    .filter(|a: &f32| (0.0..=1.0).contains(a))
                    .ok_or_else(|| ApiError::bad(format!("alpha '{text}': expected a number in 0..1")))?
            }
            "probability" => request.probability = matches!(text, "true" | "on" | "1" | "yes"),
            "job" => {
                let ok = !text.is_empty()
                    && text.len() <= 64
                    && text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok {
                    return Err(ApiError::bad("job: expected 1 to 64 letters, digits, '-' or '_'"));
                }
                job = Some(text.to_string());
            }
            option => request.settings.set(option, text)?,
        }
    }
    let Some(image) = image else {
        return Err(ApiError::bad("no 'image' field: upload an image file"));
    };
    request.classes = match (classes.is_empty(), top) {
        (false, Some(_)) => return Err(ApiError::bad("give either class or top, not both")),
        (false, None) => Classes::Given(classes),
        (true, t) => Classes::Top(t.unwrap_or(1)),
    };
    Ok(Form { image, request, job })
}

/// Reads a form that holds only an image (`/api/classify`).
pub async fn read_image_only(mut multipart: Multipart, limit: usize) -> Result<Upload, ApiError> {
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        if field.name() == Some("image") {
            let name = display_name(field.file_name());
            let bytes = field.bytes().await.map_err(|e| multipart_error(e, limit))?;
            return Ok(Upload {
                name,
                bytes: bytes.to_vec(),
            });
        }
    }
    Err(ApiError::bad("no 'image' field: upload an image file"))
}
