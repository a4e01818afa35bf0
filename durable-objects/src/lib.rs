//! Durable Object classes.
//!
//! Each class is a thin adapter: decode the request, load state from the
//! object's SQLite storage, call pure domain code, persist, and set at most
//! one alarm. Classes live in this library and are linked into the API
//! Worker's wasm module, which is what exports them to the runtime.

pub mod d1;
pub mod env;
pub mod platform;
mod node_lifecycle;
pub mod runtime;
mod schema;

pub use node_lifecycle::{BootEvent, NodeLifecycle, WakeRequest};

/// The runtime's clock in Unix milliseconds: the only clock wasm code reads;
/// everything below the adapters takes time as a parameter.
pub fn now_ms() -> i64 {
    i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX)
}
