use super::*;
use crate::clock::Clock;
use crate::ledger::Loss;
use crate::reactor::{RunStage, Tick};
use crate::stats::{Causes, Counters, Metrics};

fn config() -> Config {
    Config {
        clients: 3,
        channels: 1,
        ramp: 100.0,
        max_setup: 10,
        msg_every: Duration::from_secs(60),
        ..Config::example()
    }
}

fn outcome() -> Outcome {
    let mut metrics = Metrics::default();
    for v in [1_000, 2_000, 3_000] {
        metrics.query.record(Duration::from_micros(v));
    }
    metrics.connect.record(Duration::from_millis(5));
    let clock = Clock::start();
    let at = |ms: u64| clock.epoch() + Duration::from_millis(ms);
    let mut errors = Causes::default();
    errors.add("connect: ConnectionRefused");
    Outcome {
        counters: Counters {
            established: 2,
            joined: 2,
            queries: 3,
            queries_total: 5,
            messages_sent: 4,
            messages_received: 4,
            ..Counters::default()
        },
        metrics,
        errors,
        disconnects: Causes::default(),
        loss: Loss {
            owed: 4,
            received: 4,
            ..Loss::default()
        },
        timeline: vec![Tick {
            end: at(1_000),
            stage: RunStage::Ramp,
            handshakes: 2,
            members: 2,
            queries: 0,
            query_p99: Duration::ZERO,
            errors: 1,
            delivered: 0,
            delivery_p99: Duration::ZERO,
        }],
        peak_members: 2,
        clock,
        connect: Some(Window {
            start: at(500),
            end: at(1_000),
        }),
        warmup_start: Some(at(1_000)),
        steady: Some(Window {
            start: at(1_000),
            end: at(11_000),
        }),
        connect_cpu: None,
        steady_cpu: None,
        finished: 2,
        servers: Vec::new(),
    }
}

#[test]
fn json_has_the_fields_tools_read() {
    let v = summary_json(&config(), &outcome());
    for field in [
        "clients",
        "connected",
        "errors",
        "disconnects",
        "queries",
        "messages_sent",
        "messages_received",
        "messages_lost",
    ] {
        assert!(v[field].is_u64(), "{field}: {}", v[field]);
    }
    assert_eq!(v["clients"], 3);
    assert_eq!(v["connected"], 2);
    assert_eq!(v["errors"], 1);
    assert_eq!(v["errors_by_cause"]["connect: ConnectionRefused"], 1);
    assert_eq!(v["messages_lost"], 0);
    assert_eq!(v["handshakes_per_s"], 4.0);
    assert_eq!(v["queries_per_s"], 0.3);
    for metric in ["connect", "query", "delivery"] {
        for field in ["count", "p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"][metric][field].is_u64(), "{metric}.{field}");
        }
    }
    assert_eq!(v["latency_us"]["query"]["count"], 3);
    assert_eq!(v["latency_us"]["query"]["p50"], 2_000);
    // Three significant figures: 3000 reads back as its bucket's highest value.
    let max = v["latency_us"]["query"]["max"].as_u64().unwrap();
    assert!((3_000..=3_003).contains(&max), "{max}");
    assert_eq!(v["latency_us"]["delivery"]["count"], 0);
}

#[test]
fn table_and_files() {
    let table = summary_table(&config(), &outcome());
    assert!(table.contains("connected 2 / 3"), "{table}");
    assert!(table.contains("connect: ConnectionRefused"));
    let csv = timeline_csv(&outcome());
    assert_eq!(csv.lines().nth(1), Some("1,Ramp,2,2,0,0,1,0,0"));
    let dir = std::env::temp_dir().join(format!("loadgen-test-{}", std::process::id()));
    write_out(&dir, &config(), &outcome()).unwrap();
    for f in [
        "summary.json",
        "connect.hgrm",
        "query.hgrm",
        "delivery.hgrm",
        "timeline.csv",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let back: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(back["queries"], 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run whose connect window is `[start_ms, end_ms]` and whose seconds saw
/// `per_second` handshakes each.
fn connecting(start_ms: u64, end_ms: u64, per_second: &[u64]) -> Outcome {
    let mut o = outcome();
    let at = |ms: u64| o.clock.epoch() + Duration::from_millis(ms);
    o.connect = Some(Window {
        start: at(start_ms),
        end: at(end_ms),
    });
    o.timeline = (1..)
        .zip(per_second)
        .map(|(t, &handshakes)| Tick {
            end: at(t * 1000),
            handshakes,
            ..o.timeline[0]
        })
        .collect();
    o.counters.established = per_second.iter().sum();
    o
}

#[test]
fn the_peak_handshake_rate_is_never_below_the_average() {
    let config = Config {
        clients: 1600,
        ..config()
    };
    // 200 set-ups in 0.326 s, all inside the first second: 614/s on average, and the
    // busiest second cannot read "200/s".
    let o = connecting(100, 426, &[200, 0, 0]);
    let v = summary_json(&config, &o);
    let average = v["handshakes_per_s"].as_f64().unwrap();
    let peak = v["peak_handshakes_per_s"].as_f64().unwrap();
    assert!((average - 613.5).abs() < 0.1, "{v}");
    assert!(peak >= average, "peak {peak} < average {average}");
    let table = summary_table(&config, &o);
    assert!(!table.contains("peak 200/s"), "{table}");
    assert!(table.contains("614/s in its busiest second"), "{table}");
    // 1.5 s over three partial and whole seconds: 300 + 1000 + 300 = 1,067/s on
    // average, though no whole second saw more than 1,000.
    let o = connecting(750, 2_250, &[300, 1000, 300, 0]);
    let v = summary_json(&config, &o);
    let average = v["handshakes_per_s"].as_f64().unwrap();
    let peak = v["peak_handshakes_per_s"].as_f64().unwrap();
    assert!((average - 1066.7).abs() < 0.1, "{v}");
    assert!(peak >= average, "peak {peak} < average {average}");
    // A long ramp at a steady 1,000/s with a burst second: the burst is the peak.
    let o = connecting(0, 4_000, &[1000, 1000, 1500, 1000, 0]);
    let v = summary_json(&config, &o);
    assert_eq!(v["peak_handshakes_per_s"], 1500.0);
    assert_eq!(v["handshakes_per_s"], 1125.0);
}

#[test]
fn a_mixed_run_reports_each_protocol_and_the_echoes() {
    use crate::config::Protocol;
    let config = Config {
        clients: 4,
        channels: 1,
        protocol: Protocol::Mixed { v2_percent: 50 },
        ..config()
    };
    let mut o = outcome();
    o.metrics.delivery_v1.record(Duration::from_millis(1_500));
    o.metrics.delivery_v2.record(Duration::from_micros(800));
    o.metrics.echo.record(Duration::from_micros(700));
    o.counters.echoes_received = 2;
    o.loss.echoes_owed = 3;
    o.loss.echoes_received = 2;
    o.loss.echoes_lost = 1;
    let v = summary_json(&config, &o);
    assert_eq!(v["protocol"], "mixed");
    assert_eq!(v["config"]["v2_percent"], 50);
    assert_eq!(
        (v["clients_v1"].as_u64(), v["clients_v2"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(v["echoes_lost"], 1);
    assert_eq!(v["echoes_owed"], 3);
    assert_eq!(v["latency_us"]["delivery_v1"]["count"], 1);
    assert_eq!(
        v["latency_us"]["delivery_v2"]["p99"]
            .as_u64()
            .map(|us| us / 10),
        Some(80)
    );
    let table = summary_table(&config, &o);
    assert!(table.contains("(2 protocol v1, 2 v2)"), "{table}");
    assert!(
        table.contains("echoes received 2, owed 3, lost 1"),
        "{table}"
    );
    assert!(table.contains("delivery_v2"), "{table}");
    // Metrics without samples stay out of the table (a v1 run shows no echo row) but are
    // in the JSON, so that tools find every field.
    assert!(!table.contains(" ping "), "{table}");
    assert_eq!(v["latency_us"]["ping"]["count"], 0);
    let v1_table = summary_table(&self::config(), &outcome());
    assert!(!v1_table.contains("echo"), "{v1_table}");
}

#[test]
fn each_server_is_shown_with_its_clients_even_one_that_saw_nothing() {
    let config = Config {
        clients: 4,
        channels: 2,
        servers: vec![
            "127.0.0.1:29400".parse().unwrap(),
            "127.0.0.1:29401".parse().unwrap(),
        ],
        ..config()
    };
    let mut o = outcome();
    // The second server never set a client up: the record has no entry for it.
    o.servers = vec![crate::stats::ServerCounts {
        established: 2,
        joined: 2,
        finished: 1,
    }];
    let v = summary_json(&config, &o);
    let servers = v["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{v}");
    assert_eq!(servers[0]["addr"], "127.0.0.1:29400");
    assert_eq!(
        (
            servers[0]["clients"].as_u64(),
            servers[0]["finished"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(
        (
            servers[1]["clients"].as_u64(),
            servers[1]["established"].as_u64()
        ),
        (Some(2), Some(0))
    );
    let table = summary_table(&config, &o);
    assert!(
        table.contains("server 127.0.0.1:29400: connected 2 / 2 (joined 2, finished 1)"),
        "{table}"
    );
    assert!(
        table.contains("server 127.0.0.1:29401: connected 0 / 2 (joined 0, finished 0)"),
        "{table}"
    );
}
