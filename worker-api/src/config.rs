//! Typed configuration: shared with the Durable Objects (see
//! `sam_durable_objects::platform::config`); its errors become API errors.

pub use sam_durable_objects::platform::config::*;

impl From<ConfigError> for crate::error::ApiError {
    fn from(e: ConfigError) -> Self {
        Self::new(e.status, e.code, e.message)
    }
}
