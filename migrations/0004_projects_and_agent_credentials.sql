-- GitHub App installations, projects and agent credentials.

-- Which SAM users may use which GitHub App installation. An organization's
-- installation can be linked to several members, hence one row per pair.
-- `installation_id` is GitHub's numeric id as text.
CREATE TABLE github_installations (
    installation_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    account_login TEXT NOT NULL,
    account_type TEXT NOT NULL,
    -- Set when GitHub reports the installation deleted or suspended.
    removed_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (installation_id, user_id)
);
CREATE INDEX github_installations_by_user ON github_installations (user_id);

-- A project is one user's link to one repository. The repository is
-- identified by GitHub's numeric id, which survives renames and transfers;
-- `repo_full_name` is a label that webhooks keep current.
CREATE TABLE projects (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    installation_id TEXT NOT NULL,
    repository_id INTEGER NOT NULL,
    repo_full_name TEXT NOT NULL,
    repo_html_url TEXT NOT NULL,
    default_branch TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'repository_missing', 'installation_missing')),
    -- Defaults for this project's nodes and agents; NULL means the platform default.
    vm_size TEXT,
    provider TEXT,
    location TEXT,
    agent TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (user_id, repository_id)
);
CREATE INDEX projects_by_repository ON projects (repository_id);
CREATE INDEX projects_by_installation ON projects (installation_id);

-- Agent credentials, sealed by the credential vault like cloud credentials.
-- `project_id` NULL is the user's own key for the agent; otherwise it is
-- that project's override, deleted with the project. One kind is active per
-- (user, agent) and per (project, agent): storing another kind replaces it.
CREATE TABLE agent_credentials (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
    agent TEXT NOT NULL
        CHECK (agent IN ('claude-code', 'openai-codex', 'google-gemini', 'opencode')),
    kind TEXT NOT NULL CHECK (kind IN ('api_key', 'oauth_token')),
    secret_envelope TEXT NOT NULL,
    masked TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX agent_credentials_user_scope
    ON agent_credentials (user_id, agent) WHERE project_id IS NULL;
CREATE UNIQUE INDEX agent_credentials_project_scope
    ON agent_credentials (project_id, agent) WHERE project_id IS NOT NULL;
