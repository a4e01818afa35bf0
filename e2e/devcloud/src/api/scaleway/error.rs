//! Scaleway's error body: `{"type": "...", "message": "...", ...}` with
//! type-specific extra fields.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug)]
pub(crate) struct ScwError {
    status: StatusCode,
    body: Value,
}

impl ScwError {
    /// Missing, wrong or unconfigured secret key.
    pub(crate) fn denied_authentication() -> Self {
        ScwError {
            status: StatusCode::UNAUTHORIZED,
            body: json!({
                "type": "denied_authentication",
                "method": "api_key",
                "reason": "not_found",
                "message": "authentication is denied (method: api_key, reason: not_found)",
            }),
        }
    }

    /// The key is valid but has no access to the requested project.
    pub(crate) fn permissions_denied() -> Self {
        ScwError {
            status: StatusCode::FORBIDDEN,
            body: json!({
                "type": "permissions_denied",
                "message": "insufficient permissions",
                "details": [{ "resource": "instance_server", "action": "read" }],
            }),
        }
    }

    pub(crate) fn not_found(resource: &str, id: &str) -> Self {
        ScwError {
            status: StatusCode::NOT_FOUND,
            body: json!({
                "type": "not_found",
                "resource": resource,
                "resource_id": id,
                "message": "resource is not found",
            }),
        }
    }

    pub(crate) fn route_not_found() -> Self {
        ScwError {
            status: StatusCode::NOT_FOUND,
            body: json!({ "type": "not_found", "message": "route not found" }),
        }
    }

    /// One entry per bad argument: `(argument_name, help_message)`.
    pub(crate) fn invalid_arguments(args: Vec<(String, String)>) -> Self {
        let details: Vec<Value> = args
            .into_iter()
            .map(|(name, help)| {
                json!({ "argument_name": name, "reason": "constraint", "help_message": help })
            })
            .collect();
        ScwError {
            status: StatusCode::BAD_REQUEST,
            body: json!({
                "type": "invalid_arguments",
                "message": "invalid argument(s)",
                "details": details,
            }),
        }
    }

    pub(crate) fn invalid_argument(name: &str, help: impl Into<String>) -> Self {
        Self::invalid_arguments(vec![(name.to_owned(), help.into())])
    }

    /// The older Instance API's 400, still used for state preconditions
    /// ("server should be stopped").
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        ScwError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "type": "invalid_request_error", "message": message.into() }),
        }
    }

    /// The resource is between two states; retry later.
    pub(crate) fn transient_state(resource: &str, id: &str, state: &str) -> Self {
        ScwError {
            status: StatusCode::CONFLICT,
            body: json!({
                "type": "transient_state",
                "resource": resource,
                "resource_id": id,
                "current_state": state,
                "message": format!("resource is in a transient state: {state}"),
            }),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ScwError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: json!({ "type": "internal_error", "message": message.into() }),
        }
    }
}

impl ScwError {
    /// Scaleway's 429 (headers are the caller's).
    pub(crate) fn too_many_requests(message: &str) -> Self {
        ScwError {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: json!({ "type": "too_many_requests", "message": message }),
        }
    }

    /// An injected 5xx.
    pub(crate) fn injected_server_error(status: StatusCode, message: &str) -> Self {
        let error_type = if status == StatusCode::SERVICE_UNAVAILABLE {
            "service_unavailable"
        } else {
            "internal_error"
        };
        ScwError {
            status,
            body: json!({ "type": error_type, "message": message }),
        }
    }
}

impl IntoResponse for ScwError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
