//! Repositories and branches.

use serde_json::{Value, json};

use super::simple_user;
use crate::ids::node_id;
use crate::state::{Branch, Repo, World};

/// The full repository shape. `permissions` is included for user tokens
/// (GitHub adds it when a user asks) and left out for installation tokens.
pub(crate) fn repo(base: &str, world: &World, repo: &Repo, permissions: Option<Value>) -> Value {
    let owner = world.repo_owner(repo);
    let full_name = world.full_name(repo);
    let api = format!("{base}/repos/{full_name}");
    let host = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest)
        .split(':')
        .next()
        .unwrap_or("localhost");
    let mut value = json!({
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": full_name,
        "private": repo.private,
        "owner": owner.map(|o| simple_user(base, o)),
        "html_url": format!("{base}/{full_name}"),
        "description": repo.description,
        "fork": false,
        "url": api,
        "branches_url": format!("{api}/branches{{/branch}}"),
        "pulls_url": format!("{api}/pulls{{/number}}"),
        "git_url": format!("git://{host}/{full_name}.git"),
        "ssh_url": format!("git@{host}:{full_name}.git"),
        "clone_url": format!("{base}/{full_name}.git"),
        "svn_url": format!("{base}/{full_name}"),
    });
    let counters = json!({
        "homepage": null,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": null,
        "has_issues": true,
        "has_projects": true,
        "has_wiki": true,
        "has_pages": false,
        "has_discussions": false,
        "forks_count": 0,
        "archived": false,
        "disabled": false,
        "open_issues_count": 0,
        "license": null,
        "allow_forking": true,
        "is_template": false,
        "topics": [],
        "visibility": if repo.private { "private" } else { "public" },
        "forks": 0,
        "open_issues": 0,
        "watchers": 0,
        "default_branch": repo.default_branch,
        "created_at": repo.created_at,
        "updated_at": repo.updated_at,
        "pushed_at": repo.updated_at,
    });
    if let (Some(map), Value::Object(more)) = (value.as_object_mut(), counters) {
        map.extend(more);
    }
    if let (Some(permissions), Some(map)) = (permissions, value.as_object_mut()) {
        map.insert("permissions".into(), permissions);
    }
    value
}

/// The short form webhook payloads list (`repositories_added` and such).
pub(crate) fn repo_minimal(world: &World, repo: &Repo) -> Value {
    json!({
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": world.full_name(repo),
        "private": repo.private,
    })
}

/// An entry of `GET /repos/{owner}/{repo}/branches`.
pub(crate) fn branch_short(base: &str, world: &World, repo: &Repo, branch: &Branch) -> Value {
    let full_name = world.full_name(repo);
    json!({
        "name": branch.name,
        "commit": {
            "sha": branch.sha,
            "url": format!("{base}/repos/{full_name}/commits/{}", branch.sha),
        },
        "protected": branch.protected,
    })
}

/// `GET /repos/{owner}/{repo}/branches/{branch}`: the branch with its
/// head commit. The SHA is the real head in the bare repository; the
/// commit's details (message, author, tree, parents) are placeholders.
pub(crate) fn branch_full(base: &str, world: &World, repo: &Repo, branch: &Branch) -> Value {
    let full_name = world.full_name(repo);
    let api = format!("{base}/repos/{full_name}");
    let sha = &branch.sha;
    let person = json!({
        "name": "devgithub",
        "email": "devgithub@users.noreply.localhost",
        "date": repo.updated_at,
    });
    json!({
        "name": branch.name,
        "commit": {
            "sha": sha,
            "node_id": node_id("Commit", repo.id),
            "commit": {
                "author": person,
                "committer": person,
                "message": format!("Head of {}", branch.name),
                "tree": { "sha": sha, "url": format!("{api}/git/trees/{sha}") },
                "url": format!("{api}/git/commits/{sha}"),
                "comment_count": 0,
                "verification": {
                    "verified": false,
                    "reason": "unsigned",
                    "signature": null,
                    "payload": null,
                },
            },
            "url": format!("{api}/commits/{sha}"),
            "html_url": format!("{base}/{full_name}/commit/{sha}"),
            "comments_url": format!("{api}/commits/{sha}/comments"),
            "author": null,
            "committer": null,
            "parents": [],
        },
        "_links": {
            "self": format!("{api}/branches/{}", branch.name),
            "html": format!("{base}/{full_name}/tree/{}", branch.name),
        },
        "protected": branch.protected,
        "protection": {
            "enabled": branch.protected,
            "required_status_checks": {
                "enforcement_level": "off",
                "contexts": [],
                "checks": [],
            },
        },
        "protection_url": format!("{api}/branches/{}/protection", branch.name),
    })
}
