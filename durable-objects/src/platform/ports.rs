//! Ports implemented over Worker bindings, shared by the API Worker and the
//! Durable Objects: D1, the `NodeLifecycle` Durable Object as each node's
//! log and timer, the vault-opened cloud accounts, and random numbers.
//! (`fetch`, timers and the CSPRNG are in [`crate::runtime`].)

use crate::{BootEvent, WakeRequest};
use sam_control::cloud::{ProviderUrls, VaultAccounts};
use sam_control::{BootLog, NodePorts, NodeTimer};
use sam_domain::node::BootPhase;
use sam_vault::CredentialKeys;
use worker::{Env, Headers, Request, RequestInit, Stub};

use crate::d1::D1Sql;
use crate::runtime::FetchHttp;

/// Binding names from `wrangler.toml`.
pub const DB: &str = "DB";
pub const KV: &str = "KV";
pub const R2: &str = "R2";
pub const NODE_LIFECYCLE: &str = "NODE_LIFECYCLE";
pub const PROJECT_DATA: &str = "PROJECT_DATA";
pub const TASK_RUNNER: &str = "TASK_RUNNER";

pub fn d1(env: &Env) -> worker::Result<D1Sql> {
    Ok(D1Sql(env.d1(DB)?))
}

/// Random bytes as lowercase hex (session ids and the like).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let _ = getrandom::getrandom(&mut buf);
    hex::encode(buf)
}

/// The node's `NodeLifecycle` Durable Object.
pub fn lifecycle_stub(env: &Env, node_id: &str) -> worker::Result<Stub> {
    env.durable_object(NODE_LIFECYCLE)?.get_by_name(node_id)
}

async fn post_json<T: serde::Serialize>(stub: &Stub, path: &str, body: &T) -> Result<(), String> {
    let json = serde_json::to_string(body).map_err(|e| e.to_string())?;
    let headers = Headers::new();
    headers
        .set("content-type", "application/json")
        .map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(json.into()));
    let req = Request::new_with_init(&format!("https://node-lifecycle{path}"), &init)
        .map_err(|e| e.to_string())?;
    let resp = stub
        .fetch_with_request(req)
        .await
        .map_err(|e| e.to_string())?;
    if resp.status_code() >= 300 {
        return Err(format!(
            "NodeLifecycle{path} answered {}",
            resp.status_code()
        ));
    }
    Ok(())
}

/// `BootLog` and `NodeTimer` over the per-node Durable Object.
pub struct DurableNodeLog<'a> {
    pub env: &'a Env,
}

impl BootLog for DurableNodeLog<'_> {
    async fn record(
        &self,
        node_id: &str,
        at: i64,
        phase: BootPhase,
        detail: Option<&str>,
    ) -> Result<(), String> {
        let stub = lifecycle_stub(self.env, node_id).map_err(|e| e.to_string())?;
        let result = post_json(
            &stub,
            "/event",
            &BootEvent {
                at,
                phase,
                detail: detail.map(str::to_owned),
            },
        )
        .await;
        log_failure("node log event", &result);
        result
    }
}

impl NodeTimer for DurableNodeLog<'_> {
    async fn wake_at(&self, node_id: &str, at: i64) -> Result<(), String> {
        let stub = lifecycle_stub(self.env, node_id).map_err(|e| e.to_string())?;
        let result = post_json(
            &stub,
            "/wake",
            &WakeRequest {
                node_id: node_id.to_owned(),
                at,
            },
        )
        .await;
        log_failure("node timer", &result);
        result
    }
}

/// Everything the node use cases act through, over this Worker's bindings.
pub struct WorkerNodePorts<'a> {
    pub db: &'a D1Sql,
    pub keys: CredentialKeys,
    pub urls: ProviderUrls,
    pub log: DurableNodeLog<'a>,
}

impl<'a> WorkerNodePorts<'a> {
    pub fn new(env: &'a Env, db: &'a D1Sql, keys: CredentialKeys) -> Self {
        Self {
            db,
            keys,
            urls: crate::env::provider_urls(env),
            log: DurableNodeLog { env },
        }
    }

    pub fn accounts(&self) -> VaultAccounts<'_, D1Sql, FetchHttp> {
        VaultAccounts {
            db: self.db,
            keys: &self.keys,
            http: FetchHttp,
            urls: &self.urls,
        }
    }

    /// The use cases' port bundle, with `accounts` from [`Self::accounts`].
    pub fn ports<'b>(
        &'b self,
        accounts: &'b VaultAccounts<'b, D1Sql, FetchHttp>,
    ) -> NodePorts<'b, VaultAccounts<'b, D1Sql, FetchHttp>, DurableNodeLog<'a>, DurableNodeLog<'a>>
    {
        NodePorts {
            accounts,
            boot_log: &self.log,
            timer: &self.log,
        }
    }
}

fn log_failure(what: &str, result: &Result<(), String>) {
    if let Err(e) = result {
        worker::console_error!("{what} failed: {e}");
    }
}
