//! Hetzner's error envelope:
//! `{"error":{"code":"...","message":"...","details":{...}}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
}

impl ApiError {
    pub(crate) fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "unable to authenticate".into(),
            details: json!({}),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            details: json!({}),
        }
    }

    /// Request body is not JSON at all.
    pub(crate) fn json_error(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "json_error",
            message: message.into(),
            details: json!({}),
        }
    }

    /// Field-level validation failures, one `(field, messages)` per field.
    pub(crate) fn invalid_fields(fields: Vec<(String, Vec<String>)>) -> Self {
        let message = match fields.as_slice() {
            [(name, messages)] => {
                format!("invalid input in field '{name}': {}", messages.join(", "))
            }
            _ => format!(
                "invalid input in fields {}",
                fields
                    .iter()
                    .map(|(n, _)| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let fields: Vec<Value> = fields
            .into_iter()
            .map(|(name, messages)| json!({ "name": name, "messages": messages }))
            .collect();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_input",
            message,
            details: json!({ "fields": fields }),
        }
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_input",
            message: message.into(),
            details: json!({}),
        }
    }

    pub(crate) fn uniqueness(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "uniqueness_error",
            message: message.into(),
            details: json!({ "fields": [{ "name": field }] }),
        }
    }

    pub(crate) fn locked(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::LOCKED,
            code: "locked",
            message: message.into(),
            details: json!({}),
        }
    }

    pub(crate) fn server_error(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "server_error",
            message: message.into(),
            details: json!({}),
        }
    }
}

impl ApiError {
    /// An injected 5xx, with the code Hetzner uses for `status`.
    pub(crate) fn injected_server_error(status: StatusCode, message: String) -> Self {
        let code = match status.as_u16() {
            503 => "unavailable",
            504 => "timeout",
            _ => "server_error",
        };
        ApiError {
            status,
            code,
            message,
            details: json!({}),
        }
    }

    /// Hetzner's 429 (headers are the caller's).
    pub(crate) fn rate_limit_exceeded(message: String) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limit_exceeded",
            message,
            details: json!({}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        (self.status, Json(body)).into_response()
    }
}
