//! The session message outbox: every session update is written to a local
//! SQLite file with a per-session sequence number before anything tries to
//! send it, and a delivery loop sends it to the control plane until the
//! control plane says it has it. Delivery is at least once; the control
//! plane deduplicates by (session, seq) and keeps the order, so a vm-agent
//! restart or a network cut delays messages but loses none.
//!
//! - [`store`]: the file ([`OutboxStore`]), synchronous.
//! - [`Outbox`]: the async handle: appends (and wakes the loop) and runs
//!   the store on tokio's blocking pool.
//! - [`delivery`]: the loop ([`run_delivery`]) and what it sends to
//!   ([`Sink`]), including the wire shape of the API call.

pub mod delivery;
pub mod store;

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

pub use delivery::{Ack, DeliveryConfig, DeliveryError, Sink, run_delivery};
pub use store::{
    AgentProcess, Batch, MAX_KEY_BYTES, MAX_PAYLOAD_BYTES, Mark, Message, OpenSession, OutboxError,
    OutboxStore, Route, Stats,
};

/// A cheap, cloneable handle on one [`OutboxStore`], for async code. Meant
/// for exactly one delivery loop and any number of appenders.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    store: Mutex<OutboxStore>,
    /// Signalled after every append. `notify_one` keeps a permit when the
    /// loop is not waiting yet, so an append that lands while the loop is
    /// busy still wakes it afterwards.
    appended: Notify,
}

impl Outbox {
    pub fn new(store: OutboxStore) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Mutex::new(store),
                appended: Notify::new(),
            }),
        }
    }

    /// Stores a message (see [`OutboxStore::append`]) and wakes the delivery
    /// loop. When this returns `Ok`, the message is on disk.
    pub async fn append(
        &self,
        session_id: &str,
        kind: &str,
        payload_json: String,
        now: i64,
    ) -> Result<u64, OutboxError> {
        self.append_marked(session_id, kind, payload_json, now, Mark::None)
            .await
    }

    /// [`append`](Self::append) with what the message says about its
    /// session (see [`OutboxStore::append_marked`]).
    pub async fn append_marked(
        &self,
        session_id: &str,
        kind: &str,
        payload_json: String,
        now: i64,
        mark: Mark,
    ) -> Result<u64, OutboxError> {
        let (session_id, kind) = (session_id.to_owned(), kind.to_owned());
        let seq = self
            .run(move |store| store.append_marked(&session_id, &kind, &payload_json, now, mark))
            .await?;
        self.inner.appended.notify_one();
        Ok(seq)
    }

    pub async fn pending(
        &self,
        limit_messages: usize,
        limit_bytes: usize,
    ) -> Result<Vec<Batch>, OutboxError> {
        self.run(move |store| store.pending(limit_messages, limit_bytes))
            .await
    }

    pub async fn ack(
        &self,
        session_id: &str,
        up_to_seq: u64,
        now: i64,
    ) -> Result<usize, OutboxError> {
        let session_id = session_id.to_owned();
        self.run(move |store| store.ack(&session_id, up_to_seq, now))
            .await
    }

    pub async fn prune(&self, delivered_before: i64) -> Result<usize, OutboxError> {
        self.run(move |store| store.prune(delivered_before)).await
    }

    pub async fn set_route(&self, session_id: &str, route: Route) -> Result<(), OutboxError> {
        let session_id = session_id.to_owned();
        self.run(move |store| store.set_route(&session_id, &route))
            .await
    }

    pub async fn route(&self, session_id: &str) -> Result<Option<Route>, OutboxError> {
        let session_id = session_id.to_owned();
        self.run(move |store| store.route(&session_id)).await
    }

    pub async fn set_agent_process(
        &self,
        session_id: &str,
        process: AgentProcess,
    ) -> Result<bool, OutboxError> {
        let session_id = session_id.to_owned();
        self.run(move |store| store.set_agent_process(&session_id, process))
            .await
    }

    pub async fn open_sessions(&self) -> Result<Vec<OpenSession>, OutboxError> {
        self.run(|store| store.open_sessions()).await
    }

    pub async fn stats(&self) -> Result<Stats, OutboxError> {
        self.run(|store| store.stats()).await
    }

    /// Resolves after an append (possibly one made before the call).
    pub(crate) async fn appended(&self) {
        self.inner.appended.notified().await;
    }

    /// Runs `work` on the blocking pool: SQLite calls block, and with FULL
    /// sync an append waits for the disk.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut OutboxStore) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic mid-call cannot leave the file half-written (an open
            // transaction rolls back when dropped), so a poisoned lock still
            // guards a consistent store.
            let mut store = inner.store.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut store)
        })
        .await
        .map_err(|_| OutboxError::TaskFailed)?
    }
}
