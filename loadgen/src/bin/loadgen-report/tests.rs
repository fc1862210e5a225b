use super::*;
use serde_json::json;

/// /proc samples once a second: `(t_unix, cpu seconds so far)`.
fn cpu_samples(points: &[(f64, f64)]) -> Vec<Sample> {
    points
        .iter()
        .map(|&(t, cpu_s)| Sample {
            t,
            rss_kib: 1000.0,
            cpu_s,
        })
        .collect()
}

/// A storm-like run: 200 connections set up in 0.33 s, inside one sample interval in
/// which the server used 70 ms of CPU (350 µs per connection).
fn short_connect_window() -> (Value, Vec<Sample>) {
    let summary = json!({
        "connected": 200,
        "queries": 0,
        "connect_start_unix": 100.30,
        "connect_end_unix": 100.63,
    });
    let server = cpu_samples(&[(99.0, 0.0), (100.0, 0.0), (101.0, 0.07), (102.0, 0.08)]);
    (summary, server)
}

#[test]
fn set_up_cost_comes_from_readings_at_the_window_edges() {
    let (mut summary, server) = short_connect_window();
    summary["connect_cpu_s"] =
        json!({"window_s": 0.33, "server": 0.07, "loadgen": 0.05, "machine": 0.2});
    let f = figures(&summary, &server, &server, &server, &BTreeMap::new());
    let per_conn = f.cpu_us_per_handshake.unwrap();
    assert!((per_conn - 350.0).abs() < 0.5, "{per_conn} µs");
    assert!(
        (f.handshakes_per_cpu_s.unwrap() - 2857.0).abs() < 1.0,
        "{f:?}"
    );
    let loadgen = f.loadgen_cpu_connect_percent.unwrap();
    assert!((loadgen - 15.15).abs() < 0.01, "{loadgen}");
    let machine = f.machine_cpu_connect_percent.unwrap();
    assert!((machine - 60.6).abs() < 0.1, "{machine}");
}

#[test]
fn a_window_shorter_than_the_sampling_gets_no_cpu_figure_from_the_samples() {
    // Without readings at the edges, the 1 s samples cannot say how the 70 ms were
    // spread: interpolating gives 115 µs per connection, a third of the truth.
    let (summary, server) = short_connect_window();
    let f = figures(&summary, &server, &server, &server, &BTreeMap::new());
    assert_eq!(f.cpu_connect_s, None, "{f:?}");
    assert_eq!(f.cpu_us_per_handshake, None, "{f:?}");
    assert_eq!(f.handshakes_per_cpu_s, None, "{f:?}");
    assert_eq!(f.loadgen_cpu_connect_percent, None, "{f:?}");
    assert_eq!(f.machine_cpu_connect_percent, None, "{f:?}");
    // A steady window of many samples is still measured from them.
    let summary = json!({
        "connected": 200,
        "queries": 1000,
        "steady_start_unix": 100.0,
        "steady_end_unix": 130.0,
    });
    let samples: Vec<(f64, f64)> = (0..50).map(|i| (90.0 + i as f64, i as f64 * 0.1)).collect();
    let server = cpu_samples(&samples);
    let f = figures(&summary, &server, &server, &server, &BTreeMap::new());
    assert!((f.cpu_percent.unwrap() - 10.0).abs() < 1e-6, "{f:?}");
}

/// A run folder as loadtest.sh leaves it, with a warm-up of 3 s between the ramp
/// (loadgen seconds 0-2) and a steady window of 10 s.
fn run_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let t0 = 1000.0;
    let summary = json!({
        "clients": 200, "connected": 200, "errors": 0, "messages_lost": 0,
        "queries": 660, "start_unix": t0 + 0.1,
        "connect_start_unix": t0 + 0.1, "connect_end_unix": t0 + 1.9,
        "warmup_start_unix": t0 + 2.0, "steady_start_unix": t0 + 5.0,
        "steady_end_unix": t0 + 15.0,
        "config": {"interval_s": 3.0, "msg_every_s": 5.0},
    });
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
    std::fs::write(
        dir.join("run.env"),
        format!("scenario=smoke\nloadgen_start_unix={t0}\nclk_tck=100\n"),
    )
    .unwrap();
    let mut proc = String::from("t_unix,rss_kib,cpu_ticks,cpu_ns\n");
    for i in 0..20 {
        proc += &format!(
            "{},{},{},{}\n",
            t0 - 2.0 + i as f64,
            5000 + i * 100,
            i,
            i * 10_000_000
        );
    }
    for f in ["server.csv", "loadgen-proc.csv", "machine.csv"] {
        std::fs::write(dir.join(f), &proc).unwrap();
    }
    let mut timeline =
        String::from("t_s,stage,handshakes,in_channel,queries,query_p99_us,errors\n");
    for t in 1..=16 {
        let stage = match t {
            1..=2 => "Ramp",
            3..=5 => "Warmup",
            6..=15 => "Steady",
            _ => "Quit",
        };
        let queries = if (6..=15).contains(&t) { 66 } else { 0 };
        timeline += &format!(
            "{t},{stage},{},200,{queries},500,0\n",
            if t <= 2 { 100 } else { 0 }
        );
    }
    std::fs::write(dir.join("timeline.csv"), timeline).unwrap();
    dir
}

#[test]
fn every_plot_over_time_marks_the_warm_up_and_the_steady_window() {
    let dir = run_dir("marks");
    report(&dir).unwrap();
    for svg in ["timeline.svg", "server.svg"] {
        let text = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(text.contains("warm-up"), "{svg} does not label the warm-up");
        // The steady window's edges, in orange.
        assert!(
            text.contains("#E67800"),
            "{svg} does not mark the steady window"
        );
    }
    let text = std::fs::read_to_string(dir.join("latency-query.svg")).unwrap();
    assert!(
        text.contains("steady window"),
        "latency-query.svg: which window?"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_report_explains_delivery_latency_under_polling() {
    let dir = run_dir("delivery");
    report(&dir).unwrap();
    let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    assert!(md.contains("Delivery latency"), "{md}");
    assert!(md.contains("0–3 s by design"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run folder of `scenario` whose summary is `run_dir`'s with `extra` fields set, and
/// `delivery_v1.hgrm` / `delivery_v2.hgrm` written with one value each.
fn v2_run_dir(name: &str, scenario: &str, extra: Value) -> PathBuf {
    let dir = run_dir(name);
    let mut summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        summary[k] = v.clone();
    }
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
    let env = std::fs::read_to_string(dir.join("run.env")).unwrap();
    std::fs::write(
        dir.join("run.env"),
        env.replace("scenario=smoke", &format!("scenario={scenario}")),
    )
    .unwrap();
    let hgrm = |ms: f64| {
        format!(
            "{:>12} {:>14}\n\n{ms:12.3} 0.000000000000 1 1.00\n{ms:12.3} 0.990000000000 1 100.00\n\
             {ms:12.3} 1.000000000000 1\n",
            "Value", "Percentile"
        )
    };
    std::fs::write(dir.join("delivery_v1.hgrm"), hgrm(1500.0)).unwrap();
    std::fs::write(dir.join("delivery_v2.hgrm"), hgrm(0.8)).unwrap();
    dir
}

#[test]
fn a_mixed_report_splits_delivery_by_protocol_and_explains_both() {
    let dir = v2_run_dir(
        "mixed",
        "mixed-19k",
        json!({
            "clients_v1": 100, "clients_v2": 100, "echoes_lost": 0, "echoes_owed": 40,
            "messages_owed": 400,
            "latency_us": {
                "delivery_v1": {"count": 200, "p99": 2_900_000},
                "delivery_v2": {"count": 200, "p99": 800},
                "echo": {"count": 40, "p99": 700},
            },
        }),
    );
    report(&dir).unwrap();
    let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    assert!(md.contains("**Version-2 readers** (`delivery_v2`)"), "{md}");
    assert!(md.contains("end-to-end"), "{md}");
    assert!(md.contains("**Version-1 readers** (`delivery_v1`)"), "{md}");
    assert!(md.contains("0–3 s by design"), "{md}");
    assert!(
        md.contains(
            "| delivery p99 < 5 ms for version-2 readers (end-to-end push) | 0.800 ms | met |"
        ),
        "{md}"
    );
    assert!(
        md.contains("for version-1 readers (polling, for comparison) | 2900.000 ms"),
        "{md}"
    );
    assert!(md.contains("| zero lost echoes"), "{md}");
    // One delivery plot, a line per protocol; the echo has its own plot.
    let svg = std::fs::read_to_string(dir.join("latency-delivery.svg")).unwrap();
    assert!(svg.contains("version-1 readers (polling)"), "legend");
    assert!(svg.contains("version-2 readers (pushed)"), "legend");
    assert!(dir.join("latency-echo.svg").exists());
    assert!(
        !dir.join("latency-ping.svg").exists(),
        "no PING samples, no plot"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_push_report_judges_the_push_targets_and_has_no_polling_note() {
    let dir = v2_run_dir(
        "push",
        "push-19k",
        json!({
            "clients_v1": 0, "clients_v2": 200, "echoes_lost": 3, "echoes_owed": 40,
            "latency_us": {"delivery_v2": {"count": 200, "p99": 7_500}},
        }),
    );
    report(&dir).unwrap();
    let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    assert!(md.contains("| 7.500 ms | **missed** |"), "{md}");
    assert!(md.contains("| 3 (of 40 owed) | **missed** |"), "{md}");
    assert!(md.contains("compare with a poll-19k report"), "{md}");
    assert!(!md.contains("by design"), "{md}");
    assert!(!md.contains("no close after QUIT"), "{md}");
    // Connections the server had not closed after the final QUIT: explained as such.
    let mut summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    summary["disconnects_by_cause"] = json!({"no close after QUIT": 150});
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
    report(&dir).unwrap();
    let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    assert!(md.contains("150 connections were not closed"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cluster_report_shows_every_node_and_redis() {
    let dir = v2_run_dir(
        "cluster",
        "cluster-3x",
        json!({
            "clients": 300, "connected": 300, "clients_v1": 150, "clients_v2": 150,
            "errors": 2, "messages_lost": 0, "messages_owed": 900, "messages_duplicated": 0,
            "echoes_lost": 0, "echoes_owed": 30, "echoes_duplicated": 1,
            "latency_us": {"delivery_v2": {"count": 200, "p99": 4_000}},
            "servers": [
                {"addr": "127.0.0.1:29400", "clients": 100, "established": 100},
                {"addr": "127.0.0.1:29401", "clients": 100, "established": 99},
                {"addr": "127.0.0.1:29402", "clients": 100, "established": 100},
            ],
        }),
    );
    // No single server: the nodes and redis-server were sampled instead.
    std::fs::remove_file(dir.join("server.csv")).unwrap();
    // Node K used (K + 1) × 10 ms of CPU a second; RSS 50 MiB; redis 5 ms a second.
    for k in 0..3u64 {
        let mut proc = String::from("t_unix,rss_kib,cpu_ticks,cpu_ns\n");
        for i in 0..20u64 {
            let ns = i * (k + 1) * 10_000_000;
            proc += &format!("{},51200,0,{ns}\n", 998 + i);
        }
        std::fs::write(dir.join(format!("server-node{k}.csv")), proc).unwrap();
    }
    let mut proc = String::from("t_unix,rss_kib,cpu_ticks,cpu_ns\n");
    for i in 0..20u64 {
        proc += &format!("{},10240,0,{}\n", 998 + i, i * 5_000_000);
    }
    std::fs::write(dir.join("redis.csv"), proc).unwrap();
    std::fs::write(
        dir.join("redis-info.txt"),
        "# Memory\r\nused_memory:1234\r\nused_memory_human:1.21K\r\n\r\n# CPU\r\n\
         used_cpu_sys:1.5\r\nused_cpu_user:2.25\r\n",
    )
    .unwrap();
    report(&dir).unwrap();
    let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    assert!(md.contains("## Nodes and Redis"), "{md}");
    // 1 % of a core over 100 clients: 100 µs of CPU per client per second.
    assert!(
        md.contains("| node0 | 127.0.0.1:29400 | 100 / 100 | 1.00 % | 100.000 µs/s | 50.0 MiB |"),
        "{md}"
    );
    assert!(
        md.contains("| node1 | 127.0.0.1:29401 | 100 / 99 | 2.00 % |"),
        "{md}"
    );
    assert!(
        md.contains("| node2 | 127.0.0.1:29402 | 100 / 100 | 3.00 % |"),
        "{md}"
    );
    assert!(
        md.contains("redis-server in the steady window: CPU 0.50 % of one core, RSS 10.0 MiB"),
        "{md}"
    );
    assert!(md.contains("| `used_memory_human` | 1.21K |"), "{md}");
    assert!(md.contains("| `used_cpu_user` | 2.25 |"), "{md}");
    assert!(
        md.contains("| zero duplicated (messages and echoes) | 1 | **missed** |"),
        "{md}"
    );
    assert!(md.contains("| zero errors | 2 | **missed** |"), "{md}");
    assert!(
        md.contains(
            "| delivery p99 < 10 ms for version-2 readers, across nodes | 4.000 ms | met |"
        ),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_single_server_report_has_no_nodes_section() {
    let dir = run_dir("single");
    report(&dir).unwrap();
    let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    assert!(!md.contains("## Nodes and Redis"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}
