//! The agent as a whole: HTTP server plus the calls home, with one shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::AGENT_VERSION;
use crate::acp::Sessions;
use crate::callback::ControlPlane;
use crate::config::Config;
use crate::error::AgentError;
use crate::jwks::KeyCache;
use crate::logs::LogBuffer;
use crate::outbox::{DeliveryConfig, run_delivery};
use crate::resolver::LocalhostResolver;
use crate::server::{AppState, router};
use crate::workspaces::Workspaces;

/// Outgoing requests give up after this long, so a hung control plane turns
/// into a retry instead of a stuck agent.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A configured agent, ready to run.
///
/// ```no_run
/// # async fn demo() -> Result<(), sam_vm_agent::AgentError> {
/// let config = sam_vm_agent::Config::from_env()?;
/// let agent = sam_vm_agent::Agent::new(config)?;
/// agent.run(async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct Agent {
    config: Arc<Config>,
    client: reqwest::Client,
    keys: Arc<KeyCache>,
    logs: LogBuffer,
    /// Set once on shutdown; the server drains on it and log streams end.
    stop: watch::Sender<bool>,
    /// The node's workspaces, shared by every router this agent builds.
    workspaces: Workspaces,
    /// The agent sessions in those workspaces.
    sessions: Sessions,
}

impl Agent {
    pub fn new(config: Config) -> Result<Self, AgentError> {
        let client = http_client()?;
        let keys = Arc::new(KeyCache::new(
            client.clone(),
            &config.jwks_url,
            &config.token_issuer,
            config.jwks_min_refresh,
        ));
        let config = Arc::new(config);
        let workspaces = Workspaces::new(Arc::clone(&config), client.clone());
        Ok(Self {
            sessions: Sessions::new(Arc::clone(&config), workspaces.clone()),
            workspaces,
            config,
            client,
            keys,
            logs: LogBuffer::new(),
            stop: watch::channel(false).0,
        })
    }

    /// Serves `/logs` from `logs` instead of the agent's own empty buffer:
    /// `main` passes the buffer its tracing layer records into.
    #[must_use]
    pub fn with_log_buffer(mut self, logs: LogBuffer) -> Self {
        self.logs = logs;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The buffer `/logs` serves.
    pub fn log_buffer(&self) -> &LogBuffer {
        &self.logs
    }

    /// The node's workspaces.
    pub fn workspaces(&self) -> &Workspaces {
        &self.workspaces
    }

    /// The node's agent sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The HTTP API, not bound to any socket.
    pub fn router(&self) -> Router {
        let mut state = AppState::new(
            Arc::clone(&self.config),
            Arc::clone(&self.keys),
            self.logs.clone(),
        );
        state.shutdown = self.stop.subscribe();
        state.workspaces = self.workspaces.clone();
        state.sessions = self.sessions.clone();
        router(state)
    }

    /// Binds the configured address.
    pub async fn bind(&self) -> Result<TcpListener, AgentError> {
        let addr = self.config.bind_addr();
        TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Bind { addr, source })
    }

    /// Binds the configured address and runs until `shutdown` resolves or a
    /// fatal error occurs.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        let listener = self.bind().await?;
        self.serve(listener, shutdown).await
    }

    /// Runs on an already-bound listener (tests bind `127.0.0.1:0`): serves
    /// the API, then registers and heartbeats. Returns `Ok` after `shutdown`,
    /// or the error that stopped the agent.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AgentError> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, node_id = %self.config.node_id, version = AGENT_VERSION, "vm-agent listening");
        }
        // A restarted agent knows its workspaces before it serves requests,
        // and has ended the agent sessions its predecessor left running
        // (their last messages go out with the first delivery).
        self.workspaces.load().await;
        self.sessions.recover().await;
        let mut stopped = self.stop.subscribe();
        // The peer's address goes to forwarded apps (`X-Forwarded-For`).
        let service = self
            .router()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = axum::serve(listener, service).with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        });
        let mut server = tokio::spawn(async move { server.await });
        // Session messages left from before a restart go out at once.
        let delivery = self.start_delivery();

        // Registration starts only now that the listener is bound: the control
        // plane may call `/system-info` as soon as it hears the node is ready.
        let outcome = tokio::select! {
            () = shutdown => {
                tracing::info!("shutting down");
                Ok(())
            }
            result = self.call_home() => result.map(|never| match never {}),
            joined = &mut server => {
                let error = match joined {
                    Ok(Err(err)) => err,
                    _ => std::io::Error::other("server task ended unexpectedly"),
                };
                return Err(AgentError::Serve(error));
            }
        };

        self.stop.send_replace(true);
        // Agents end with the node agent; their last messages stay in the
        // outbox for the next start if they cannot go out now.
        self.sessions.stop_all().await;
        if let Some(delivery) = delivery {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, delivery).await;
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut server)
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish in time");
            server.abort();
        }
        outcome
    }

    /// Starts delivering the session outbox to the control plane until
    /// shutdown. Without an outbox (the file cannot be opened) sessions
    /// cannot start either; the node keeps serving everything else.
    fn start_delivery(&self) -> Option<tokio::task::JoinHandle<()>> {
        let (outbox, sink) = match self
            .sessions
            .outbox()
            .and_then(|outbox| Ok((outbox, self.sessions.sink(self.client.clone())?)))
        {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!(%err, code = err.code(), "the session outbox is unavailable");
                return None;
            }
        };
        Some(tokio::spawn(run_delivery(
            outbox,
            sink,
            DeliveryConfig::default(),
            crate::acp::now_ms,
            self.stop.subscribe(),
        )))
    }

    /// Registers, then heartbeats forever; returns only on a fatal error.
    async fn call_home(&self) -> Result<Infallible, AgentError> {
        let control_plane = ControlPlane::new(
            self.client.clone(),
            &self.config.control_plane_url,
            &self.config.node_id,
            &self.config.token_path(),
        )?;
        control_plane.register(self.config.backoff).await?;
        Ok(control_plane
            .heartbeat_forever(self.config.heartbeat_interval, &self.config.disk_path())
            .await)
    }
}

fn http_client() -> Result<reqwest::Client, AgentError> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(LocalhostResolver))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("sam-vm-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(AgentError::HttpClient)
}
