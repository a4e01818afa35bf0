//! The delivery loop: reads undelivered messages from the outbox, sends
//! them to a [`Sink`] (the control plane), and marks delivered what the
//! sink says it has. Nothing is ever deleted before that, so every message
//! is delivered at least once; duplicates are the receiver's to drop.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Batch, Outbox};
use crate::callback::Backoff;

/// The receiver's answer: it holds every message of the batch's session up
/// to and including `acked_up_to` (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub acked_up_to: u64,
}

/// Why a delivery failed. The loop retries all of them, with back-off: an
/// undelivered message is never given up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("the control plane is unreachable ({0})")]
    Unreachable(String),
    #[error("the control plane refused the batch with HTTP {status} ({code})")]
    Refused { status: u16, code: String },
    #[error("the control plane sent an unusable reply")]
    BadReply,
}

impl DeliveryError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "delivery_unreachable",
            Self::Refused { .. } => "delivery_refused",
            Self::BadReply => "delivery_bad_reply",
        }
    }
}

/// Where batches go.
///
/// Over HTTP (`crate::acp::HttpSink`), with the
/// workspace's callback token:
///
/// ```text
/// POST /api/workspaces/{workspace_id}/sessions/{session_id}/messages
/// {"messages": [{"seq": 7, "created_at": 1700000000000, "kind": "...", "payload": {...}}, ...]}
/// → 200 {"acked_up_to": 9}
/// ```
///
/// `messages` are consecutive and ascending; `payload` is the stored JSON
/// as is. The API keeps, per session, the highest seq up to which it holds
/// every message: it stores the messages right after it, drops those at or
/// below it (redeliveries), stops at a gap, and answers that seq. So a
/// batch sent twice, or whose answer was lost, does no harm.
pub trait Sink: Send + Sync {
    fn deliver(&self, batch: &Batch) -> impl Future<Output = Result<Ack, DeliveryError>> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Messages read from the outbox per round (across sessions).
    pub max_messages: usize,
    /// Bytes of kinds and payloads per round; a single larger message
    /// still goes alone.
    pub max_bytes: usize,
    /// Waits after a failed round: doubled per failure, capped, jittered.
    pub backoff: Backoff,
    /// Delivered messages are kept this long (for inspection on the node),
    /// then pruned when the loop is idle.
    pub keep_delivered_ms: i64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_messages: 256,
            max_bytes: 1024 * 1024,
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
            },
            keep_delivered_ms: 10 * 60 * 1000,
        }
    }
}

/// How a round went.
enum Round {
    /// Nothing to send.
    Idle,
    /// Everything sent was (at least partly) taken: go again at once.
    Progress,
    /// Something failed: wait before the next round.
    Failed,
}

/// Delivers until `shutdown` turns `true` (or its sender goes away).
///
/// Rounds follow each other at once while they make progress; an idle loop
/// sleeps until the next append; a failed round waits the back-off (appends
/// do not cut it short, so a struggling API is not hammered). `clock` gives
/// Unix milliseconds, for delivery times and pruning.
///
/// Shutdown may interrupt a delivery or an ack; both are harmless, the
/// messages are simply sent again by the next loop.
pub async fn run_delivery<S, C>(
    outbox: Outbox,
    sink: S,
    config: DeliveryConfig,
    clock: C,
    mut shutdown: watch::Receiver<bool>,
) where
    S: Sink,
    C: Fn() -> i64 + Send + Sync,
{
    let mut delay = config.backoff.initial;
    loop {
        let round = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => return,
            round = deliver_round(&outbox, &sink, &config, &clock) => round,
        };
        let pause = match round {
            Round::Progress => {
                delay = config.backoff.initial;
                continue;
            }
            Round::Idle => {
                delay = config.backoff.initial;
                let before = clock().saturating_sub(config.keep_delivered_ms);
                if let Err(err) = outbox.prune(before).await {
                    tracing::warn!(%err, "cannot prune the outbox");
                }
                None
            }
            Round::Failed => {
                let pause = jittered(delay);
                delay = config.backoff.after(delay);
                Some(pause)
            }
        };
        tokio::select! {
            biased;
            () = stopped(&mut shutdown) => return,
            () = outbox.appended(), if pause.is_none() => {}
            () = tokio::time::sleep(pause.unwrap_or_default()), if pause.is_some() => {}
        }
    }
}

/// One pass over what is pending: every batch is tried, so one session the
/// API refuses does not hold up the others.
async fn deliver_round<S: Sink, C: Fn() -> i64>(
    outbox: &Outbox,
    sink: &S,
    config: &DeliveryConfig,
    clock: &C,
) -> Round {
    let batches = match outbox.pending(config.max_messages, config.max_bytes).await {
        Ok(batches) => batches,
        Err(err) => {
            tracing::warn!(%err, "cannot read the outbox");
            return Round::Failed;
        }
    };
    if batches.is_empty() {
        return Round::Idle;
    }
    let mut failed = false;
    for batch in &batches {
        let session = batch.session_id.as_str();
        let acked = match sink.deliver(batch).await {
            Ok(ack) => ack.acked_up_to,
            Err(err) => {
                tracing::warn!(session, code = err.code(), %err, "outbox delivery failed");
                failed = true;
                continue;
            }
        };
        // Only what this batch carried is taken as delivered: an answer
        // beyond it (a confused or replaying receiver) must not mark
        // messages that were never sent.
        let up_to = acked.min(batch.last_seq());
        if up_to < batch.first_seq() {
            // None of it taken: a gap on the receiver's side, or a receiver
            // that keeps refusing. Retrying at once would spin.
            tracing::warn!(
                session,
                acked,
                first = batch.first_seq(),
                "the control plane took none of the batch"
            );
            failed = true;
            continue;
        }
        if let Err(err) = outbox.ack(session, up_to, clock()).await {
            // Sent again later; the receiver drops the duplicates.
            tracing::warn!(session, %err, "cannot record an outbox delivery");
            failed = true;
        }
    }
    if failed {
        Round::Failed
    } else {
        Round::Progress
    }
}

/// Resolves once shutdown is asked for, or nobody can ask any more.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: nobody can ask to continue either.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Between half and all of `delay`, so agents that lost the API at the same
/// moment do not come back in lockstep.
fn jittered(delay: Duration) -> Duration {
    let half = delay / 2;
    half + half.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_all_of_the_delay() {
        let delay = Duration::from_millis(1000);
        for _ in 0..1000 {
            let got = jittered(delay);
            assert!(got >= delay / 2 && got <= delay, "{got:?}");
        }
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
    }
}
