//! Ports over the Worker bindings, shared with the Durable Objects (see
//! `sam_durable_objects::platform::ports` and `sam_durable_objects::runtime`).

pub use sam_durable_objects::d1::D1Sql;
pub use sam_durable_objects::now_ms;
pub use sam_durable_objects::platform::ports::*;
pub use sam_durable_objects::runtime::{
    FetchHttp, FetchHttpNoRedirects, WorkerRetryRuntime, random_u128,
};
