//! The background task that posts queued deliveries, one at a time.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::mpsc;

use super::Job;
use super::signature::signature_256;
use crate::clock::now_rfc3339;
use crate::config::WebhookConfig;
use crate::state::Store;

/// GitHub gives a receiver ten seconds to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Worker {
    config: WebhookConfig,
    app_id: u64,
    store: Arc<Store>,
    client: reqwest::Client,
}

/// The outcome of one attempt.
enum Attempt {
    Answered(StatusCode),
    Unreachable(String),
}

impl Attempt {
    fn worth_retrying(&self) -> bool {
        match self {
            Attempt::Answered(status) => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Attempt::Unreachable(_) => true,
        }
    }
}

impl Worker {
    pub(super) fn new(
        config: WebhookConfig,
        app_id: u64,
        store: Arc<Store>,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        // RFC 6761: every `*.localhost` name is loopback, but glibc only
        // resolves the bare name; the local platform lives at `api.localhost`.
        if let Ok(url) = url::Url::parse(&config.url)
            && let Some(host) = url.host_str()
            && host.ends_with(".localhost")
        {
            let port = url.port_or_known_default().unwrap_or(80);
            builder = builder.resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let client = builder.build()?;
        Ok(Worker {
            config,
            app_id,
            store,
            client,
        })
    }

    pub(super) async fn run(self, mut queue: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = queue.recv().await {
            self.deliver(job).await;
        }
    }

    async fn attempt(&self, job: &Job) -> Attempt {
        let mut request = self
            .client
            .post(&self.config.url)
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/devgithub")
            .header("x-github-event", job.event)
            .header("x-github-delivery", &job.guid)
            .header("x-github-hook-id", hook_id(self.app_id).to_string())
            .header("x-github-hook-installation-target-type", "integration")
            .header(
                "x-github-hook-installation-target-id",
                self.app_id.to_string(),
            )
            .body(job.body.clone());
        if let Some(secret) = &self.config.secret {
            request = request.header("x-hub-signature-256", signature_256(secret, &job.body));
        }
        match request.send().await {
            Ok(response) => Attempt::Answered(response.status()),
            Err(e) => Attempt::Unreachable(e.to_string()),
        }
    }

    async fn deliver(&self, job: Job) {
        let mut delay = self.config.retry_delay;
        let max = self.config.max_attempts.max(1);
        for n in 1..=max {
            let outcome = self.attempt(&job).await;
            let last = n == max || !outcome.worth_retrying();
            let (status_code, error) = match &outcome {
                Attempt::Answered(s) => (Some(s.as_u16()), None),
                Attempt::Unreachable(e) => (None, Some(e.clone())),
            };
            let ok = matches!(&outcome, Attempt::Answered(s) if s.is_success());
            if !ok {
                tracing::warn!(
                    event = job.event, delivery = %job.guid, attempt = n,
                    status = ?status_code, error = ?error, "webhook delivery failed"
                );
            }
            self.store.update(|w| {
                if let Some(d) = w.delivery_mut(job.delivery_id) {
                    d.attempts = n;
                    d.status_code = status_code;
                    d.error.clone_from(&error);
                    if last {
                        d.status = if ok { "delivered" } else { "failed" }.into();
                        d.delivered_at = Some(now_rfc3339());
                    }
                }
            });
            if last {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(4);
        }
    }
}

/// A stable hook id for the app's one webhook.
fn hook_id(app_id: u64) -> u64 {
    400_000_000 + app_id
}
