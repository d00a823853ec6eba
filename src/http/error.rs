//! `HttpError`: every failure an endpoint can report, rendered like Nomad renders errors —
//! the status code plus a plain-text body holding the message.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Content type Nomad sets on error bodies.
pub const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// Message Nomad returns for a verb an endpoint does not support.
pub const INVALID_METHOD: &str = "Invalid method";

/// Message returned for paths no route matches (Go's `http.NotFound` text).
pub const PAGE_NOT_FOUND: &str = "404 page not found";

/// An error returned by a handler or extractor; the variant picks the status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// 400: the request is malformed or fails validation.
    #[error("{0}")]
    BadRequest(String),
    /// 403: missing or insufficient ACL token.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown resource.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists but not for this verb.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 413: the request body exceeds the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 500: a real internal fault (never bad input).
    #[error("{0}")]
    Internal(String),
    /// Any other status with its message.
    #[error("{1}")]
    Status(StatusCode, String),
}

impl HttpError {
    /// 400 with a message.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    /// 403 with Nomad's wording for a denied request.
    pub fn permission_denied() -> Self {
        Self::Forbidden("Permission denied".to_string())
    }

    /// 404 with a message.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }

    /// 405 with Nomad's "Invalid method" body.
    pub fn invalid_method() -> Self {
        Self::MethodNotAllowed(INVALID_METHOD.to_string())
    }

    /// 413 with a fixed message.
    pub fn payload_too_large() -> Self {
        Self::PayloadTooLarge("Request body too large".to_string())
    }

    /// 500 with a message; use only for faults the client cannot fix.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }

    /// The status code this error is rendered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Status(code, _) => *code,
        }
    }

    /// Classifies a body decoding failure: syntax, type and shape problems are the client's.
    pub fn from_body_decode(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        match err.classify() {
            // An I/O error while decoding from an in-memory buffer cannot be the client's fault.
            Category::Io => Self::internal(format!("Failed to read request body: {err}")),
            Category::Syntax | Category::Data | Category::Eof => {
                Self::bad_request(format!("Failed to decode request body: {err}"))
            }
        }
    }
}

/// Renders the error as Nomad does: status plus a plain-text message body.
impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(%status, error = %self, "request failed");
        } else {
            tracing::debug!(%status, error = %self, "request failed");
        }
        let mut resp = (status, self.to_string()).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PLAIN_TEXT));
        resp
    }
}

impl From<serde_json::Error> for HttpError {
    fn from(err: serde_json::Error) -> Self {
        Self::from_body_decode(&err)
    }
}

impl From<serde_path_to_error::Error<serde_json::Error>> for HttpError {
    fn from(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match Self::from_body_decode(&inner) {
            // Name the field ("Job.TaskGroups[0].Count: invalid type ...") when there is one.
            Self::BadRequest(_) if path != "." && !path.is_empty() => {
                Self::bad_request(format!("Failed to decode request body: {path}: {inner}"))
            }
            other => other,
        }
    }
}

impl From<BytesRejection> for HttpError {
    fn from(rej: BytesRejection) -> Self {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::payload_too_large()
        } else {
            Self::bad_request(format!("Failed to read request body: {}", rej.body_text()))
        }
    }
}

impl From<JsonRejection> for HttpError {
    fn from(rej: JsonRejection) -> Self {
        match rej.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large(),
            // Missing content type, syntax and data errors are all the client's to fix.
            _ => Self::bad_request(format!(
                "Failed to decode request body: {}",
                rej.body_text()
            )),
        }
    }
}

impl From<QueryRejection> for HttpError {
    fn from(rej: QueryRejection) -> Self {
        Self::bad_request(format!("Invalid query string: {}", rej.body_text()))
    }
}

impl From<PathRejection> for HttpError {
    fn from(rej: PathRejection) -> Self {
        // A path that matched a route but whose segments fail to parse is still bad input;
        // only a missing path-params extension (a routing bug) is ours.
        match rej {
            PathRejection::MissingPathParams(_) => Self::internal(rej.body_text()),
            _ => Self::bad_request(format!("Invalid path: {}", rej.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn render(err: HttpError) -> (StatusCode, String, String) {
        let resp = err.into_response();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn variants_map_to_status_and_plain_text() {
        let cases = [
            (HttpError::bad_request("bad"), 400),
            (HttpError::permission_denied(), 403),
            (HttpError::not_found("job not found"), 404),
            (HttpError::invalid_method(), 405),
            (HttpError::payload_too_large(), 413),
            (HttpError::internal("boom"), 500),
            (HttpError::Status(StatusCode::CONFLICT, "c".into()), 409),
        ];
        for (err, code) in cases {
            let msg = err.to_string();
            let (status, ctype, body) = render(err).await;
            assert_eq!(status.as_u16(), code);
            assert_eq!(ctype, PLAIN_TEXT);
            assert_eq!(body, msg);
        }
    }

    #[test]
    fn json_errors_are_client_errors() {
        let syntax = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let e = HttpError::from(syntax);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().starts_with("Failed to decode request body: "));

        let data = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        assert_eq!(HttpError::from(data).status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn path_to_error_names_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Job {
            #[serde(rename = "Priority")]
            priority: u32,
        }
        let mut de = serde_json::Deserializer::from_str(r#"{"Priority":"high"}"#);
        let err = serde_path_to_error::deserialize::<_, Job>(&mut de).unwrap_err();
        let e = HttpError::from(err);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("Priority: invalid type"), "{e}");
    }
}
