//! Once a second: one row of the run's timeline (`timeline.csv`, the report's plots) and,
//! unless `--quiet`, one progress line on stderr. Reads the record; never changes what
//! the run measures, except that it empties the per-second QUERY histogram.

use std::time::{Duration, Instant};

use super::record::Record;
use super::stages::RunStage;
use crate::clock::Clock;

/// One second of the run, for `timeline.csv` and the report's plots.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    /// The end of the second.
    pub end: Instant,
    pub stage: RunStage,
    /// Clients established (CLIENT_INFO acknowledged) during this second.
    pub handshakes: u64,
    /// Clients in their channel at the end of the second.
    pub members: u64,
    /// QUERY answers completed during this second.
    pub queries: u64,
    /// p99 of the latency of the steady QUERYs answered in this second.
    pub query_p99: Duration,
    /// Errors so far.
    pub errors: u64,
    /// Messages delivered (read by a member that was owed them) during this second, and
    /// the p99 of their delivery latency.
    pub delivered: u64,
    pub delivery_p99: Duration,
}

/// The timeline so far and where the next second starts.
#[derive(Debug)]
pub struct Progress {
    next_tick: Instant,
    /// Counters at the previous tick.
    established: u64,
    queries: u64,
    timeline: Vec<Tick>,
}

impl Progress {
    /// The first second starts at `start`.
    pub fn new(start: Instant) -> Progress {
        Progress {
            next_tick: start + Duration::from_secs(1),
            established: 0,
            queries: 0,
            timeline: Vec::new(),
        }
    }

    /// When the next second ends.
    pub fn next_deadline(&self) -> Instant {
        self.next_tick
    }

    /// Closes the second that ended by `now`, if any: appends its row and returns it.
    pub fn tick(
        &mut self,
        now: Instant,
        stage: RunStage,
        members: u64,
        record: &mut Record,
    ) -> Option<Tick> {
        if now < self.next_tick {
            return None;
        }
        let end = self.next_tick;
        self.next_tick += Duration::from_secs(1);
        let c = &record.counters;
        let handshakes = c.established - self.established;
        let queries = c.queries - self.queries;
        self.established = c.established;
        self.queries = c.queries;
        let query_p99 = Duration::from_micros(record.metrics.window_query.quantile(0.99));
        record.metrics.window_query.reset();
        let window = &mut record.metrics.window_delivery;
        let delivered = window.count();
        let delivery_p99 = Duration::from_micros(window.quantile(0.99));
        window.reset();
        let tick = Tick {
            end,
            stage,
            handshakes,
            members,
            queries,
            query_p99,
            errors: record.errors.total(),
            delivered,
            delivery_p99,
        };
        self.timeline.push(tick);
        Some(tick)
    }

    /// Every second so far.
    pub fn into_timeline(self) -> Vec<Tick> {
        self.timeline
    }
}

/// Whole seconds from the start of the run to the end of `tick` (its number).
pub fn second(tick: &Tick, clock: &Clock) -> u64 {
    clock.since_epoch(tick.end).as_secs_f64().round() as u64
}

/// The progress line of `tick`.
pub fn line(tick: &Tick, clock: &Clock, clients: u32, record: &Record) -> String {
    let c = &record.counters;
    let m = &record.metrics;
    format!(
        "[{:>4}s] {:<6} connected {}/{} (+{}/s) in-channel {} | queries/s {} \
         p99 {:.2} ms (run {:.2} ms) lag p99 {:.2} ms | msgs sent {} recv {} (p99 {:.2} ms) \
         echoes {} | errors {} disconnects {}",
        second(tick, clock),
        tick.stage.name(),
        c.established,
        clients,
        tick.handshakes,
        tick.members,
        tick.queries,
        tick.query_p99.as_secs_f64() * 1000.0,
        m.query.quantile(0.99) as f64 / 1000.0,
        m.lag.quantile(0.99) as f64 / 1000.0,
        c.messages_sent,
        c.messages_received,
        tick.delivery_p99.as_secs_f64() * 1000.0,
        c.echoes_received,
        record.errors.total(),
        record.disconnects.total(),
    )
}
