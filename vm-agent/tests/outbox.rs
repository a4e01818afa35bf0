//! The session message outbox end to end, in-process: a real SQLite file,
//! the real delivery loop, and a fake control plane (the `Sink`) that
//! deduplicates by sequence like the API will, and misbehaves on purpose.

// Test helpers outside `#[test]` functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use sam_vm_agent::Backoff;
use sam_vm_agent::outbox::{
    Ack, Batch, DeliveryConfig, DeliveryError, Outbox, OutboxStore, Sink, run_delivery,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Fast retries, so faults cost milliseconds.
fn fast_config() -> DeliveryConfig {
    DeliveryConfig {
        max_messages: 16,
        max_bytes: 4096,
        backoff: Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(20),
        },
        keep_delivered_ms: 0,
    }
}

/// A clock that ticks on every read: delivery times differ, and pruning
/// (which keeps nothing with `keep_delivered_ms: 0`) runs for real.
fn ticking_clock() -> impl Fn() -> i64 + Send + Sync + 'static {
    let now = Arc::new(AtomicI64::new(1_000));
    move || now.fetch_add(1, Ordering::Relaxed)
}

/// One life of a vm-agent: its outbox handle and running delivery loop.
struct Life {
    outbox: Outbox,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Life {
    fn start<S: Sink + 'static>(path: &Path, sink: S, config: DeliveryConfig) -> Self {
        let outbox = Outbox::new(OutboxStore::open(path).unwrap());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_delivery(
            outbox.clone(),
            sink,
            config,
            ticking_clock(),
            stopped,
        ));
        Self { outbox, stop, task }
    }

    /// A clean shutdown: the loop must notice promptly.
    async fn shut_down(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the delivery loop ignored shutdown")
            .unwrap();
    }

    /// A kill: the loop stops wherever it is (mid-delivery, mid-ack).
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    async fn wait_until_delivered(&self) {
        let drained = async {
            while self.outbox.stats().await.unwrap().pending > 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), drained)
            .await
            .expect("the outbox never drained");
    }
}

async fn append(outbox: &Outbox, session: &str, n: usize) -> u64 {
    let payload = serde_json::json!({ "n": n, "session": session }).to_string();
    outbox
        .append(session, "session_update", payload, 1)
        .await
        .unwrap()
}

// --- The fake control plane. ---------------------------------------------

/// What the fake API holds and saw.
#[derive(Default)]
struct Received {
    /// Per session, the payloads held: index `i` is seq `i + 1`.
    held: BTreeMap<String, Vec<String>>,
    /// Messages at or below what was already held (redeliveries).
    duplicates: usize,
    /// A redelivery whose payload differs from the held one: a seq reused
    /// for another message. Must stay 0.
    mismatches: usize,
    /// Batches that skipped past what was held. Must stay 0.
    gaps: usize,
    /// Calls that misbehaved on purpose.
    faults: usize,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    /// Connection refused: nothing processed.
    Refuse,
    /// Processed, then the connection dropped before the answer.
    LoseReply,
    /// Takes only a prefix of the batch.
    TakePart,
    /// Claims more than the batch carried.
    OverAck,
}

/// Behaves like the API: stores the messages right after what it holds,
/// drops redeliveries, stops at a gap, answers what it holds.
#[derive(Clone)]
struct FakeApi {
    received: Arc<Mutex<Received>>,
    rng: Arc<Mutex<StdRng>>,
    fault_rate: f64,
}

impl FakeApi {
    fn new(seed: u64, fault_rate: f64) -> Self {
        Self {
            received: Arc::default(),
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
            fault_rate,
        }
    }
}

impl Sink for FakeApi {
    async fn deliver(&self, batch: &Batch) -> Result<Ack, DeliveryError> {
        let (fault, latency, part, extra) = {
            let mut rng = self.rng.lock().unwrap();
            let fault = if rng.random_bool(self.fault_rate) {
                match rng.random_range(0..4) {
                    0 => Fault::Refuse,
                    1 => Fault::LoseReply,
                    2 => Fault::TakePart,
                    _ => Fault::OverAck,
                }
            } else {
                Fault::None
            };
            let latency = Duration::from_micros(rng.random_range(0..1500));
            let part = rng.random_range(0..=batch.messages.len());
            (fault, latency, part, rng.random_range(1..50))
        };
        // Time in flight, during which a restart can cut the call.
        tokio::time::sleep(latency).await;
        let mut received = self.received.lock().unwrap();
        if !matches!(fault, Fault::None) {
            received.faults += 1;
        }
        if matches!(fault, Fault::Refuse) {
            return Err(DeliveryError::Unreachable("connection refused".into()));
        }
        let take = if matches!(fault, Fault::TakePart) {
            part
        } else {
            batch.messages.len()
        };
        let mut duplicates = 0;
        let mut mismatches = 0;
        let mut gaps = 0;
        let held = received.held.entry(batch.session_id.clone()).or_default();
        for message in batch.messages.iter().take(take) {
            let have = held.len() as u64;
            if message.seq <= have {
                duplicates += 1;
                if held[usize::try_from(message.seq - 1).unwrap()] != message.payload {
                    mismatches += 1;
                }
            } else if message.seq == have + 1 {
                held.push(message.payload.clone());
            } else {
                gaps += 1;
                break;
            }
        }
        let acked_up_to = held.len() as u64;
        received.duplicates += duplicates;
        received.mismatches += mismatches;
        received.gaps += gaps;
        match fault {
            Fault::LoseReply => Err(DeliveryError::Unreachable("connection reset".into())),
            // Only when it does hold the whole batch: claiming to hold sent
            // messages it lacks would be an API bug no client can survive.
            Fault::OverAck if acked_up_to >= batch.last_seq() => Ok(Ack {
                acked_up_to: acked_up_to + extra,
            }),
            _ => Ok(Ack { acked_up_to }),
        }
    }
}

// --- The main scenario. ---------------------------------------------------

const SESSIONS: [&str; 4] = ["01SESSIONA", "01SESSIONB", "01SESSIONC", "01SESSIOND"];
const LIVES: usize = 12;

/// What one seeded schedule did, for the checks across seeds.
struct Outcome {
    duplicates: usize,
    faults: usize,
    kills: usize,
}

/// Appends interleaved with restarts (clean shutdowns and kills, the store
/// dropped and the same file reopened each time) against a faulty API,
/// then one last life that runs until the outbox is empty.
async fn run_schedule(seed: u64) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = OutboxStore::default_path(dir.path());
    let api = FakeApi::new(seed.wrapping_mul(31).wrapping_add(7), 0.3);
    let mut rng = StdRng::seed_from_u64(seed);
    // What was appended, per session: index `i` is seq `i + 1`.
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut n = 0;
    let mut kills = 0;

    for _ in 0..LIVES {
        let life = Life::start(&path, api.clone(), fast_config());
        for _ in 0..rng.random_range(0..40) {
            let session = SESSIONS[rng.random_range(0..SESSIONS.len())];
            let seq = append(&life.outbox, session, n).await;
            let list = sent.entry(session.to_owned()).or_default();
            list.push(serde_json::json!({ "n": n, "session": session }).to_string());
            assert_eq!(
                seq,
                list.len() as u64,
                "seed {seed}: seqs continue across restarts"
            );
            n += 1;
            if rng.random_bool(0.3) {
                tokio::time::sleep(Duration::from_micros(rng.random_range(0..3000))).await;
            }
        }
        if rng.random_bool(0.5) {
            life.shut_down().await;
        } else {
            kills += 1;
            life.kill().await;
        }
    }
    let last = Life::start(&path, api.clone(), fast_config());
    last.wait_until_delivered().await;
    last.shut_down().await;

    let received = api.received.lock().unwrap();
    assert_eq!(received.gaps, 0, "seed {seed}: a batch skipped messages");
    assert_eq!(received.mismatches, 0, "seed {seed}: a seq was reused");
    // Exactly once per seq after dedup, in order, none lost, none invented.
    let held: BTreeMap<String, Vec<String>> = received
        .held
        .iter()
        .filter(|(_, list)| !list.is_empty())
        .map(|(s, list)| (s.clone(), list.clone()))
        .collect();
    assert_eq!(held, sent, "seed {seed}: the API holds other messages");

    // Reopened once more: nothing left, and numbering still continues.
    let mut store = OutboxStore::open(&path).unwrap();
    assert_eq!(store.stats().unwrap().pending, 0);
    if let Some((session, list)) = sent.iter().next() {
        let next = store.append(session, "k", "{}", 1).unwrap();
        assert_eq!(next, list.len() as u64 + 1, "seed {seed}");
    }
    Outcome {
        duplicates: received.duplicates,
        faults: received.faults,
        kills,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_delivers_everything_in_order_across_restarts() {
    let mut totals = Outcome {
        duplicates: 0,
        faults: 0,
        kills: 0,
    };
    for seed in 0..8 {
        let outcome = run_schedule(seed).await;
        totals.duplicates += outcome.duplicates;
        totals.faults += outcome.faults;
        totals.kills += outcome.kills;
    }
    // The schedules did exercise what they are about.
    assert!(totals.faults > 50, "only {} faults", totals.faults);
    assert!(totals.duplicates > 0, "no redelivery was ever needed");
    assert!(totals.kills > 10, "only {} kills", totals.kills);
}

// --- Single behaviours of the loop. ---------------------------------------

type Answer = dyn Fn(&Batch, usize) -> Result<Ack, DeliveryError> + Send + Sync;

/// Answers the `n`th call (from 0) with `answer`, and records every batch.
#[derive(Clone)]
struct Scripted {
    calls: Arc<Mutex<Vec<Batch>>>,
    answer: Arc<Answer>,
}

impl Scripted {
    fn new(
        answer: impl Fn(&Batch, usize) -> Result<Ack, DeliveryError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            calls: Arc::default(),
            answer: Arc::new(answer),
        }
    }

    fn calls(&self) -> Vec<Batch> {
        self.calls.lock().unwrap().clone()
    }

    /// Every seq sent, in sending order.
    fn seqs_sent(&self) -> Vec<u64> {
        self.calls()
            .iter()
            .flat_map(|b| b.messages.iter().map(|m| m.seq))
            .collect()
    }
}

impl Sink for Scripted {
    async fn deliver(&self, batch: &Batch) -> Result<Ack, DeliveryError> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(batch.clone());
            calls.len() - 1
        };
        (self.answer)(batch, n)
    }
}

/// Polls `check` until it holds (5 s at most).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let wait = async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test]
async fn an_answer_beyond_the_batch_marks_only_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = OutboxStore::default_path(dir.path());
    let outbox = Outbox::new(OutboxStore::open(&path).unwrap());
    for n in 0..5 {
        append(&outbox, "s", n).await;
    }
    drop(outbox);
    // A receiver that claims everything; two messages per batch.
    let sink = Scripted::new(|_, _| {
        Ok(Ack {
            acked_up_to: u64::MAX,
        })
    });
    let config = DeliveryConfig {
        max_messages: 2,
        ..fast_config()
    };
    let life = Life::start(&path, sink.clone(), config);
    life.wait_until_delivered().await;
    life.shut_down().await;
    assert_eq!(sink.seqs_sent(), [1, 2, 3, 4, 5], "every message was sent");
}

#[tokio::test]
async fn a_partial_answer_gets_the_rest_sent_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = OutboxStore::default_path(dir.path());
    // Takes one message per call.
    let sink = Scripted::new(|batch, _| {
        Ok(Ack {
            acked_up_to: batch.first_seq(),
        })
    });
    let life = Life::start(&path, sink.clone(), fast_config());
    for n in 0..4 {
        append(&life.outbox, "s", n).await;
    }
    life.wait_until_delivered().await;
    let mut firsts: Vec<u64> = sink.calls().iter().map(Batch::first_seq).collect();
    firsts.dedup();
    assert_eq!(
        firsts,
        [1, 2, 3, 4],
        "each call starts where the last one stopped"
    );
    // Delivered messages are pruned once the loop is idle (nothing kept).
    let outbox = life.outbox.clone();
    let stats = async {
        loop {
            let stats = outbox.stats().await.unwrap();
            if stats.delivered == 0 {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let stats = tokio::time::timeout(Duration::from_secs(5), stats)
        .await
        .unwrap();
    assert_eq!(stats.pending, 0);
    life.shut_down().await;
}

#[tokio::test]
async fn an_idle_loop_wakes_at_once_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = OutboxStore::default_path(dir.path());
    let sink = Scripted::new(|batch, _| {
        Ok(Ack {
            acked_up_to: batch.last_seq(),
        })
    });
    // Nothing polls: only the append's signal can start a delivery.
    let config = DeliveryConfig {
        backoff: Backoff {
            initial: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        },
        ..fast_config()
    };
    let life = Life::start(&path, sink.clone(), config);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(sink.calls().is_empty());
    for round in 1..=3 {
        append(&life.outbox, "s", round).await;
        eventually("the delivery", || sink.calls().len() == round).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sink.seqs_sent(), [1, 2, 3]);
    life.shut_down().await;
}

#[tokio::test]
async fn failures_back_off_appends_do_not_cut_it_short_and_shutdown_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = OutboxStore::default_path(dir.path());
    let sink = Scripted::new(|_, _| {
        Err(DeliveryError::Refused {
            status: 503,
            code: "unavailable".into(),
        })
    });
    let config = DeliveryConfig {
        backoff: Backoff {
            initial: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        },
        ..fast_config()
    };
    let life = Life::start(&path, sink.clone(), config);
    append(&life.outbox, "s", 0).await;
    eventually("the first attempt", || sink.calls().len() == 1).await;
    append(&life.outbox, "s", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sink.calls().len(), 1, "an append skipped the back-off");
    let outbox = life.outbox.clone();
    // Mid back-off (an hour): shutdown still ends the loop at once.
    life.shut_down().await;
    assert_eq!(outbox.stats().await.unwrap().pending, 2, "nothing given up");
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_a_growing_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = OutboxStore::default_path(dir.path());
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&times);
    // Fails three times, then works.
    let sink = Scripted::new(move |batch, n| {
        seen.lock().unwrap().push(tokio::time::Instant::now());
        if n < 3 {
            Err(DeliveryError::Unreachable("down".into()))
        } else {
            Ok(Ack {
                acked_up_to: batch.last_seq(),
            })
        }
    });
    let config = DeliveryConfig {
        backoff: Backoff {
            initial: Duration::from_millis(40),
            max: Duration::from_millis(160),
        },
        ..fast_config()
    };
    let life = Life::start(&path, sink.clone(), config);
    append(&life.outbox, "s", 0).await;
    life.wait_until_delivered().await;
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 4);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Jitter keeps each wait within [delay/2, delay]: 40, 80, 160 ms.
    assert!(gaps[0] >= Duration::from_millis(20), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(40), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(80), "{gaps:?}");
    assert_eq!(sink.seqs_sent(), [1, 1, 1, 1]);
    life.shut_down().await;
}
