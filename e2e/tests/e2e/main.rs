//! End-to-end tests: one binary, run by `cargo xtask test` against a freshly
//! started local platform.

mod health;
mod nodes;
mod tokens;
mod ui;
