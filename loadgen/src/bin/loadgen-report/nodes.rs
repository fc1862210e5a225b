//! The nodes of a network run (`scripts/loadtest.sh cluster-3x`): one /proc sample file
//! per node (`server-node<K>.csv`), redis-server's own (`redis.csv`), and what its `INFO`
//! said at the end of the run (`redis-info.txt`). Per node: the clients loadgen sent it and
//! set up there (`servers` in summary.json), CPU in the steady window, CPU per client, and
//! RSS; for Redis: CPU in the steady window, RSS, and its own memory and CPU counters.
//!
//! Only reads; a run of one server has no node files, and then no section.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::samples::{self, Sample};
use crate::{cpu_us_per_client_s, percent, show, steady_window};

/// One node's figures over the steady window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub addr: String,
    /// Clients loadgen sent to it, and the ones it set up (CLIENT_INFO acknowledged).
    pub clients: Option<f64>,
    pub connected: Option<f64>,
    /// CPU in the steady window, % of one core.
    pub cpu_percent: Option<f64>,
    /// CPU per connected client: µs of CPU per client per second of the window.
    pub cpu_us_per_client_s: Option<f64>,
    /// Median RSS in the steady window, KiB.
    pub rss_steady_kib: Option<f64>,
}

/// CPU % of one core and median RSS (KiB) of `samples` over `[a, b]`.
pub fn steady_use(samples: &[Sample], a: f64, b: f64) -> (Option<f64>, Option<f64>) {
    let cpu = samples::cpu_between(samples, a, b)
        .map(|cpu| (cpu, b - a))
        .and_then(percent);
    (cpu, samples::rss_median(samples, a, b))
}

/// The figures of node `k` from its samples and its entry in summary.json's `servers`.
pub fn node(samples: &[Sample], entry: Option<&Value>, steady: Option<(f64, f64)>) -> Node {
    let get = |k: &str| entry.and_then(|e| e.get(k)).and_then(Value::as_f64);
    let (cpu_percent, rss_steady_kib) = match steady {
        Some((a, b)) => steady_use(samples, a, b),
        None => (None, None),
    };
    let connected = get("established");
    Node {
        addr: entry
            .and_then(|e| e.get("addr"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
        clients: get("clients"),
        connected,
        cpu_percent,
        cpu_us_per_client_s: cpu_us_per_client_s(cpu_percent, connected),
        rss_steady_kib,
    }
}

/// `key:value` lines of `INFO` output (sections and blank lines skipped).
pub fn info(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The INFO fields the report shows, in this order.
const INFO_FIELDS: [&str; 8] = [
    "used_memory_human",
    "used_memory_peak_human",
    "used_memory_rss_human",
    "mem_fragmentation_ratio",
    "used_cpu_user",
    "used_cpu_sys",
    "connected_clients",
    "total_commands_processed",
];

/// The "Nodes and Redis" section, or `None` when the run had no node files.
pub fn section(dir: &Path, summary: &Value, clk_tck: f64) -> Option<String> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let files: Vec<String> = (0..)
        .map(|k| format!("server-node{k}.csv"))
        .take_while(|f| dir.join(f).exists())
        .collect();
    if files.is_empty() {
        return None;
    }
    let steady = steady_window(summary);
    let servers = summary.get("servers").and_then(Value::as_array);
    let mut md = String::from(
        "## Nodes and Redis\n\nEach node's CPU and RSS in the steady window, from its /proc \
         samples (CPU linear between samples); CPU per client is µs of CPU per connected \
         client per second, the figure to compare with a single node's in the same sitting \
         (the issue's target: within 1.5×).\n\n\
         | node | address | clients sent / set up | CPU (% of one core) | CPU per client | \
         RSS (median) |\n|---|---|---|---|---|---|\n",
    );
    for (k, file) in files.iter().enumerate() {
        let samples = samples::parse(&read(file).unwrap_or_default(), clk_tck);
        let n = node(&samples, servers.and_then(|s| s.get(k)), steady);
        let _ = writeln!(
            md,
            "| node{k} | {} | {} / {} | {} | {} | {} |",
            n.addr,
            show(n.clients, "", 0),
            show(n.connected, "", 0),
            show(n.cpu_percent, " %", 2),
            show(n.cpu_us_per_client_s, " µs/s", 3),
            show(n.rss_steady_kib.map(|k| k / 1024.0), " MiB", 1),
        );
    }
    let redis = samples::parse(&read("redis.csv").unwrap_or_default(), clk_tck);
    let (cpu, rss) = match steady {
        Some((a, b)) => steady_use(&redis, a, b),
        None => (None, None),
    };
    let _ = writeln!(
        md,
        "\nredis-server in the steady window: CPU {} of one core, RSS {} (median of its \
         /proc samples).\n",
        show(cpu, " %", 2),
        show(rss.map(|k| k / 1024.0), " MiB", 1)
    );
    let fields = info(&read("redis-info.txt").unwrap_or_default());
    if !fields.is_empty() {
        let _ = writeln!(
            md,
            "Its own counters at the end of the run (`INFO memory`, `INFO cpu`, `INFO \
             clients`, `INFO stats`; CPU in seconds since it started):\n\n| field | value \
             |\n|---|---|"
        );
        for name in INFO_FIELDS {
            if let Some((_, v)) = fields.iter().find(|(k, _)| k == name) {
                let _ = writeln!(md, "| `{name}` | {v} |");
            }
        }
        md.push('\n');
    }
    Some(md)
}
