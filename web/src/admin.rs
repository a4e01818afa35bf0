//! Account administration.

use askama::Template;

use crate::time::{self, When};
use crate::{RenderError, Viewer, asset_version};

/// One account in the admin list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub login: String,
    /// Display name from GitHub, if any.
    pub name: Option<String>,
    /// `user`, `admin` or `superadmin`.
    pub role: String,
    /// `active`, `pending` or `suspended`.
    pub status: String,
    /// Epoch milliseconds.
    pub created_at: i64,
}

/// All accounts, with approve / suspend / reactivate buttons as each
/// account's status allows. The viewer's own row has none (the API refuses
/// actions on one's own account), nor does a superadmin's suspend.
pub fn render_admin_users_page(
    viewer: &Viewer,
    users: &[UserRow],
    version: &str,
    now_ms: i64,
) -> Result<String, RenderError> {
    let page = AdminUsersPage {
        title: "Users",
        version,
        asset_version: asset_version(),
        active_nav: "admin",
        viewer: Some(viewer),
        pending: users.iter().filter(|u| u.status == "pending").count(),
        users: users
            .iter()
            .map(|u| UserView::new(u, viewer, now_ms))
            .collect(),
    };
    Ok(page.render()?)
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct AdminUsersPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    pending: usize,
    users: Vec<UserView<'a>>,
}

struct UserView<'a> {
    row: &'a UserRow,
    status_class: &'static str,
    created: When,
    /// The action offered, if any.
    action: Option<UserAction>,
    is_viewer: bool,
}

/// An admin action button.
struct UserAction {
    /// Last path segment: `/api/admin/users/{id}/{path}`.
    path: &'static str,
    label: &'static str,
    /// Suspending asks for confirmation and looks dangerous.
    danger: bool,
}

impl UserAction {
    const APPROVE: Self = Self {
        path: "approve",
        label: "Approve",
        danger: false,
    };
    const SUSPEND: Self = Self {
        path: "suspend",
        label: "Suspend",
        danger: true,
    };
    const REACTIVATE: Self = Self {
        path: "reactivate",
        label: "Reactivate",
        danger: false,
    };
}

impl<'a> UserView<'a> {
    fn new(row: &'a UserRow, viewer: &Viewer, now_ms: i64) -> Self {
        let is_viewer = row.login == viewer.login;
        let action = match (row.status.as_str(), row.role.as_str()) {
            _ if is_viewer => None,
            ("pending", _) => Some(UserAction::APPROVE),
            ("active", "superadmin") => None,
            ("active", _) => Some(UserAction::SUSPEND),
            ("suspended", _) => Some(UserAction::REACTIVATE),
            _ => None,
        };
        UserView {
            row,
            status_class: match row.status.as_str() {
                "active" => "status-active",
                "pending" => "status-pending",
                "suspended" => "status-suspended",
                _ => "status-unknown",
            },
            created: time::when(row.created_at, now_ms),
            action,
            is_viewer,
        }
    }
}
