//! Users and organizations: the `simple-user` shape embedded everywhere,
//! and the full one `GET /user` answers with.

use serde_json::{Value, json};

use crate::ids::node_id;
use crate::state::{Account, World};

pub(crate) fn simple_user(base: &str, account: &Account) -> Value {
    let login = &account.login;
    let kind = account.kind.as_str();
    json!({
        "login": login,
        "id": account.id,
        "node_id": node_id(kind, account.id),
        "avatar_url": format!("{base}/avatars/u/{}", account.id),
        "gravatar_id": "",
        "url": format!("{base}/users/{login}"),
        "html_url": format!("{base}/{login}"),
        "repos_url": format!("{base}/users/{login}/repos"),
        "type": kind,
        "user_view_type": "public",
        "site_admin": false,
    })
}

/// `GET /user` for the token's own user.
pub(crate) fn private_user(base: &str, world: &World, account: &Account) -> Value {
    let (public, private) = world.repos_of(account.id).fold((0u64, 0u64), |(p, q), r| {
        if r.private { (p, q + 1) } else { (p + 1, q) }
    });
    let mut user = simple_user(base, account);
    let extra = json!({
        "name": account.name,
        "company": null,
        "blog": "",
        "location": null,
        "email": account.email,
        "hireable": null,
        "bio": null,
        "twitter_username": null,
        "notification_email": account.email,
        "public_repos": public,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": account.created_at,
        "updated_at": account.created_at,
        "private_gists": 0,
        "total_private_repos": private,
        "owned_private_repos": private,
        "two_factor_authentication": true,
    });
    if let (Some(user), Value::Object(extra)) = (user.as_object_mut(), extra) {
        user.extend(extra);
    }
    user
}
