//! What the API Worker and the Durable Objects both build on: typed
//! configuration and ports over the Worker bindings. The Durable Objects
//! that act (the task runner) need the same settings and ports as a
//! request handler, so they live here rather than in the Worker.

pub mod config;
pub mod github;
pub mod ports;
