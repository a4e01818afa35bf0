//! Rules about user accounts: names, roles, approval, who may do what.

use serde::{Deserialize, Serialize};

/// What a user may administer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
    /// The first real user; can do everything an admin can and cannot be
    /// suspended by one.
    Superadmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Superadmin => "superadmin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Role::User, Role::Admin, Role::Superadmin]
            .into_iter()
            .find(|r| r.as_str() == raw)
    }

    pub fn is_admin(self) -> bool {
        matches!(self, Role::Admin | Role::Superadmin)
    }
}

/// Whether an account may use the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    /// Signed up while approval is required; waits for an admin.
    Pending,
    Suspended,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Pending => "pending",
            AccountStatus::Suspended => "suspended",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            AccountStatus::Active,
            AccountStatus::Pending,
            AccountStatus::Suspended,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// Role and status of a newly signed-up account: the first real user runs
/// the platform; later ones wait for approval when the deployment asks for it.
pub fn new_account(is_first_user: bool, approval_required: bool) -> (Role, AccountStatus) {
    if is_first_user {
        (Role::Superadmin, AccountStatus::Active)
    } else if approval_required {
        (Role::User, AccountStatus::Pending)
    } else {
        (Role::User, AccountStatus::Active)
    }
}

/// An admin action on another account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    Approve,
    Suspend,
    Reactivate,
}

/// Why an admin action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("only admins can manage accounts")]
    NotAdmin,
    #[error("you cannot change your own account this way")]
    OwnAccount,
    #[error("a superadmin can only be changed by a superadmin")]
    Superadmin,
    #[error("the account is {}, so it cannot be {action}", .status.as_str())]
    WrongStatus {
        status: AccountStatus,
        action: &'static str,
    },
}

impl AdminError {
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NotAdmin => "forbidden",
            AdminError::OwnAccount => "own_account",
            AdminError::Superadmin => "superadmin_protected",
            AdminError::WrongStatus { .. } => "invalid_account_transition",
        }
    }
}

/// The status `target` gets when `actor` applies `action` to it.
pub fn apply_admin_action(
    actor_role: Role,
    actor_is_target: bool,
    target_role: Role,
    target_status: AccountStatus,
    action: AdminAction,
) -> Result<AccountStatus, AdminError> {
    use AccountStatus as S;
    if !actor_role.is_admin() {
        return Err(AdminError::NotAdmin);
    }
    if actor_is_target {
        return Err(AdminError::OwnAccount);
    }
    if target_role == Role::Superadmin && actor_role != Role::Superadmin {
        return Err(AdminError::Superadmin);
    }
    let (allowed, next, verb) = match action {
        AdminAction::Approve => (target_status == S::Pending, S::Active, "approved"),
        AdminAction::Suspend => (target_status != S::Suspended, S::Suspended, "suspended"),
        AdminAction::Reactivate => (target_status == S::Suspended, S::Active, "reactivated"),
    };
    if allowed {
        Ok(next)
    } else {
        Err(AdminError::WrongStatus {
            status: target_status,
            action: verb,
        })
    }
}

/// CSRF defence for cookie-authenticated state changes: the browser's
/// `Origin` (or, failing that, `Referer`) must be one of ours. Safe methods
/// need no check; a request with neither header is refused, since every
/// browser sends `Origin` on cross-site POSTs.
pub fn same_origin_request(
    method: &str,
    origin: Option<&str>,
    referer: Option<&str>,
    allowed: &[&str],
) -> bool {
    if matches!(method, "GET" | "HEAD" | "OPTIONS") {
        return true;
    }
    let claimed = origin.map(str::to_owned).or_else(|| {
        let referer = referer?;
        let scheme_end = referer.find("://")? + 3;
        let path_start = referer[scheme_end..]
            .find('/')
            .map_or(referer.len(), |i| i + scheme_end);
        Some(referer[..path_start].to_owned())
    });
    claimed.is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(&o)))
}

/// Whether `login` is a valid account name (GitHub's rules: 1-39
/// alphanumerics or single hyphens, not at either end).
pub fn valid_login(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= 39
        && !login.starts_with('-')
        && !login.ends_with('-')
        && !login.contains("--")
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The session id in a `Cookie` header's `name` cookie: 64 lowercase hex
/// characters, or nothing. More than one cookie of that name is nothing
/// too: a page on a sibling host (a workspace's forwarded port serves
/// anyone's content on the same site) can set a second one with a longer
/// path or a `Domain`, which browsers send first, to sign the user into
/// the page author's account ("cookie tossing"); refusing the ambiguity
/// signs the user out instead.
pub fn session_cookie_value(header: &str, name: &str) -> Option<String> {
    let mut values = header.split(';').filter_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        (key == name).then_some(value)
    });
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    (value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then(|| value.to_owned())
}

/// The temporary developer sign-in exists only for local development: it
/// signs anyone in as any account, so it is refused unless the platform
/// runs under `localhost` (or a name under it) *and* the deployment
/// turned it on.
pub fn dev_login_allowed(enabled: bool, base_domain: &str) -> bool {
    let base = base_domain.trim_end_matches('.').to_ascii_lowercase();
    enabled && (base == "localhost" || base.ends_with(".localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_user_runs_the_platform_and_later_ones_may_wait() {
        assert_eq!(
            new_account(true, true),
            (Role::Superadmin, AccountStatus::Active)
        );
        assert_eq!(
            new_account(false, true),
            (Role::User, AccountStatus::Pending)
        );
        assert_eq!(
            new_account(false, false),
            (Role::User, AccountStatus::Active)
        );
    }

    #[test]
    fn admin_actions_follow_roles_and_statuses() {
        use AccountStatus as S;
        let ok = apply_admin_action(
            Role::Admin,
            false,
            Role::User,
            S::Pending,
            AdminAction::Approve,
        );
        assert_eq!(ok, Ok(S::Active));
        let cases = [
            (
                Role::User,
                false,
                Role::User,
                S::Pending,
                AdminAction::Approve,
                "forbidden",
            ),
            (
                Role::Admin,
                true,
                Role::Admin,
                S::Active,
                AdminAction::Suspend,
                "own_account",
            ),
            (
                Role::Admin,
                false,
                Role::Superadmin,
                S::Active,
                AdminAction::Suspend,
                "superadmin_protected",
            ),
            (
                Role::Admin,
                false,
                Role::User,
                S::Active,
                AdminAction::Approve,
                "invalid_account_transition",
            ),
            (
                Role::Admin,
                false,
                Role::User,
                S::Active,
                AdminAction::Reactivate,
                "invalid_account_transition",
            ),
        ];
        for (actor, own, target, status, action, code) in cases {
            let err = apply_admin_action(actor, own, target, status, action).unwrap_err();
            assert_eq!(err.code(), code, "{action:?}");
        }
        assert_eq!(
            apply_admin_action(
                Role::Superadmin,
                false,
                Role::Admin,
                S::Active,
                AdminAction::Suspend
            ),
            Ok(S::Suspended)
        );
    }

    #[test]
    fn state_changes_must_come_from_our_origins() {
        let ours = ["http://app.localhost:8787", "http://api.localhost:8787"];
        assert!(same_origin_request("GET", None, None, &ours));
        assert!(same_origin_request(
            "POST",
            Some("http://app.localhost:8787"),
            None,
            &ours
        ));
        assert!(same_origin_request(
            "POST",
            None,
            Some("http://app.localhost:8787/settings?x=1"),
            &ours
        ));
        assert!(!same_origin_request(
            "POST",
            Some("http://evil.example"),
            None,
            &ours
        ));
        assert!(!same_origin_request("POST", Some("null"), None, &ours));
        assert!(!same_origin_request("DELETE", None, None, &ours));
        assert!(!same_origin_request(
            "POST",
            None,
            Some("http://app.localhost:8787.evil.example/"),
            &ours
        ));
    }

    #[test]
    fn logins_follow_github_rules() {
        for ok in ["a", "dev", "ui-user", "A1-b2", &"x".repeat(39)] {
            assert!(valid_login(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "a b", "ä", "a_b", &"x".repeat(40)] {
            assert!(!valid_login(bad), "{bad}");
        }
    }

    #[test]
    fn a_session_cookie_is_one_well_formed_value() {
        let id = "a".repeat(64);
        assert_eq!(
            session_cookie_value(&format!("theme=dark; sam_session={id}"), "sam_session"),
            Some(id.clone())
        );
        for header in [
            String::new(),
            "theme=dark".to_owned(),
            format!("sam_session={}", "A".repeat(64)),
            format!("sam_session={}", "a".repeat(63)),
            format!("sam_session={id}x"),
            // A second cookie of the name, planted by a sibling host.
            format!("sam_session={}; sam_session={id}", "b".repeat(64)),
            format!("sam_session={id}; sam_session={id}"),
            format!("sam_session=; sam_session={id}"),
        ] {
            assert_eq!(
                session_cookie_value(&header, "sam_session"),
                None,
                "{header}"
            );
        }
        assert_eq!(
            session_cookie_value(&format!("xsam_session={id}"), "sam_session"),
            None
        );
    }

    #[test]
    fn dev_login_only_on_localhost() {
        assert!(dev_login_allowed(true, "localhost"));
        assert!(dev_login_allowed(true, "sam.localhost"));
        assert!(dev_login_allowed(true, "SAM.Localhost."));
        assert!(!dev_login_allowed(true, "example.com"));
        assert!(!dev_login_allowed(true, "localhost.example.com"));
        assert!(!dev_login_allowed(true, "notlocalhost"));
        assert!(!dev_login_allowed(false, "localhost"));
        assert!(!dev_login_allowed(false, "sam.localhost"));
    }
}
