//! Changes GitHub announces by webhook. Each one mutates the world and
//! renders its payloads under the same lock (so they describe exactly the
//! state the change produced), then queues the deliveries. The admin API,
//! the install flow and the REST API all go through here.

use serde_json::{Value, json};

use crate::git::Comparison;
use crate::hooks::Event;
use crate::hooks::payloads::Ctx;
use crate::render;
use crate::server::AppState;
use crate::state::{
    Installation, NewInstallation, NewPull, Pull, PullAuthor, PullState, Refusal, RepoDiff,
    Selection, World,
};

fn ctx<'a>(
    state: &'a AppState,
    base: &'a str,
    world: &'a World,
    account_id: u64,
    sender: Option<u64>,
) -> Ctx<'a> {
    Ctx {
        base,
        app: &state.config.app,
        world,
        sender: world.sender_for(account_id, sender),
    }
}

fn send_all(state: &AppState, events: Vec<Event>) {
    for event in events {
        state.hooks.send(event);
    }
}

/// Installs the app; sends `installation.created`. Returns the
/// installation's JSON.
pub(crate) fn create_installation(
    state: &AppState,
    base: &str,
    spec: NewInstallation,
    sender: Option<u64>,
) -> Result<Value, Refusal> {
    let (body, event) = state.store.update(|w| {
        let installation = w.create_installation(spec)?;
        let repos = w.installation_repo_ids(&installation);
        let payload = ctx(state, base, w, installation.account_id, sender).installation(
            "created",
            &installation,
            &repos,
        );
        let body = render::installation(base, &state.config.app, w, &installation);
        Ok::<_, Refusal>((body, Event::new("installation", payload)))
    })?;
    state.hooks.send(event);
    Ok(body)
}

/// `installation_repositories` events for a difference: one `added`, one
/// `removed`, each only when non-empty.
fn diff_events(c: &Ctx<'_>, installation: &Installation, diff: &RepoDiff) -> Vec<Event> {
    let mut events = Vec::new();
    if !diff.added.is_empty() {
        events.push(Event::new(
            "installation_repositories",
            c.installation_repositories("added", installation, &diff.added, &[]),
        ));
    }
    if !diff.removed.is_empty() {
        events.push(Event::new(
            "installation_repositories",
            c.installation_repositories("removed", installation, &[], &diff.removed),
        ));
    }
    events
}

fn apply_selection(
    state: &AppState,
    base: &str,
    id: u64,
    sender: Option<u64>,
    change: impl FnOnce(&mut World) -> Result<RepoDiff, Refusal>,
) -> Result<RepoDiff, Refusal> {
    let (diff, events) = state.store.update(|w| {
        let diff = change(w)?;
        let installation = w
            .installations
            .get(&id)
            .ok_or_else(|| Refusal::NotFound("installation".into()))?;
        let events = diff_events(
            &ctx(state, base, w, installation.account_id, sender),
            installation,
            &diff,
        );
        Ok::<_, Refusal>((diff, events))
    })?;
    send_all(state, events);
    Ok(diff)
}

/// Replaces what an installation reaches (the install flow's "update").
pub(crate) fn set_installation_selection(
    state: &AppState,
    base: &str,
    id: u64,
    selection: Selection,
    repository_ids: Vec<u64>,
    sender: Option<u64>,
) -> Result<RepoDiff, Refusal> {
    apply_selection(state, base, id, sender, |w| {
        w.set_installation_selection(id, selection, repository_ids)
    })
}

/// Adds and removes repositories of a `selected` installation.
pub(crate) fn change_installation_repos(
    state: &AppState,
    base: &str,
    id: u64,
    add: &[u64],
    remove: &[u64],
    sender: Option<u64>,
) -> Result<RepoDiff, Refusal> {
    apply_selection(state, base, id, sender, |w| {
        w.change_installation_repos(id, add, remove)
    })
}

/// Uninstalls; sends `installation.deleted`. Its tokens stop working.
pub(crate) fn delete_installation(
    state: &AppState,
    base: &str,
    id: u64,
    sender: Option<u64>,
) -> Result<(), Refusal> {
    let event = state.store.update(|w| {
        let (installation, repos) = w
            .delete_installation(id)
            .ok_or_else(|| Refusal::NotFound("installation".into()))?;
        let payload = ctx(state, base, w, installation.account_id, sender).installation(
            "deleted",
            &installation,
            &repos,
        );
        Ok::<_, Refusal>(Event::new("installation", payload))
    })?;
    state.hooks.send(event);
    Ok(())
}

/// Renames a repository; sends `repository.renamed` when an installation
/// reaches it. Returns the repository's JSON.
pub(crate) fn rename_repo(
    state: &AppState,
    base: &str,
    repo_id: u64,
    new_name: &str,
    sender: Option<u64>,
) -> Result<Value, Refusal> {
    let (body, event) = state.store.update(|w| {
        let (old_name, repo) = w.rename_repo(repo_id, new_name)?;
        let event = w.installation_for_repo(repo_id).map(|i| {
            let changes = json!({ "repository": { "name": { "from": old_name } } });
            let payload = ctx(state, base, w, repo.owner_id, sender).repository(
                "renamed",
                &repo,
                i.id,
                Some(changes),
            );
            Event::new("repository", payload)
        });
        Ok::<_, Refusal>((render::repo(base, w, &repo, None), event))
    })?;
    send_all(state, event.into_iter().collect());
    Ok(body)
}

/// Deletes a repository; sends `repository.deleted` when an installation
/// reached it.
pub(crate) fn delete_repo(
    state: &AppState,
    base: &str,
    repo_id: u64,
    sender: Option<u64>,
) -> Result<(), Refusal> {
    let event = state.store.update(|w| {
        let installation_id = w.installation_for_repo(repo_id).map(|i| i.id);
        let repo = w
            .delete_repo(repo_id)
            .ok_or_else(|| Refusal::NotFound("repository".into()))?;
        Ok::<_, Refusal>(installation_id.map(|id| {
            let payload =
                ctx(state, base, w, repo.owner_id, sender).repository("deleted", &repo, id, None);
            Event::new("repository", payload)
        }))
    })?;
    send_all(state, event.into_iter().collect());
    Ok(())
}

/// A `pull_request` event when an installation that subscribes to it
/// reaches the repository; `actor` is who acted (the `sender`).
fn pull_event(
    state: &AppState,
    base: &str,
    world: &World,
    pull: &Pull,
    action: &str,
    actor: PullAuthor,
    body: &Value,
) -> Option<Event> {
    let repo = world.repos.get(&pull.repo_id)?;
    let installation = world
        .installation_for_repo(repo.id)
        .filter(|i| i.events.iter().any(|e| e == "pull_request"))?;
    let named = match actor {
        PullAuthor::User(id) => Some(id),
        PullAuthor::Bot => None,
    };
    let mut payload = ctx(state, base, world, repo.owner_id, named).pull_request(
        action,
        repo,
        installation.id,
        pull.number,
        body,
    );
    if actor == PullAuthor::Bot {
        payload["sender"] = render::bot_user(base, &state.config.app);
    }
    Some(Event::new("pull_request", payload))
}

/// Opens a pull request; sends `pull_request.opened`. Returns the full
/// pull request JSON.
pub(crate) fn open_pull(
    state: &AppState,
    base: &str,
    spec: NewPull,
    comparison: &Comparison,
) -> Result<Value, Refusal> {
    let actor = spec.author;
    let (body, event) = state.store.update(|w| {
        let pull = w.create_pull(spec)?;
        let repo = w
            .repos
            .get(&pull.repo_id)
            .ok_or_else(|| Refusal::NotFound("repository".into()))?;
        let body = render::pull(base, &state.config.app, w, repo, &pull, Some(comparison));
        let event = pull_event(state, base, w, &pull, "opened", actor, &body);
        Ok::<_, Refusal>((body, event))
    })?;
    send_all(state, event.into_iter().collect());
    Ok(body)
}

/// Edits a pull request (title, body, state); sends `pull_request` with
/// `closed`, `reopened` or `edited`. Returns the pull request as it now is.
pub(crate) fn update_pull(
    state: &AppState,
    base: &str,
    id: u64,
    title: Option<String>,
    body: Option<String>,
    new_state: Option<PullState>,
    actor: PullAuthor,
) -> Result<Pull, Refusal> {
    let (pull, event) = state.store.update(|w| {
        let before = w
            .pulls
            .get(&id)
            .cloned()
            .ok_or_else(|| Refusal::NotFound("pull request".into()))?;
        let pull = w.update_pull(id, title, body, new_state)?;
        let action = match (before.state, pull.state) {
            (PullState::Open, PullState::Closed) => Some("closed"),
            (PullState::Closed, PullState::Open) => Some("reopened"),
            _ if before.title != pull.title || before.body != pull.body => Some("edited"),
            _ => None,
        };
        let event = action.and_then(|action| {
            let repo = w.repos.get(&pull.repo_id)?;
            let body = render::pull(base, &state.config.app, w, repo, &pull, None);
            pull_event(state, base, w, &pull, action, actor, &body)
        });
        Ok::<_, Refusal>((pull, event))
    })?;
    send_all(state, event.into_iter().collect());
    Ok(pull)
}
