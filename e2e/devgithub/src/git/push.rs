//! What a push changes: the refs before and after `git-receive-pack`
//! (read under the repository's lock, so they belong to this push alone)
//! become ref updates; branch updates go into `Repo::branches`, which the
//! REST branch endpoints read, and every ref update is announced as a
//! `push` webhook when an installation that subscribes to `push` reaches
//! the repository.

use std::ffi::OsStr;
use std::path::Path;

use serde_json::{Value, json};

use super::auth::{Actor, bot_login};
use super::bare::{GitError, Refs, run, run_status};
use crate::hooks::Event;
use crate::hooks::payloads::Ctx;
use crate::render;
use crate::server::AppState;
use crate::state::{BranchUpdate, World};

pub(crate) const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// GitHub lists at most this many commits in a `push` payload.
const MAX_COMMITS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefUpdate {
    pub refname: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Refs that appeared, moved or went away, by name.
pub(crate) fn diff(before: &Refs, after: &Refs) -> Vec<RefUpdate> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name))
        .map(|name| RefUpdate {
            refname: name.clone(),
            before: before.get(name).cloned(),
            after: after.get(name).cloned(),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Person {
    pub name: String,
    pub email: String,
    pub date: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commit {
    pub id: String,
    pub tree_id: String,
    pub message: String,
    pub author: Person,
    pub committer: Person,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

const LOG_FORMAT: &str = "--format=%x01%H%x00%T%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B";

/// Parses `git log -z --name-status --format=LOG_FORMAT`: records start
/// with `\x01`; nine NUL-separated fields, then `status NUL path NUL`
/// pairs (the first status after a newline).
pub(crate) fn parse_log(raw: &[u8]) -> Vec<Commit> {
    let text = String::from_utf8_lossy(raw);
    text.split('\u{1}')
        .filter(|record| !record.is_empty())
        .filter_map(|record| {
            let mut fields = record.split('\0');
            let mut next = || fields.next().map(str::to_owned);
            let (id, tree_id) = (next()?, next()?);
            let author = Person {
                name: next()?,
                email: next()?,
                date: next()?,
            };
            let committer = Person {
                name: next()?,
                email: next()?,
                date: next()?,
            };
            let message = next()?.trim_end().to_owned();
            let rest: Vec<&str> = fields
                .map(|f| f.trim_start_matches('\n'))
                .filter(|f| !f.is_empty())
                .collect();
            let mut commit = Commit {
                id,
                tree_id,
                message,
                author,
                committer,
                added: Vec::new(),
                removed: Vec::new(),
                modified: Vec::new(),
            };
            for pair in rest.chunks_exact(2) {
                let path = pair[1].to_owned();
                match pair[0].chars().next() {
                    Some('A') => commit.added.push(path),
                    Some('D') => commit.removed.push(path),
                    _ => commit.modified.push(path),
                }
            }
            Some(commit)
        })
        .collect()
}

async fn log(
    root: &Path,
    dir: &Path,
    range: &[&str],
    limit: usize,
) -> Result<Vec<Commit>, GitError> {
    let max = format!("--max-count={limit}");
    let mut args: Vec<&OsStr> = vec![
        "log".as_ref(),
        "-z".as_ref(),
        "--name-status".as_ref(),
        "--no-renames".as_ref(),
        max.as_ref(),
        LOG_FORMAT.as_ref(),
    ];
    args.extend(range.iter().map(|r| OsStr::new(*r)));
    let mut commits = parse_log(&run(root, Some(dir), &args, None, &[]).await?);
    commits.reverse();
    Ok(commits)
}

/// A ref update with what the webhook tells about it.
#[derive(Debug, Clone)]
pub(crate) struct PushDetails {
    pub update: RefUpdate,
    pub forced: bool,
    /// Oldest first.
    pub commits: Vec<Commit>,
    pub head_commit: Option<Commit>,
}

/// Reads the commits a ref update brought: those reachable from the new
/// head but from no ref as it was before the push.
pub(crate) async fn details(
    root: &Path,
    dir: &Path,
    before: &Refs,
    update: RefUpdate,
) -> Result<PushDetails, GitError> {
    let Some(after) = update.after.clone() else {
        return Ok(PushDetails {
            update,
            forced: false,
            commits: Vec::new(),
            head_commit: None,
        });
    };
    let head_commit = log(root, dir, &[&after], 1).await?.pop();
    let commits = if update.refname.starts_with("refs/heads/") {
        let mut range: Vec<&str> = vec![&after, "--not"];
        range.extend(before.values().map(String::as_str));
        log(root, dir, &range, MAX_COMMITS).await?
    } else {
        Vec::new()
    };
    let forced = match &update.before {
        Some(old) => {
            let (status, _, _) = run_status(
                root,
                Some(dir),
                &[
                    "merge-base".as_ref(),
                    "--is-ancestor".as_ref(),
                    old.as_ref(),
                    after.as_ref(),
                ],
                None,
                &[],
            )
            .await?;
            status.code() == Some(1)
        }
        None => false,
    };
    Ok(PushDetails {
        update,
        forced,
        commits,
        head_commit,
    })
}

fn person_json(world: &World, person: &Person) -> Value {
    let mut value = json!({ "name": person.name, "email": person.email, "date": person.date });
    if let Some(user) = world
        .users()
        .find(|u| u.email.as_deref() == Some(person.email.as_str()))
    {
        value["username"] = Value::String(user.login.clone());
    }
    value
}

fn commit_json(world: &World, html_url: &str, commit: &Commit) -> Value {
    json!({
        "id": commit.id,
        "tree_id": commit.tree_id,
        "distinct": true,
        "message": commit.message,
        "timestamp": commit.committer.date,
        "url": format!("{html_url}/commit/{}", commit.id),
        "author": person_json(world, &commit.author),
        "committer": person_json(world, &commit.committer),
        "added": commit.added,
        "removed": commit.removed,
        "modified": commit.modified,
    })
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The app's bot as `sender`.
fn bot_user(base: &str, state: &AppState) -> Value {
    render::bot_user(base, &state.config.app)
}

/// The `push` payload's own fields, `repository` and `pusher`; `Ctx`
/// adds `sender`, `installation` and `organization`.
fn payload(
    state: &AppState,
    base: &str,
    world: &World,
    repo: &crate::state::Repo,
    installation_id: u64,
    actor: &Actor,
    push: &PushDetails,
) -> Value {
    let html_url = format!("{base}/{}", world.full_name(repo));
    let u = &push.update;
    let before = u.before.as_deref().unwrap_or(ZERO_SHA);
    let after = u.after.as_deref().unwrap_or(ZERO_SHA);
    let compare = match (&u.before, &u.after) {
        (None, _) => {
            let name = u
                .refname
                .strip_prefix("refs/heads/")
                .or_else(|| u.refname.strip_prefix("refs/tags/"))
                .unwrap_or(&u.refname);
            format!("{html_url}/compare/{name}")
        }
        _ => format!("{html_url}/compare/{}...{}", short(before), short(after)),
    };
    let sender_account = match actor {
        Actor::User(id) => world.accounts.get(id),
        _ => None,
    };
    let pusher = if let Some(user) = sender_account {
        json!({
            "name": user.login,
            "email": user.email.clone().unwrap_or_else(|| {
                format!("{}+{}@users.noreply.github.com", user.id, user.login)
            }),
        })
    } else {
        let app = &state.config.app;
        json!({
            "name": bot_login(app),
            "email": format!(
                "{}+{}@users.noreply.github.com",
                render::bot_id(app.id),
                bot_login(app)
            ),
        })
    };
    let ctx = Ctx {
        base,
        app: &state.config.app,
        world,
        sender: sender_account,
    };
    let fields = json!({
        "ref": u.refname,
        "before": before,
        "after": after,
        "created": u.before.is_none(),
        "deleted": u.after.is_none(),
        "forced": push.forced,
        "base_ref": null,
        "compare": compare,
        "commits": push.commits.iter().map(|c| commit_json(world, &html_url, c)).collect::<Vec<_>>(),
        "head_commit": push.head_commit.as_ref().map(|c| commit_json(world, &html_url, c)),
        "pusher": pusher,
    });
    let mut payload = ctx.push(repo, installation_id, fields);
    if sender_account.is_none() {
        payload["sender"] = bot_user(base, state);
    }
    payload
}

/// Records a push's ref updates in the world and announces them.
pub(crate) fn apply(
    state: &AppState,
    base: &str,
    repo_id: u64,
    actor: &Actor,
    pushes: &[PushDetails],
) {
    let branch_updates: Vec<BranchUpdate> = pushes
        .iter()
        .filter_map(|p| {
            p.update
                .refname
                .strip_prefix("refs/heads/")
                .map(|name| BranchUpdate {
                    name: name.to_owned(),
                    sha: p.update.after.clone(),
                })
        })
        .collect();
    let events = state.store.update(|w| {
        let Some(repo) = w.record_push(repo_id, &branch_updates) else {
            return Vec::new();
        };
        let Some(installation) = w
            .installation_for_repo(repo_id)
            .filter(|i| i.events.iter().any(|e| e == "push"))
        else {
            return Vec::new();
        };
        pushes
            .iter()
            .map(|p| {
                Event::new(
                    "push",
                    payload(state, base, w, &repo, installation.id, actor, p),
                )
            })
            .collect()
    });
    for event in events {
        state.hooks.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_snapshots_diff_into_updates() {
        let before: Refs = [("refs/heads/main", "a"), ("refs/heads/old", "b")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let after: Refs = [("refs/heads/main", "c"), ("refs/heads/new", "d")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let updates = diff(&before, &after);
        let summary: Vec<_> = updates
            .iter()
            .map(|u| (u.refname.as_str(), u.before.as_deref(), u.after.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("refs/heads/main", Some("a"), Some("c")),
                ("refs/heads/new", None, Some("d")),
                ("refs/heads/old", Some("b"), None),
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn log_records_parse_with_their_files() {
        let raw = "\u{1}h1\0t1\0Ann\0ann@x\0D1\0Cid\0cid@x\0D2\0first\n\nbody\n\0\nA\0a.txt\0\
                   \u{1}h2\0t2\0Ann\0ann@x\0D3\0Ann\0ann@x\0D3\0second\n\0\nD\0a.txt\0M\0b.txt\0A\0c\0\
                   \u{1}h3\0t3\0Ann\0ann@x\0D4\0Ann\0ann@x\0D4\0Merge\n\0";
        let commits = parse_log(raw.as_bytes());
        assert_eq!(commits.len(), 3);
        assert_eq!(commits[0].message, "first\n\nbody");
        assert_eq!(commits[0].added, ["a.txt"]);
        assert_eq!(commits[0].committer.name, "Cid");
        assert_eq!(commits[1].removed, ["a.txt"]);
        assert_eq!(commits[1].modified, ["b.txt"]);
        assert_eq!(commits[1].added, ["c"]);
        assert!(commits[2].added.is_empty() && commits[2].modified.is_empty());
        assert_eq!(commits[2].message, "Merge");
    }
}
