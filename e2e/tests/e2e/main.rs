//! End-to-end tests: one binary, run by `cargo xtask test` against a freshly
//! started local platform.

// A failed expectation in a test should panic with the value that broke it.
#![allow(clippy::unwrap_used)]

mod authz;
mod credentials;
mod health;
mod identity;
mod nodes;
mod tokens;
mod tokens_pat;
mod ui;
