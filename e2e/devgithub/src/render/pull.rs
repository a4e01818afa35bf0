//! Pull requests: the shape `GET /repos/{owner}/{repo}/pulls` lists, and
//! the full one (with the comparison's counts) a single pull request and
//! `POST …/pulls` answer with.

use serde_json::{Value, json};

use super::{bot_user, repo as repo_json, simple_user};
use crate::config::AppConfig;
use crate::git::Comparison;
use crate::ids::node_id;
use crate::state::{Pull, PullAuthor, Repo, World};

/// Who opened the pull request, as a user object.
pub(crate) fn pull_author(base: &str, app: &AppConfig, world: &World, pull: &Pull) -> Value {
    match pull.author {
        PullAuthor::User(id) => world
            .accounts
            .get(&id)
            .map_or(Value::Null, |a| simple_user(base, a)),
        PullAuthor::Bot => bot_user(base, app),
    }
}

/// `head` or `base`: both are branches of the repository itself.
fn side(base: &str, world: &World, repo: &Repo, branch: &str, sha: &str) -> Value {
    let owner = world.repo_owner(repo);
    let login = owner.map_or("ghost", |o| o.login.as_str());
    json!({
        "label": format!("{login}:{branch}"),
        "ref": branch,
        "sha": sha,
        "user": owner.map(|o| simple_user(base, o)),
        "repo": repo_json(base, world, repo, None),
    })
}

/// The pull request; `comparison` adds the fields only the single-pull
/// shape has (`commits`, `additions`, `deletions`, `changed_files`, …).
pub(crate) fn pull(
    base: &str,
    app: &AppConfig,
    world: &World,
    repo: &Repo,
    pull: &Pull,
    comparison: Option<&Comparison>,
) -> Value {
    let full_name = world.full_name(repo);
    let api = format!("{base}/repos/{full_name}");
    let number = pull.number;
    let url = format!("{api}/pulls/{number}");
    let html_url = format!("{base}/{full_name}/pull/{number}");
    let issue_url = format!("{api}/issues/{number}");
    let statuses_url = format!("{api}/statuses/{}", pull.head_sha);
    let mut value = json!({
        "url": url,
        "id": pull.id,
        "node_id": node_id("PullRequest", pull.id),
        "html_url": html_url,
        "diff_url": format!("{html_url}.diff"),
        "patch_url": format!("{html_url}.patch"),
        "issue_url": issue_url,
        "commits_url": format!("{url}/commits"),
        "review_comments_url": format!("{url}/comments"),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{issue_url}/comments"),
        "statuses_url": statuses_url,
        "number": number,
        "state": pull.state.as_str(),
        "locked": false,
        "title": pull.title,
        "user": pull_author(base, app, world, pull),
        "body": pull.body,
        "labels": [],
        "milestone": null,
        "active_lock_reason": null,
        "created_at": pull.created_at,
        "updated_at": pull.updated_at,
        "closed_at": pull.closed_at,
        "merged_at": null,
        "merge_commit_sha": null,
        "assignee": null,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
    });
    let links = json!({
        "self": { "href": url },
            "html": { "href": html_url },
            "issue": { "href": issue_url },
            "comments": { "href": format!("{issue_url}/comments") },
            "review_comments": { "href": format!("{url}/comments") },
            "review_comment": { "href": format!("{api}/pulls/comments{{/number}}") },
            "commits": { "href": format!("{url}/commits") },
            "statuses": { "href": statuses_url },
    });
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "head".into(),
            side(base, world, repo, &pull.head_ref, &pull.head_sha),
        );
        map.insert(
            "base".into(),
            side(base, world, repo, &pull.base_ref, &pull.base_sha),
        );
        map.insert("_links".into(), links);
        map.insert("author_association".into(), "NONE".into());
        map.insert("auto_merge".into(), Value::Null);
        map.insert("draft".into(), pull.draft.into());
    }
    if let (Some(c), Some(map)) = (comparison, value.as_object_mut()) {
        let more = json!({
            "merged": false,
            "mergeable": null,
            "rebaseable": null,
            "mergeable_state": "unknown",
            "merged_by": null,
            "comments": 0,
            "review_comments": 0,
            "maintainer_can_modify": false,
            "commits": c.commits,
            "additions": c.additions(),
            "deletions": c.deletions(),
            "changed_files": c.files.len(),
        });
        if let Value::Object(more) = more {
            map.extend(more);
        }
    }
    value
}
