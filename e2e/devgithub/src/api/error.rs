//! GitHub's REST error body: `{"message", "documentation_url", "status"}`,
//! plus `errors` for 422 `Validation Failed` and `url` for 301 moves.

use axum::Json;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::Refusal;

/// The generic documentation link GitHub puts on most errors.
pub(crate) const DOCS: &str = "https://docs.github.com/rest";

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    documentation_url: &'static str,
    // Boxed: a rare field, and it keeps every `Result<_, ApiError>` small.
    errors: Option<Box<Value>>,
    /// Target of a 301, both in `Location` and in the body's `url`.
    moved_to: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            documentation_url: DOCS,
            errors: None,
            moved_to: None,
        }
    }

    pub(crate) fn docs(mut self, url: &'static str) -> Self {
        self.documentation_url = url;
        self
    }

    /// No credentials on an endpoint that needs them.
    pub(crate) fn requires_authentication() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Requires authentication")
    }

    /// A token that is unknown, revoked or expired.
    pub(crate) fn bad_credentials() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Bad credentials")
    }

    /// An app JWT that fails verification (bad signature, wrong `iss`, garbage).
    pub(crate) fn jwt(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }

    pub(crate) fn bad_json() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Problems parsing JSON")
    }

    /// 422 with GitHub's `errors` array.
    pub(crate) fn validation(errors: Value) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
        e.errors = Some(Box::new(errors));
        e
    }

    /// 422 without field details (GitHub uses this for semantic refusals).
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub(crate) fn moved_permanently(url: String) -> Self {
        let mut e = Self::new(StatusCode::MOVED_PERMANENTLY, "Moved Permanently")
            .docs("https://docs.github.com/rest/repos/repos#get-a-repository");
        e.moved_to = Some(url);
        e
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotFound(_) => ApiError::not_found(),
            Refusal::Invalid {
                resource,
                field,
                code,
                message,
            } => ApiError::validation(json!([{
                "resource": resource,
                "code": code,
                "field": field,
                "message": message,
            }])),
            Refusal::Custom { resource, message } => ApiError::validation(json!([{
                "resource": resource,
                "code": "custom",
                "message": message,
            }])),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "message": self.message,
            "documentation_url": self.documentation_url,
            "status": self.status.as_u16().to_string(),
        });
        if let Some(errors) = self.errors {
            body["errors"] = *errors;
        }
        if let Some(url) = &self.moved_to {
            body["url"] = Value::String(url.clone());
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(location) = self.moved_to.and_then(|u| HeaderValue::from_str(&u).ok()) {
            response.headers_mut().insert(LOCATION, location);
        }
        response
    }
}
