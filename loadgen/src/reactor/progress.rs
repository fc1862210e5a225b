//! Once a second: one row of the run's timeline (`timeline.csv`, the report's plots) and,
//! unless `--quiet`, one progress line on stderr. Reads the record; never changes what
//! the run measures, except that it empties the per-second QUERY histogram.

use super::record::Record;
use super::stages::RunStage;

/// One second of the run, for `timeline.csv` and the report's plots.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    /// Seconds since the start.
    pub t: u64,
    pub stage: RunStage,
    /// Clients established (CLIENT_INFO acknowledged) during this second.
    pub handshakes: u64,
    /// Clients in their channel at the end of the second.
    pub members: u64,
    /// QUERY answers completed during this second.
    pub queries: u64,
    /// p99 of the QUERY latency of this second (µs).
    pub query_p99_us: u64,
    /// Errors so far.
    pub errors: u64,
}

/// The timeline so far and where the next second starts.
#[derive(Debug)]
pub struct Progress {
    next_tick_us: u64,
    /// Counters at the previous tick.
    established: u64,
    queries: u64,
    timeline: Vec<Tick>,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            next_tick_us: 1_000_000,
            established: 0,
            queries: 0,
            timeline: Vec::new(),
        }
    }

    /// When the next second ends.
    pub fn next_deadline(&self) -> u64 {
        self.next_tick_us
    }

    /// Closes the second that ended by `now`, if any: appends its row and returns it.
    pub fn tick(
        &mut self,
        now: u64,
        stage: RunStage,
        members: u64,
        record: &mut Record,
    ) -> Option<Tick> {
        if now < self.next_tick_us {
            return None;
        }
        let t = self.next_tick_us / 1_000_000;
        self.next_tick_us += 1_000_000;
        let c = &record.counters;
        let handshakes = c.established - self.established;
        let queries = c.queries - self.queries;
        self.established = c.established;
        self.queries = c.queries;
        let query_p99_us = record.metrics.window_query.quantile(0.99);
        record.metrics.window_query.reset();
        let tick = Tick {
            t,
            stage,
            handshakes,
            members,
            queries,
            query_p99_us,
            errors: record.errors.total(),
        };
        self.timeline.push(tick);
        Some(tick)
    }

    /// Every second so far.
    pub fn into_timeline(self) -> Vec<Tick> {
        self.timeline
    }
}

/// The progress line of `tick`.
pub fn line(tick: &Tick, clients: u32, record: &Record) -> String {
    let c = &record.counters;
    let m = &record.metrics;
    format!(
        "[{:>4}s] {:<6} connected {}/{} (+{}/s) in-channel {} | queries/s {} \
         p99 {:.2} ms (run {:.2} ms) lag p99 {:.2} ms | msgs sent {} recv {} | errors {} disconnects {}",
        tick.t,
        tick.stage.name(),
        c.established,
        clients,
        tick.handshakes,
        tick.members,
        tick.queries,
        tick.query_p99_us as f64 / 1000.0,
        m.query.quantile(0.99) as f64 / 1000.0,
        m.lag.quantile(0.99) as f64 / 1000.0,
        c.messages_sent,
        c.messages_received,
        record.errors.total(),
        record.disconnects.total(),
    )
}
