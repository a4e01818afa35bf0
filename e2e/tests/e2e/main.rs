//! End-to-end tests: one binary, run by `cargo xtask test` against a freshly
//! started local platform.

// A failed expectation in a test should panic with the value that broke it.
#![allow(clippy::unwrap_used)]

mod agent_keys;
mod authz;
mod bench;
mod bench_tasks;
mod browser;
mod chaos;
mod credentials;
mod files;
mod health;
mod identity;
mod leaks;
mod nodes;
mod outbox_restart;
mod ports;
mod projects;
mod sweep;
mod tasks;
mod terminals;
mod token_scope;
mod tokens;
mod tokens_pat;
mod ui;
mod ui_pages;
mod ui_tasks;
mod ui_workspace;
mod vault;
mod warm_pool;
mod workspaces;
