//! Sign in with GitHub: the OAuth web flow's two halves, over ports.
//!
//! [`begin_github_sign_in`] stores a one-time state (as a keyed hash, for
//! ten minutes) and returns GitHub's authorize URL; [`finish_github_sign_in`]
//! consumes that state, exchanges the code, fetches the profile and upserts
//! the user (the first GitHub user becomes superadmin; later ones wait for
//! approval when the deployment requires it). Starting the session is the
//! caller's, since it sets a cookie.

use sam_domain::accounts::{AccountStatus, new_account, valid_login};
use sam_providers::HttpClient;
use sam_providers::github::GithubOAuthApp;
use sam_store::{GithubProfile, SessionRepository, SqlDatabase, UserRecord, UserRepository};
use sam_vault::SessionKeys;

use crate::error::ControlError;

/// How long a sign-in may take between leaving for GitHub and coming back.
pub const STATE_TTL_MS: i64 = 10 * 60 * 1000;

/// Stores `state` (random, from the caller) and returns where to send the browser.
pub async fn begin_github_sign_in(
    db: &impl SqlDatabase,
    keys: &SessionKeys,
    app: &GithubOAuthApp,
    callback_url: &str,
    state: &str,
    now: i64,
) -> Result<String, ControlError> {
    SessionRepository::new(db)
        .create_oauth_state(
            &sam_vault::keyed_hash(keys, state.as_bytes()),
            now,
            now + STATE_TTL_MS,
        )
        .await?;
    Ok(app.authorize_url(callback_url, state))
}

/// Completes the flow; returns the signed-in user (possibly `pending`).
#[allow(clippy::too_many_arguments)]
pub async fn finish_github_sign_in(
    db: &impl SqlDatabase,
    http: &impl HttpClient,
    keys: &SessionKeys,
    app: &GithubOAuthApp,
    callback_url: &str,
    state: &str,
    code: &str,
    require_approval: bool,
    now: i64,
    new_user_id: &str,
) -> Result<UserRecord, ControlError> {
    // One-time: a replayed or forged callback finds no state.
    if !SessionRepository::new(db)
        .consume_oauth_state(&sam_vault::keyed_hashes(keys, state.as_bytes()), now)
        .await?
    {
        return Err(ControlError::OAuthStateInvalid);
    }
    let token = app.exchange_code(http, code, callback_url).await?;
    let gh = app.user(http, &token).await?;
    if !valid_login(&gh.login) {
        return Err(ControlError::Github(
            sam_providers::github::GithubError::Unexpected(
                "GitHub returned an invalid login".into(),
            ),
        ));
    }
    let first = new_account(true, require_approval);
    let later = new_account(false, require_approval);
    let user = UserRepository::new(db)
        .upsert_github(
            new_user_id,
            &GithubProfile {
                github_id: gh.id.to_string(),
                login: gh.login,
                name: gh.name,
                email: gh.email,
                avatar_url: gh.avatar_url,
            },
            now,
            (first.0.as_str(), first.1.as_str()),
            (later.0.as_str(), later.1.as_str()),
        )
        .await?;
    if AccountStatus::parse(&user.status) == Some(AccountStatus::Suspended) {
        return Err(ControlError::AccountSuspended);
    }
    Ok(user)
}
