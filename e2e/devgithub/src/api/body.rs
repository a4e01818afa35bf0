//! JSON request bodies with GitHub's errors: 400 `Problems parsing JSON`
//! for malformed JSON, 422 for well-formed JSON of the wrong shape. An
//! empty body reads as `{}`, as GitHub treats optional bodies.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::ApiError;

#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::bad_json())?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text).map(JsonBody).map_err(|e| {
            if e.is_data() {
                ApiError::unprocessable(format!("Invalid request.\n\n{e}"))
            } else {
                ApiError::bad_json()
            }
        })
    }
}
