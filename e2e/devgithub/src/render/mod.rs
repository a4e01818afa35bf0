//! GitHub's JSON shapes for the things in the world. Every URL inside is
//! absolute and points at this server (`base`), since it serves both the
//! web and the API host.

mod account;
mod app;
mod pull;
mod repo;

pub(crate) use account::{private_user, simple_user};
pub(crate) use app::{app, bot_id, bot_user, installation};
pub(crate) use pull::{pull, pull_author};
pub(crate) use repo::{branch_full, branch_short, repo, repo_minimal};
