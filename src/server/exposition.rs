//! The metrics in the Prometheus text format (0.0.4): what a scrape of `/metrics` gets.
//! Built from the reactor's plain counters (`stats.rs`), the hub and the connection slab,
//! only when a scrape asks, and encoded by prometheus-client. Nothing here runs per PDU,
//! and nothing here touches a socket.
//!
//! Each scrape registers fresh metrics set to the counters' values: prometheus-client's
//! own metrics are atomics meant to be shared, which a one-thread reactor does not need on
//! its hot path, and a scrape every few seconds can afford a few dozen small allocations.
//! Every metric is described in the README's "Metrics" section; keep the two together.

use std::fmt;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use super::stats::{
    rss_kib, CloseReason, DeadlineKind, Latency, Stats, COMMANDS, LATENCY_BOUNDS_US,
};
use crate::store::StoreProgress;
use kaichat_proto::hub::Hub;

/// The `Content-Type` of what [`encode`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Connections by where they are in their life, counted over the slab at the scrape.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lives {
    pub setting_up: usize,
    pub established: usize,
    pub closing: usize,
}

/// What a scrape reads: the counters and the state they do not hold.
pub struct Snapshot<'a> {
    pub stats: &'a Stats,
    pub hub: &'a Hub,
    pub lives: Lives,
    pub max_clients: usize,
    pub uptime_ms: u64,
    /// `None` without `--store`.
    pub store: Option<StoreProgress>,
    /// Cluster mode: whether the connection to Redis is up; `None` without `--redis`.
    pub redis_up: Option<bool>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabel {
    command: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: &'static str,
}

/// The QUERY latency histogram as counted by the reactor: fixed buckets of plain counts,
/// which prometheus-client's own (locked, observe-only) histogram cannot be set from.
#[derive(Debug)]
struct LatencyHistogram(Latency);

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let bounds = LATENCY_BOUNDS_US
            .iter()
            .map(|&micros| micros as f64 / 1e6)
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(self.0.buckets).collect();
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum_us as f64 / 1e6,
            self.0.count,
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

fn counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

fn gauge(value: usize) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

fn float_gauge(value: f64) -> Gauge<f64, AtomicU64> {
    let gauge = Gauge::<f64, AtomicU64>::default();
    gauge.set(value);
    gauge
}

/// PDU counts by command, one member per label of [`COMMANDS`].
fn by_command(counts: &[u64; COMMANDS.len()]) -> Family<CommandLabel, Counter> {
    let family = Family::<CommandLabel, Counter>::default();
    for (command, &count) in COMMANDS.iter().zip(counts) {
        family
            .get_or_create(&CommandLabel { command })
            .inc_by(count);
    }
    family
}

/// Encodes every metric, in the Prometheus text format.
pub fn encode(snapshot: &Snapshot) -> String {
    let Snapshot {
        stats, hub, lives, ..
    } = snapshot;
    let mut registry = Registry::with_prefix("kaichat");

    let states = Family::<StateLabel, Gauge>::default();
    for (state, count) in [
        ("setting_up", lives.setting_up),
        ("established", lives.established),
        ("closing", lives.closing),
    ] {
        states
            .get_or_create(&StateLabel { state })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    registry.register(
        "connections",
        "Client connections open, by state: setting_up (TLS handshake to accepted name), \
         established, closing (saying goodbye)",
        states,
    );
    registry.register(
        "max_clients",
        "Connections served at once (--max-clients); more wait in the listen backlog",
        gauge(snapshot.max_clients),
    );
    registry.register(
        "connections_accepted",
        "Client connections accepted",
        counter(stats.accepted),
    );
    registry.register(
        "setups_completed",
        "Connections whose set-up completed: PING, version and a name accepted",
        counter(stats.setups),
    );

    let closes = Family::<ReasonLabel, Counter>::default();
    for reason in CloseReason::ALL {
        closes
            .get_or_create(&ReasonLabel {
                reason: reason.name(),
            })
            .inc_by(stats.closes(reason));
    }
    registry.register(
        "connections_closed",
        "Client connections closed, by the reason the server decided to close",
        closes,
    );

    registry.register(
        "pdus_received",
        "PDUs received from clients, by command (unknown: no command code)",
        by_command(stats.pdus_received()),
    );
    registry.register(
        "pdus_sent",
        "PDUs sent to clients, by command",
        by_command(stats.pdus_sent()),
    );
    registry.register_with_unit(
        "received",
        "Bytes read from client sockets: TLS records, handshakes included (PDUs with \
         --plaintext)",
        Unit::Bytes,
        counter(stats.bytes_in),
    );
    registry.register_with_unit(
        "sent",
        "Bytes written to client sockets: TLS records, handshakes included (PDUs with \
         --plaintext)",
        Unit::Bytes,
        counter(stats.bytes_out),
    );

    registry.register(
        "channels",
        "Open channels (a channel closes with its last member)",
        gauge(hub.channels()),
    );
    registry.register(
        "history_entries",
        "History entries (messages and join/leave notices) retained in open channels",
        gauge(hub.retained()),
    );
    registry.register(
        "messages_posted",
        "Chat messages posted to a channel",
        counter(hub.messages()),
    );

    registry.register_with_unit(
        "query_answer_duration",
        "Time from a QUERY taken off its connection to the last byte of its answer \
         written to the socket",
        Unit::Seconds,
        LatencyHistogram(stats.query_latency.clone()),
    );
    registry.register(
        "output_bound_pauses",
        "Times a connection stopped reading because its unwritten output was above the \
         bound (16 KiB): a client reading slower than it asks",
        counter(stats.output_pauses),
    );

    let expiries = Family::<KindLabel, Counter>::default();
    for kind in DeadlineKind::ALL {
        expiries
            .get_or_create(&KindLabel { kind: kind.name() })
            .inc_by(stats.expiries(kind));
    }
    registry.register(
        "deadline_expiries",
        "Deadlines that passed, by kind: handshake (a set-up phase), idle (an established \
         client silent), linger (a closing connection given up on)",
        expiries,
    );

    let pauses = Family::<CauseLabel, Counter>::default();
    for (cause, count) in [
        ("fd", stats.refused_no_fd),
        ("max_clients", stats.paused_max_clients),
    ] {
        pauses.get_or_create(&CauseLabel { cause }).inc_by(count);
    }
    registry.register(
        "accept_pauses",
        "Times accepting paused, by cause: fd (out of file descriptors), max_clients \
         (--max-clients connections open)",
        pauses,
    );

    let refusals = Family::<CauseLabel, Counter>::default();
    for (cause, count) in [
        ("max_per_address", stats.refused_max_per_address),
        ("accept_rate", stats.refused_accept_rate),
        ("banned", stats.refused_banned),
    ] {
        refusals.get_or_create(&CauseLabel { cause }).inc_by(count);
    }
    registry.register(
        "connections_refused",
        "Client connections closed right after accept, before any TLS, by the limit of \
         their address they were over: max_per_address (--max-per-address connections \
         open), accept_rate (new connections faster than --accept-rate), banned (a server \
         ban of the address)",
        refusals,
    );

    if let Some(store) = snapshot.store {
        registry.register(
            "store_committed_entries",
            "History entries the store's writer committed to the database since start",
            counter(store.committed),
        );
        registry.register(
            "store_lag_entries",
            "History entries handed to the store's writer or queued for it, not yet committed",
            gauge(usize::try_from(store.lag).unwrap_or(usize::MAX)),
        );
        registry.register(
            "store_not_persisted_entries",
            "History entries dropped from the store's queue when it was full: kept in memory \
             only, not in the database",
            counter(store.not_persisted),
        );
        registry.register(
            "store_failing",
            "1 while the store's last write failed (a full disk, an I/O error) and is being \
             retried; 0 otherwise",
            gauge(usize::from(store.failing)),
        );
    }

    if let Some(up) = snapshot.redis_up {
        registry.register(
            "redis_up",
            "Cluster mode (--redis): 1 while the connection to Redis is up; 0 while it is \
             being made again, when new set-ups, joins and messages are refused",
            gauge(usize::from(up)),
        );
    }

    registry.register_with_unit(
        "uptime",
        "Time since the server started",
        Unit::Seconds,
        float_gauge(snapshot.uptime_ms as f64 / 1000.0),
    );
    if let Some(kib) = rss_kib() {
        registry.register_with_unit(
            "resident_memory",
            "Resident set size of the server process",
            Unit::Bytes,
            gauge(usize::try_from(kib.saturating_mul(1024)).unwrap_or(usize::MAX)),
        );
    }
    if let Some(fds) = open_fds() {
        registry.register(
            "open_fds",
            "File descriptors the server process has open",
            gauge(fds),
        );
    }

    let mut text = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

/// The process's open file descriptors, from /proc (Linux).
fn open_fds() -> Option<usize> {
    // The directory's own descriptor, open while it is read, is one of them.
    Some(
        std::fs::read_dir("/proc/self/fd")
            .ok()?
            .count()
            .saturating_sub(1),
    )
}

#[cfg(test)]
mod tests;
