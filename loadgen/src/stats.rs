//! What a run measured: latency histograms (HdrHistogram, microseconds), counters, and
//! errors and disconnects by cause.
//!
//! The histograms are fixed-bounds (1 µs to 1 hour, 3 significant figures) so that
//! recording never allocates and a value out of range is clamped rather than lost. This
//! module only stores and summarises; the reactor decides what to record and when.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest trackable latency: one hour, in microseconds.
const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        // The bounds are constants that hdrhistogram accepts.
        Latency(Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds"))
    }

    /// Records one latency, in whole microseconds clamped to the trackable range.
    pub fn record(&mut self, latency: Duration) {
        let us = latency.as_micros().min(u128::from(HIGHEST_US)) as u64;
        self.0.saturating_record(us.clamp(1, HIGHEST_US));
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at `quantile` (0..=1); 0 when empty.
    pub fn quantile(&self, quantile: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(quantile)
        }
    }

    /// Forgets every value (for the per-second progress window).
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// Adds every value `other` recorded.
    pub fn add(&mut self, other: &Latency) {
        // Both have the same bounds, so no value of `other` is out of this one's range.
        let _ = self.0.add(&other.0);
    }

    /// The summary the JSON output carries.
    pub fn summary(&self) -> Percentiles {
        Percentiles {
            count: self.count(),
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: if self.0.is_empty() { 0 } else { self.0.max() },
            mean: if self.0.is_empty() {
                0.0
            } else {
                self.0.mean()
            },
        }
    }

    /// The HdrHistogram percentile-distribution text format (what `HistogramLogProcessor`
    /// and wrk2 print, and what the HdrHistogram plotter reads), values in milliseconds.
    pub fn percentile_distribution(&self) -> String {
        let h = &self.0;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>12} {:>14} {:>10} {:>14}\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        );
        if !h.is_empty() {
            for v in h.iter_quantiles(5) {
                let value = v.value_iterated_to() as f64 / 1000.0;
                let q = v.quantile_iterated_to();
                let count = (q * h.len() as f64).round() as u64;
                if q < 1.0 {
                    let _ = writeln!(
                        out,
                        "{value:12.3} {q:2.12} {count:10} {:14.2}",
                        1.0 / (1.0 - q)
                    );
                } else {
                    let _ = writeln!(out, "{value:12.3} {q:2.12} {count:10}");
                }
            }
        }
        let (mean, sd, max) = if h.is_empty() {
            (0.0, 0.0, 0.0)
        } else {
            (
                h.mean() / 1000.0,
                h.stdev() / 1000.0,
                h.max() as f64 / 1000.0,
            )
        };
        let _ = writeln!(out, "#[Mean    = {mean:12.3}, StdDeviation   = {sd:12.3}]");
        let _ = writeln!(
            out,
            "#[Max     = {max:12.3}, Total count    = {:12}]",
            h.len()
        );
        let _ = writeln!(
            out,
            "#[Buckets = {:12}, SubBuckets     = {:12}]",
            h.buckets(),
            h.distinct_values()
        );
        out
    }
}

/// The percentiles of one metric, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// Every histogram of a run.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// TCP connect start → CLIENT_INFO acknowledgement.
    pub connect: Latency,
    /// QUERY due → up-to-date PDU, in the steady window (free of coordinated omission).
    pub query: Latency,
    /// QUERY handed to the connection → up-to-date PDU, steady window (the raw round trip;
    /// the gap to `query` is the generator's own lateness).
    pub query_sent: Latency,
    /// QUERY due → up-to-date PDU while clients were still connecting.
    pub query_ramp: Latency,
    /// Message due (time written inside it) → another member reads it: `delivery_v1`
    /// and `delivery_v2` together, filled in once by [`Metrics::with_delivery`] when the
    /// run ends rather than recorded a second time per message.
    pub delivery: Latency,
    /// Delivery latency by the reader's protocol version: version 1 waits for its next
    /// QUERY, version 2 is pushed (end-to-end latency).
    pub delivery_v1: Latency,
    pub delivery_v2: Latency,
    /// Message due → its echo reaches its version-2 sender.
    pub echo: Latency,
    /// Keep-alive PING due → PONG (version 2), for PINGs due in the steady window.
    pub ping: Latency,
    /// Deliveries of the last progress second, for the progress line and timeline.
    pub window_delivery: Latency,
    /// Generator lag: QUERY or message actually sent − due.
    pub lag: Latency,
    /// Queries of the last progress second, for the progress line.
    pub window_query: Latency,
}

impl Metrics {
    /// These metrics with `delivery` set to every delivery of either version.
    pub fn with_delivery(mut self) -> Metrics {
        self.delivery.reset();
        self.delivery.add(&self.delivery_v1);
        self.delivery.add(&self.delivery_v2);
        self
    }
}

/// Plain counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// TCP connects started.
    pub connects_started: u64,
    /// Clients whose CLIENT_INFO was acknowledged.
    pub established: u64,
    /// Clients whose JOIN_CHANNEL was acknowledged.
    pub joined: u64,
    /// QUERY answers completed in the steady window.
    pub queries: u64,
    /// QUERY answers completed over the whole run (ramp and drain included).
    pub queries_total: u64,
    /// SEND_MESSAGE PDUs handed to connections.
    pub messages_sent: u64,
    /// Chat messages read (by every member, each counted), echoes not included.
    pub messages_received: u64,
    /// Echoes read by version-2 senders.
    pub echoes_received: u64,
    /// Messages and echoes that arrived with no QUERY in flight: pushed (version 2).
    pub pushed: u64,
    /// Messages read a second time (or out of their sender's order): errors.
    pub duplicates: u64,
    /// Keep-alive PINGs sent and PONGs received (version 2).
    pub pings: u64,
    pub pongs: u64,
    /// Chat messages whose text was not a loadgen stamp.
    pub messages_foreign: u64,
    /// Notices read (joined/left/skipped/errors).
    pub notices: u64,
    /// `skipped` notices read, and the entries they declared.
    pub skip_notices: u64,
    pub skipped_entries: u64,
    /// PDUs the client state machine ignored as out of place.
    pub unexpected_pdus: u64,
    /// Connections that sent QUIT at the end.
    pub quits: u64,
}

/// What happened on one server (one node of a network): clients set up there, in their
/// channel, and through the end of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerCounts {
    /// Clients whose CLIENT_INFO it acknowledged.
    pub established: u64,
    /// Clients whose JOIN_CHANNEL it acknowledged.
    pub joined: u64,
    /// Clients that completed the end of the run on it.
    pub finished: u64,
}

/// Events counted by cause (errors, disconnects).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Causes(BTreeMap<String, u64>);

impl Causes {
    /// Counts one event.
    pub fn add(&mut self, cause: &str) {
        match self.0.get_mut(cause) {
            Some(n) => *n += 1,
            None => {
                self.0.insert(cause.to_string(), 1);
            }
        }
    }

    /// Total over every cause.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Cause → count, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

#[cfg(test)]
mod tests;
