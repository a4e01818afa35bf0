//! Storage ports.
//!
//! The control plane's SQL lives here, written once, and runs unchanged on
//! Cloudflare D1 (through the Worker's adapter) and on SQLite (rusqlite, in
//! native tests that apply the real `migrations/`). Repositories speak to a
//! tiny [`SqlDatabase`] port: positional `?` parameters in, rows as JSON
//! objects out, which is exactly what D1 offers.

mod agent_credentials;
mod credentials;
mod nodes;
mod projects;
mod sealed;
mod sessions;
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod tasks;
mod tokens;
mod users;
mod workspaces;

pub use agent_credentials::{AgentCredentialRecord, AgentCredentialRepository};
pub use credentials::{CloudCredentialRecord, CredentialRepository};
pub use nodes::{NodeRecord, NodeRepository};
pub use projects::{
    InstallationLink, InstallationRepository, ProjectInsertError, ProjectRecord, ProjectRepository,
    ProjectUpdate,
};
pub use sessions::{SessionRecord, SessionRepository};
pub use sql::{Row, SqlDatabase, SqlValue, StoreError};
pub use tasks::{TaskRecord, TaskRepository, TaskStatusChange, WaitingOn};
pub use tokens::{TokenRecord, TokenRepository};
pub use users::{GithubProfile, UserRecord, UserRepository};
pub use workspaces::{
    WorkspaceEventRecord, WorkspaceInsertError, WorkspaceRecord, WorkspaceRepository,
};
