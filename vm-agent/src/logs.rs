//! The agent's own recent log lines, kept in memory for the control plane.
//!
//! A node is often unreachable over SSH (or not worth reaching), yet "why is
//! this node unhappy?" is usually answered by the agent's last few hundred
//! lines. So next to the usual stdout subscriber, `main` installs a
//! [`LogLayer`] that turns every event that passes the log filter into a
//! [`LogLine`], keeps the last [`LogBuffer::CAPACITY`] of them in a ring
//! (oldest dropped, so memory stays bounded however long the node lives) and
//! publishes each on a broadcast channel for live followers. The HTTP side
//! (`/logs`, `/logs/stream`) lives in the server; this module knows nothing of
//! HTTP.
//!
//! Lines carry a sequence number, monotonic from 1, so a client can resume
//! (`since`) without duplicates and can tell from a jump that it missed some.
//!
//! The layer records exactly what tracing emits and nothing more: keeping
//! secrets out of the log is the job of the code that logs, and it already
//! does. Messages are capped at [`MAX_MESSAGE_BYTES`] so one huge line cannot
//! pin megabytes for 2000 lines' worth of time.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// A message longer than this (in bytes, message plus fields) is cut at a
/// character boundary and ends in `…`.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// How many lines a live follower may fall behind before it is told it
/// missed some. Followers only forward lines to a socket, so this is rarely
/// reached; when it is, the follower gets a gap rather than stalling logging.
const LIVE_CAPACITY: usize = 256;

/// One log line as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Monotonic from 1 for the life of the buffer.
    pub seq: u64,
    /// When the event was recorded, in Unix milliseconds.
    pub at: i64,
    /// `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR`.
    pub level: String,
    /// The event's target, usually its module path (`sam_vm_agent::callback`).
    pub target: String,
    /// The message followed by the event's fields as `key=value`.
    pub message: String,
}

/// The ring of recent lines plus the live channel. Cheap to clone: clones
/// share one buffer.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The ring and the sender are used under one lock, so a line's place in
    /// the ring, its seq and its place on the channel always agree, and a
    /// follower's snapshot and subscription meet without gap or overlap.
    ring: Mutex<Ring>,
    live: broadcast::Sender<LogLine>,
}

#[derive(Debug)]
struct Ring {
    lines: VecDeque<LogLine>,
    capacity: usize,
    last_seq: u64,
}

impl LogBuffer {
    /// How many lines the buffer keeps.
    pub const CAPACITY: usize = 2000;

    pub fn new() -> Self {
        Self::with_capacity(Self::CAPACITY, LIVE_CAPACITY)
    }

    fn with_capacity(capacity: usize, live_capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (live, _) = broadcast::channel(live_capacity.max(1));
        Self {
            shared: Arc::new(Shared {
                ring: Mutex::new(Ring {
                    lines: VecDeque::with_capacity(capacity),
                    capacity,
                    last_seq: 0,
                }),
                live,
            }),
        }
    }

    /// The tracing layer that records into this buffer.
    pub fn layer(&self) -> LogLayer {
        LogLayer {
            buffer: self.clone(),
        }
    }

    /// Buffered lines with `seq > since`, oldest first, at most `limit` of
    /// them (the oldest ones, so paging with the last seen seq reads every
    /// line once).
    pub fn lines_since(&self, since: u64, limit: usize) -> Vec<LogLine> {
        self.ring().after(since).take(limit).cloned().collect()
    }

    /// How many live followers are attached (open `/logs/stream` responses).
    pub fn followers(&self) -> usize {
        self.shared.live.receiver_count()
    }

    /// Every buffered line with `seq > since`, then each new line as it is
    /// recorded, with [`Followed::Missed`] when the follower fell behind the
    /// live channel. Ends once `until` resolves, after the lines already
    /// recorded by then (so a follower still sees "shutting down").
    pub(crate) fn follow<F>(
        &self,
        since: u64,
        until: F,
    ) -> impl Stream<Item = Followed> + Send + use<F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        use futures::StreamExt as _;

        let (backlog, subscription) = {
            let ring = self.ring();
            // Subscribing under the lock: every later line reaches the
            // subscription, every earlier one is in `backlog`.
            let subscription = self.shared.live.subscribe();
            (ring.after(since).cloned().collect::<Vec<_>>(), subscription)
        };
        let last = backlog.last().map_or(since, |line| line.seq);
        let state = (subscription, last, Box::pin(until), false);
        let live = futures::stream::unfold(state, next_live);
        futures::stream::iter(backlog.into_iter().map(Followed::Line)).chain(live)
    }

    /// Stores a line and publishes it; returns its seq.
    fn push(&self, at: i64, level: Level, target: String, message: String) -> u64 {
        let mut ring = self.ring();
        ring.last_seq += 1;
        let line = LogLine {
            seq: ring.last_seq,
            at,
            level: level.as_str().to_owned(),
            target,
            message,
        };
        if ring.lines.len() == ring.capacity {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line.clone());
        // No followers is not an error: the line is in the ring regardless.
        let _ = self.shared.live.send(line);
        ring.last_seq
    }

    /// A panic while holding the lock cannot leave the ring half-updated in a
    /// way that matters, so a poisoned lock is used as is: logging must not
    /// start panicking.
    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.shared
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A live follower: its subscription, the last seq it was given, when to
/// stop, and whether that time has come.
type Live<F> = (broadcast::Receiver<LogLine>, u64, Pin<Box<F>>, bool);

/// The next live line (or gap) for a follower; `None` once it is to stop.
///
/// Once `until` resolves, the lines already logged still go out, then the
/// follow ends; a steady flow of new lines cannot keep it open.
async fn next_live<F: Future<Output = ()>>(
    (mut subscription, mut last, mut until, mut stopping): Live<F>,
) -> Option<(Followed, Live<F>)> {
    loop {
        if !stopping && futures::FutureExt::now_or_never(&mut until).is_some() {
            stopping = true;
        }
        let next = if stopping {
            match subscription.try_recv() {
                Ok(line) => Ok(line),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    Err(RecvError::Lagged(missed))
                }
                Err(_) => return None,
            }
        } else {
            tokio::select! {
                next = subscription.recv() => next,
                () = &mut until => {
                    stopping = true;
                    continue;
                }
            }
        };
        let followed = match next {
            // Already in the backlog.
            Ok(line) if line.seq <= last => continue,
            Ok(line) => {
                last = line.seq;
                Followed::Line(line)
            }
            Err(RecvError::Lagged(missed)) => Followed::Missed(missed),
            Err(RecvError::Closed) => return None,
        };
        return Some((followed, (subscription, last, until, stopping)));
    }
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl Ring {
    /// Lines with `seq > since`. Seqs in the ring are contiguous and
    /// ascending, so this is a binary search, not a scan.
    fn after(&self, since: u64) -> impl Iterator<Item = &LogLine> {
        let start = self.lines.partition_point(|line| line.seq <= since);
        self.lines.range(start..)
    }
}

/// What a follower receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Followed {
    Line(LogLine),
    /// The follower fell behind and this many lines were skipped.
    Missed(u64),
}

/// A tracing layer recording each event into a [`LogBuffer`]. Filtering is
/// left to the subscriber it is stacked on (the agent's `EnvFilter`), so the
/// buffer holds what stdout shows.
#[derive(Debug, Clone)]
pub struct LogLayer {
    buffer: LogBuffer,
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut visitor = LineVisitor::default();
        // Formatting happens before the buffer's lock is taken: a field's
        // `Debug` may itself log.
        event.record(&mut visitor);
        let target = visitor
            .log_target
            .take()
            .unwrap_or_else(|| metadata.target().to_owned());
        self.buffer
            .push(now_ms(), *metadata.level(), target, visitor.finish());
    }
}

/// Collects an event's message and fields into one line.
#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
    /// The real target of an event bridged from the `log` crate, whose
    /// tracing target is just `log`.
    log_target: Option<String>,
}

impl LineVisitor {
    fn finish(self) -> String {
        let mut line = self.message;
        if line.is_empty() {
            line = self.fields.trim_start().to_owned();
        } else {
            line.push_str(&self.fields);
        }
        truncate(&mut line, MAX_MESSAGE_BYTES);
        line
    }
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "log.target" => self.log_target = Some(value.to_owned()),
            name if name.starts_with("log.") => {}
            // Quoted, as the stdout formatter shows them.
            _ => self.record_debug(field, &value),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            // `fmt::Arguments` debug-prints without quotes.
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            name if name.starts_with("log.") => {}
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }
}

/// Cuts `line` to at most `max` bytes (plus the marker) at a char boundary.
fn truncate(line: &mut String, max: usize) {
    if line.len() > max {
        let end = line.floor_char_boundary(max);
        line.truncate(end);
        line.push('…');
    }
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    fn push_n(buffer: &LogBuffer, n: usize) {
        for i in 0..n {
            buffer.push(
                1_700_000_000_000,
                Level::INFO,
                "t".to_owned(),
                format!("line {i}"),
            );
        }
    }

    fn seqs(lines: &[LogLine]) -> Vec<u64> {
        lines.iter().map(|l| l.seq).collect()
    }

    #[test]
    fn seqs_start_at_one_and_increase() {
        let buffer = LogBuffer::new();
        push_n(&buffer, 3);
        let lines = buffer.lines_since(0, 100);
        assert_eq!(seqs(&lines), [1, 2, 3]);
        assert_eq!(lines[0].message, "line 0");
        assert_eq!(lines[2].message, "line 2");
    }

    #[test]
    fn the_ring_keeps_only_the_newest_lines() {
        let buffer = LogBuffer::with_capacity(5, 16);
        push_n(&buffer, 12);
        let lines = buffer.lines_since(0, 100);
        assert_eq!(seqs(&lines), [8, 9, 10, 11, 12]);
        assert_eq!(lines[0].message, "line 7");
    }

    #[test]
    fn the_default_capacity_is_2000_lines() {
        let buffer = LogBuffer::new();
        push_n(&buffer, 2100);
        let lines = buffer.lines_since(0, usize::MAX);
        assert_eq!(lines.len(), 2000);
        assert_eq!(lines.first().unwrap().seq, 101);
        assert_eq!(lines.last().unwrap().seq, 2100);
    }

    #[test]
    fn since_and_limit_select_the_oldest_lines_after_since() {
        let buffer = LogBuffer::with_capacity(5, 16);
        push_n(&buffer, 12);
        assert_eq!(seqs(&buffer.lines_since(9, 100)), [10, 11, 12]);
        assert_eq!(seqs(&buffer.lines_since(9, 2)), [10, 11]);
        // Older than the ring: what is left, from the oldest.
        assert_eq!(seqs(&buffer.lines_since(3, 2)), [8, 9]);
        assert!(buffer.lines_since(12, 100).is_empty());
        assert!(buffer.lines_since(99, 100).is_empty());
        assert!(buffer.lines_since(0, 0).is_empty());
    }

    #[test]
    fn the_layer_formats_level_target_message_and_fields() {
        let buffer = LogBuffer::new();
        let subscriber = tracing_subscriber::registry().with(buffer.layer());
        let before = now_ms();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "sam_test", attempt = 3, reason = %"timed out", code = "busy", "ready call failed");
            tracing::error!(ok = false);
        });
        let lines = buffer.lines_since(0, 10);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].level, "WARN");
        assert_eq!(lines[0].target, "sam_test");
        assert_eq!(
            lines[0].message,
            r#"ready call failed attempt=3 reason=timed out code="busy""#
        );
        assert!(lines[0].at >= before && lines[0].at <= now_ms());
        assert_eq!(lines[1].level, "ERROR");
        assert_eq!(lines[1].target, "sam_vm_agent::logs::tests");
        assert_eq!(lines[1].message, "ok=false");
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let buffer = LogBuffer::new();
        let subscriber = tracing_subscriber::registry().with(buffer.layer());
        // Two-byte chars, so the cut lands mid-char unless it is careful.
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        tracing::subscriber::with_default(subscriber, || tracing::info!("x{long}"));
        let message = &buffer.lines_since(0, 1)[0].message;
        assert!(message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert!(message.starts_with("xéé"));
        assert!(message.ends_with('…'));
    }

    #[tokio::test]
    async fn followers_get_the_backlog_after_since_then_live_lines() {
        let buffer = LogBuffer::with_capacity(10, 16);
        push_n(&buffer, 4);
        let mut follow = Box::pin(buffer.follow(2, std::future::pending()));
        assert_eq!(buffer.followers(), 1);
        push_n(&buffer, 1);
        let got: Vec<_> = (&mut follow).take(3).collect().await;
        let seqs: Vec<_> = got
            .iter()
            .map(|f| match f {
                Followed::Line(line) => line.seq,
                Followed::Missed(n) => panic!("unexpected gap of {n}"),
            })
            .collect();
        assert_eq!(seqs, [3, 4, 5]);
        drop(follow);
        assert_eq!(buffer.followers(), 0);
    }

    #[tokio::test]
    async fn a_lagging_follower_is_told_how_many_lines_it_missed() {
        let buffer = LogBuffer::with_capacity(100, 4);
        let mut follow = Box::pin(buffer.follow(0, std::future::pending()));
        push_n(&buffer, 10);
        assert_eq!(follow.next().await, Some(Followed::Missed(6)));
        let Some(Followed::Line(line)) = follow.next().await else {
            panic!("expected a line after the gap");
        };
        assert_eq!(line.seq, 7);
        assert_eq!(line.message, "line 6");
    }

    #[tokio::test]
    async fn a_follower_ends_after_the_lines_recorded_before_until() {
        let buffer = LogBuffer::with_capacity(10, 16);
        push_n(&buffer, 1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut follow = Box::pin(buffer.follow(0, async {
            let _ = stopped.await;
        }));
        assert!(matches!(follow.next().await, Some(Followed::Line(l)) if l.seq == 1));
        push_n(&buffer, 2);
        stop.send(()).unwrap();
        let rest: Vec<_> = follow.collect().await;
        assert_eq!(rest.len(), 2, "{rest:?}");
        assert!(matches!(&rest[1], Followed::Line(l) if l.seq == 3));
    }
}
