//! devgithub: a local stand-in for GitHub.
//!
//! The control plane reaches it only through base-URL settings
//! (`GITHUB_WEB_URL`, `GITHUB_API_URL`, both this server), so its surface
//! speaks GitHub's wire formats: the OAuth web flow with its quirks, REST
//! JSON shapes and error bodies, GitHub App JWTs and installation tokens,
//! and HMAC-signed webhooks. Users, organizations, repositories and
//! installations live in `state.json`; `/_devgithub/…` seeds and changes
//! them for tests. Every repository also has a bare git repository under
//! `git/` in the state directory, served over git's smart HTTP protocol at
//! its `clone_url` (`git`), so clone, fetch and push work with installation
//! and OAuth tokens, and pushes move the branches the REST API reports and
//! send `push` webhooks.
//!
//! The library exposes [`DevGitHub`] (state, webhook queue and the axum
//! router) so tests can drive it without a binary; `main.rs` only adds the
//! CLI, the listening socket and signal handling. Pull requests
//! (`api::pulls`) join branches of one repository (no forks); opening,
//! listing, reading, editing and closing them is emulated, merging is not.

mod admin;
mod api;
mod avatars;
mod changes;
mod clock;
mod config;
mod devgithub;
mod git;
mod hooks;
mod html;
mod ids;
mod install;
mod oauth;
mod pull_page;
mod render;
mod server;
mod state;

pub use config::{AppConfig, Config, WebhookConfig};
pub use devgithub::{DevGitHub, StartError};
