//! The API's one error type: an HTTP status plus a stable code and a safe message.

use sam_wire::ErrorBody;
use worker::Response;

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (rate limits).
    pub retry_after: Option<i64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(404, "not_found", "no such resource")
    }

    pub fn unauthenticated() -> Self {
        Self::new(401, "unauthenticated", "sign in first")
    }

    /// An unexpected failure: the details go to the log, not to the client.
    pub fn internal(context: &str, detail: &dyn std::fmt::Display) -> Self {
        worker::console_error!("{context}: {detail}");
        Self::new(
            500,
            "internal_error",
            format!("{context} failed; see the server log"),
        )
    }

    pub fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
        };
        let mut response = json_response(self.status, &body);
        if let Some(secs) = self.retry_after {
            let _ = response.headers_mut().set("retry-after", &secs.to_string());
        }
        response
    }
}

/// A JSON response that cannot fail to build (serialising our own types
/// cannot fail; if it somehow did, the client still gets valid JSON).
pub fn json_response<T: serde::Serialize>(status: u16, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| {
        br#"{"code":"internal_error","message":"could not encode the response"}"#.to_vec()
    });
    let mut response = Response::builder().with_status(status).fixed(body);
    let _ = response
        .headers_mut()
        .set("content-type", "application/json; charset=utf-8");
    response
}

impl From<sam_control::ControlError> for ApiError {
    fn from(e: sam_control::ControlError) -> Self {
        match e {
            sam_control::ControlError::Store(inner) => Self::internal("storage", &inner),
            other => Self::new(other.status(), other.code(), other.to_string()),
        }
    }
}

impl From<sam_store::StoreError> for ApiError {
    fn from(e: sam_store::StoreError) -> Self {
        Self::internal("storage", &e)
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        Self::internal("runtime", &e)
    }
}
