//! What a run leaves behind: the summary table on stdout, and in `--out` the JSON summary
//! (`summary.json`, read by `scripts/loadtest.sh` and `loadgen-report`), one HdrHistogram
//! percentile-distribution file per metric (`*.hgrm`) and the per-second `timeline.csv`.
//!
//! Field names of `summary.json` are a contract with tools outside loadgen: add fields,
//! never rename them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Map, Value};

use std::time::Duration;

use crate::clock::Window;
use crate::config::Config;
use crate::cpu::WindowCpu;
use crate::reactor::Outcome;
use crate::stats::{Latency, Percentiles, ServerCounts};

/// The metrics written as `.hgrm` files and into `latency_us`, by name. The last four
/// only mean something where version-2 clients ran (`delivery_v1` where both did).
pub fn metrics(outcome: &Outcome) -> [(&'static str, &Latency); 10] {
    let m = &outcome.metrics;
    [
        ("connect", &m.connect),
        ("query", &m.query),
        ("delivery", &m.delivery),
        ("query_sent", &m.query_sent),
        ("query_ramp", &m.query_ramp),
        ("lag", &m.lag),
        ("delivery_v1", &m.delivery_v1),
        ("delivery_v2", &m.delivery_v2),
        ("echo", &m.echo),
        ("ping", &m.ping),
    ]
}

/// The metrics the summary table shows: the first six always, the others when they
/// have samples.
fn shown_metrics(outcome: &Outcome) -> impl Iterator<Item = (&'static str, &Latency)> {
    metrics(outcome)
        .into_iter()
        .enumerate()
        .filter(|(i, (_, h))| *i < 6 || h.count() > 0)
        .map(|(_, m)| m)
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({
        "count": p.count,
        "p50": p.p50,
        "p90": p.p90,
        "p99": p.p99,
        "p999": p.p999,
        "max": p.max,
        "mean": (p.mean * 10.0).round() / 10.0,
    })
}

fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (n as f64 / seconds * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// Length of a window in seconds; 0 for none.
fn seconds(window: Option<Window>) -> f64 {
    window.map_or(0.0, |w| w.len().as_secs_f64())
}

/// The connect window's length in seconds.
fn connect_s(outcome: &Outcome) -> f64 {
    seconds(outcome.connect)
}

/// The steady window's length in seconds.
fn steady_s(outcome: &Outcome) -> f64 {
    seconds(outcome.steady)
}

/// Unix seconds of a window's start and end: the run's start for a connect window that
/// never was, 0 for a steady window that never was.
fn unix(outcome: &Outcome, window: Option<Window>, none: f64) -> (f64, f64) {
    match window {
        Some(w) => (outcome.clock.unix(w.start), outcome.clock.unix(w.end)),
        None => (none, none),
    }
}

/// A stretch of the connect window shorter than this is judged together with its
/// neighbour: a few handshakes in a few milliseconds say nothing about a rate.
const SHORTEST_SLICE: Duration = Duration::from_millis(500);

/// The highest set-up rate over one second of the connect window: each second's
/// handshakes divided by the part of that second inside the window (the window rarely
/// starts and ends on a second). Short edge parts are merged into their neighbour. The
/// average over the window is a weighted mean of these rates, so it can never exceed the
/// peak, whereas a count per whole second can sit below the average of a window shorter
/// than a second (200 set-ups in 0.33 s is 614/s, not "200/s").
fn peak_handshakes_per_s(outcome: &Outcome) -> f64 {
    let Some(window) = outcome.connect else {
        return 0.0;
    };
    // (handshakes, time inside the window) per second of the timeline.
    let mut slices: Vec<(u64, Duration)> = outcome
        .timeline
        .iter()
        .filter_map(|tick| {
            let start = tick
                .end
                .checked_sub(Duration::from_secs(1))?
                .max(window.start);
            let end = tick.end.min(window.end);
            let inside = end.saturating_duration_since(start);
            (tick.handshakes > 0 || !inside.is_zero()).then_some((tick.handshakes, inside))
        })
        .collect();
    let merge = |slices: &mut Vec<(u64, Duration)>, from: usize, into: usize| {
        let (n, d) = slices.remove(from);
        let target = &mut slices[into];
        target.0 += n;
        target.1 += d;
    };
    while slices.len() > 1 && slices[0].1 < SHORTEST_SLICE {
        merge(&mut slices, 0, 0);
    }
    while slices.len() > 1 && slices[slices.len() - 1].1 < SHORTEST_SLICE {
        let last = slices.len() - 1;
        merge(&mut slices, last, last - 1);
    }
    slices
        .iter()
        .map(|&(n, d)| rate(n, d.as_secs_f64()))
        .fold(0.0, f64::max)
}

/// CPU seconds used in a window, as read at its edges (`null` for what was not read).
fn window_cpu_json(cpu: Option<WindowCpu>) -> Value {
    let secs = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1e6).round() / 1e6);
    match cpu {
        Some(w) => json!({
            "window_s": secs(Some(w.window)),
            "server": secs(w.used.server),
            "loadgen": secs(w.used.loadgen),
            "machine": secs(w.used.machine),
        }),
        None => Value::Null,
    }
}

/// The JSON summary.
pub fn summary_json(config: &Config, outcome: &Outcome) -> Value {
    let c = &outcome.counters;
    let [clients_v1, clients_v2] = config.clients_by_version();
    let mut latency = Map::new();
    for (name, h) in metrics(outcome) {
        latency.insert(name.to_string(), percentiles_json(&h.summary()));
    }
    let causes = |causes: &crate::stats::Causes| -> Value {
        Value::Object(
            causes
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(v)))
                .collect(),
        )
    };
    let (connect_start_unix, connect_end_unix) = unix(
        outcome,
        outcome.connect,
        outcome.clock.unix(outcome.clock.epoch()),
    );
    let (steady_start_unix, steady_end_unix) = unix(outcome, outcome.steady, 0.0);
    json!({
        "clients": config.clients,
        "connected": c.established,
        "joined": c.joined,
        "peak_in_channel": outcome.peak_members,
        "finished": outcome.finished,
        "errors": outcome.errors.total(),
        "errors_by_cause": causes(&outcome.errors),
        "disconnects": outcome.disconnects.total(),
        "disconnects_by_cause": causes(&outcome.disconnects),
        "queries": c.queries,
        "queries_total": c.queries_total,
        "queries_per_s": rate(c.queries, steady_s(outcome)),
        "messages_sent": c.messages_sent,
        "messages_received": c.messages_received,
        "messages_owed": outcome.loss.owed,
        "messages_owed_received": outcome.loss.received,
        "messages_lost": outcome.loss.lost,
        "messages_duplicated": outcome.loss.surplus,
        "duplicates": c.duplicates,
        "messages_pushed": c.pushed,
        "echoes_owed": outcome.loss.echoes_owed,
        "echoes_received": c.echoes_received,
        "echoes_owed_received": outcome.loss.echoes_received,
        "echoes_lost": outcome.loss.echoes_lost,
        "echoes_duplicated": outcome.loss.echoes_surplus,
        "pings": c.pings,
        "pongs": c.pongs,
        "protocol": config.protocol.name(),
        "clients_v1": clients_v1,
        "clients_v2": clients_v2,
        "messages_foreign": c.messages_foreign,
        "skip_notices": c.skip_notices,
        "skipped_entries": c.skipped_entries,
        "notices": c.notices,
        "unexpected_pdus": c.unexpected_pdus,
        "connect_window_s": (connect_s(outcome) * 1000.0).round() / 1000.0,
        "handshakes_per_s": rate(c.established, connect_s(outcome)),
        "peak_handshakes_per_s": peak_handshakes_per_s(outcome),
        "steady_s": (steady_s(outcome) * 1000.0).round() / 1000.0,
        "start_unix": outcome.clock.unix(outcome.clock.epoch()),
        "warmup_start_unix": outcome.warmup_start.map(|at| outcome.clock.unix(at)),
        "steady_start_unix": steady_start_unix,
        "steady_end_unix": steady_end_unix,
        "connect_start_unix": connect_start_unix,
        "connect_end_unix": connect_end_unix,
        "connect_cpu_s": window_cpu_json(outcome.connect_cpu),
        "steady_cpu_s": window_cpu_json(outcome.steady_cpu),
        "latency_us": Value::Object(latency),
        "servers": servers_json(config, outcome),
        "config": {
            "server": config.servers_text(),
            "settle_s": config.settle.as_secs_f64(),
            "channels": config.channels,
            "interval_s": config.interval.as_secs_f64(),
            "duration_s": config.duration.as_secs_f64(),
            "ramp_per_s": config.ramp,
            "max_setup": config.max_setup,
            "msg_every_s": config.msg_every.as_secs_f64(),
            "protocol": config.protocol.name(),
            "v2_percent": config.protocol.v2_percent(),
            "keepalive_s": config.keepalive.as_secs_f64(),
            "sources": config.sources.len(),
            "plaintext": config.plaintext,
            "no_verify": config.no_verify,
            "seed": config.seed,
        },
    })
}

/// Per server, in `--server` order: its address, the clients sent to it, and how many it
/// set up, joined and saw through the end of the run (zero where it saw nothing).
fn per_server<'a>(
    config: &'a Config,
    outcome: &'a Outcome,
) -> impl Iterator<Item = (SocketAddr, u32, ServerCounts)> + 'a {
    let clients = config.clients_by_server();
    config.servers.iter().enumerate().map(move |(i, &addr)| {
        let counts = outcome.servers.get(i).copied().unwrap_or_default();
        (addr, clients.get(i).copied().unwrap_or(0), counts)
    })
}

/// [`per_server`] as JSON.
fn servers_json(config: &Config, outcome: &Outcome) -> Value {
    let servers: Vec<Value> = per_server(config, outcome)
        .map(|(addr, clients, counts)| {
            json!({
                "addr": addr.to_string(),
                "clients": clients,
                "established": counts.established,
                "joined": counts.joined,
                "finished": counts.finished,
            })
        })
        .collect();
    Value::Array(servers)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The human summary printed at the end.
pub fn summary_table(config: &Config, outcome: &Outcome) -> String {
    let c = &outcome.counters;
    let mut out = String::new();
    let [v1, v2] = config.clients_by_version();
    let _ = writeln!(
        out,
        "loadgen: {} clients ({v1} protocol v1, {v2} v2), {} channels, interval {} s, \
         steady {:.1} s, {}",
        config.clients,
        config.channels,
        config.interval.as_secs_f64(),
        steady_s(outcome),
        if config.plaintext { "plaintext" } else { "TLS" }
    );
    let _ = writeln!(
        out,
        "  connected {} / {} (joined {}, finished {}) in {:.2} s: {:.0} handshakes/s over \
         that window, {:.0}/s in its busiest second",
        c.established,
        config.clients,
        c.joined,
        outcome.finished,
        connect_s(outcome),
        rate(c.established, connect_s(outcome)),
        peak_handshakes_per_s(outcome)
    );
    if config.servers.len() > 1 {
        for (addr, clients, counts) in per_server(config, outcome) {
            let _ = writeln!(
                out,
                "    server {addr}: connected {} / {clients} (joined {}, finished {})",
                counts.established, counts.joined, counts.finished
            );
        }
    }
    let _ = writeln!(
        out,
        "  queries {} in steady window ({:.0}/s), {} in all",
        c.queries,
        rate(c.queries, steady_s(outcome)),
        c.queries_total
    );
    let _ = writeln!(
        out,
        "  messages sent {}, received {}, owed {}, lost {}, duplicated {}, skipped entries {}",
        c.messages_sent,
        c.messages_received,
        outcome.loss.owed,
        outcome.loss.lost,
        outcome.loss.surplus,
        c.skipped_entries
    );
    if v2 > 0 {
        let _ = writeln!(
            out,
            "  echoes received {}, owed {}, lost {}, duplicated {}; pushed (messages and \
             echoes read with no QUERY in flight) {}; duplicate messages {}; keep-alive \
             PINGs {}, PONGs {}",
            c.echoes_received,
            outcome.loss.echoes_owed,
            outcome.loss.echoes_lost,
            outcome.loss.echoes_surplus,
            c.pushed,
            c.duplicates,
            c.pings,
            c.pongs
        );
    }
    let _ = writeln!(
        out,
        "  errors {}, disconnects {}",
        outcome.errors.total(),
        outcome.disconnects.total()
    );
    for (cause, n) in outcome.errors.iter() {
        let _ = writeln!(out, "    error {n:>8}  {cause}");
    }
    for (cause, n) in outcome.disconnects.iter() {
        let _ = writeln!(out, "    disconnect {n:>8}  {cause}");
    }
    let _ = writeln!(
        out,
        "  {:<11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "latency ms", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, h) in shown_metrics(outcome) {
        let p = h.summary();
        let _ = writeln!(
            out,
            "  {:<11} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10.3}",
            name,
            p.count,
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.p999),
            ms(p.max)
        );
    }
    out
}

/// The per-second timeline as CSV.
pub fn timeline_csv(outcome: &Outcome) -> String {
    let mut out = String::from(
        "t_s,stage,handshakes,in_channel,queries,query_p99_us,errors,delivered,delivery_p99_us\n",
    );
    for t in &outcome.timeline {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            crate::reactor::second(t, &outcome.clock),
            t.stage.label(),
            t.handshakes,
            t.members,
            t.queries,
            t.query_p99.as_micros(),
            t.errors,
            t.delivered,
            t.delivery_p99.as_micros()
        );
    }
    out
}

/// Checks, before a run, that `dir` (created if missing) takes files: a run of many
/// minutes must not end with results it cannot write.
pub fn check_writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".loadgen-write-check-{}", std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// Writes `summary.json`, `<metric>.hgrm` and `timeline.csv` into `dir` (created).
pub fn write_out(dir: &Path, config: &Config, outcome: &Outcome) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let summary = summary_json(config, outcome);
    let text = serde_json::to_string_pretty(&summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), text + "\n")?;
    for (name, h) in metrics(outcome) {
        std::fs::write(
            dir.join(format!("{name}.hgrm")),
            h.percentile_distribution(),
        )?;
    }
    std::fs::write(dir.join("timeline.csv"), timeline_csv(outcome))?;
    std::fs::write(dir.join("summary.txt"), summary_table(config, outcome))?;
    Ok(())
}

#[cfg(test)]
mod tests;
