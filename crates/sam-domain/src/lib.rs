//! Pure domain rules of SAM.
//!
//! Nothing here performs I/O or reads a clock: callers pass `now` (Unix
//! milliseconds) and randomness in, so every rule runs the same natively and
//! in the wasm Worker and is tested with plain `cargo test`.

pub mod accounts;
pub mod acp_session;
pub mod agents;
pub mod catalog;
pub mod chat;
pub mod hosts;
pub mod ids;
pub mod lifecycle;
pub mod node;
pub mod projects;
pub mod task;
pub mod tokens;
pub mod workspace;

/// Unix time in milliseconds, as handed in by the edge (`Date::now()` in the
/// Worker, the system clock in native binaries).
pub type UnixMillis = i64;
