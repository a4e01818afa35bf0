//! Durable Object classes.
//!
//! Each class is a thin adapter: decode the request, load state from the
//! object's SQLite storage, call pure domain code, persist, and set at most
//! one alarm. Classes live in this library and are linked into the API
//! Worker's wasm module, which is what exports them to the runtime.

mod chat_search;
pub mod d1;
pub mod env;
mod node_lifecycle;
pub mod platform;
pub mod project_data;
pub mod runtime;
mod schema;
pub mod task_runner;

pub use node_lifecycle::{BootEvent, NodeLifecycle, WakeRequest};
pub use project_data::ProjectData;
pub use task_runner::TaskRunner;

/// The runtime's clock in Unix milliseconds: the only clock wasm code reads;
/// everything below the adapters takes time as a parameter.
pub fn now_ms() -> i64 {
    i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX)
}

/// workers-rs reads an `i64` alarm time as an offset from now, not as an
/// absolute time; this converts our absolute deadlines.
pub(crate) async fn set_alarm_at(state: &worker::State, at_ms: i64) -> worker::Result<()> {
    state.storage().set_alarm((at_ms - now_ms()).max(0)).await
}
