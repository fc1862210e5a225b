//! loadgen end to end: the real `loadgen` binary against the real server loop (run
//! in-process on a thread, on 127.0.0.1 port 0), over TLS with the development
//! certificates and in plaintext, in protocol 1, 2 and both mixed. Small and short, so it
//! belongs in `cargo test`: it checks that the summary a run writes is complete and proves
//! no message (nor echo) was lost, and that each protocol got what it promises.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use kaichat::server::{Config, Server};
use kaichat_proto::hub::Rules;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Starts a server loop on a thread; it runs until the test process exits.
fn start_server(tls: bool) -> std::net::SocketAddr {
    start_server_with(tls, Rules::default())
}

/// [`start_server`] with the given rules (a v1-only server, for one).
fn start_server_with(tls: bool, rules: Rules) -> std::net::SocketAddr {
    let tls = tls.then(|| {
        kaichat::tls::server_config(
            &repo().join(kaichat::tls::DEV_CERT),
            &repo().join(kaichat::tls::DEV_KEY),
        )
        .expect("development certificate")
    });
    let mut server = Server::bind(Config {
        max_clients: 1000,
        rules,
        ..Config::new("127.0.0.1:0".parse().unwrap(), tls)
    })
    .expect("bind");
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        let _ = server.run();
    });
    addr
}

/// What one loadgen run left: `summary.json`, `timeline.csv` and its progress lines.
struct Run {
    summary: Value,
    timeline: String,
    stderr: String,
}

fn run_loadgen(server: &str, extra: &[&str], name: &str) -> Run {
    let out = std::env::temp_dir().join(format!("loadgen-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .current_dir(repo())
        .args(["--server", server])
        .args(["--clients", "40", "--channels", "4", "--interval", "0.2"])
        .args(["--duration", "2", "--msg-every", "0.5", "--ramp", "200"])
        .args(["--sources", "127.0.0.1-127.0.0.2", "--timeout", "10"])
        .args(["--user-prefix", &name[..1]])
        .arg("--out")
        .arg(&out)
        .args(extra)
        .stdout(Stdio::null())
        .output()
        .expect("run loadgen");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "loadgen: {}: {stderr}",
        output.status
    );
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    for metric in ["connect", "query", "delivery"] {
        assert!(out.join(format!("{metric}.hgrm")).exists(), "{metric}.hgrm");
    }
    let timeline = std::fs::read_to_string(out.join("timeline.csv")).expect("timeline.csv");
    let _ = std::fs::remove_dir_all(&out);
    Run {
        summary: serde_json::from_str(&text).expect("summary.json is JSON"),
        timeline,
        stderr,
    }
}

fn check(summary: &Value) {
    let n = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {summary}"))
    };
    assert_eq!(n("clients"), 40);
    assert_eq!(n("connected"), 40, "{summary}");
    assert_eq!(n("errors"), 0, "{summary}");
    assert_eq!(n("disconnects"), 0, "{summary}");
    assert_eq!(n("finished"), 40, "{summary}");
    // 40 clients × 2 s / 0.2 s, give or take the phases.
    assert!(n("queries") > 200, "{summary}");
    // Each client sends about 4 messages, each owed to the 9 other members of its channel.
    assert!(n("messages_sent") >= 120, "{summary}");
    assert_eq!(n("messages_owed"), n("messages_sent") * 9, "{summary}");
    assert_eq!(n("messages_owed_received"), n("messages_owed"), "{summary}");
    assert_eq!(n("messages_lost"), 0, "{summary}");
    assert_eq!(summary["latency_us"]["query"]["count"], summary["queries"]);
    assert_eq!(summary["latency_us"]["connect"]["count"].as_u64(), Some(40));
    let delivery = summary["latency_us"]["delivery"]["p99"].as_u64().unwrap();
    assert!(delivery > 0 && delivery < 2_000_000, "{summary}");
}

#[test]
fn a_small_tls_run_connects_everyone_and_loses_nothing() {
    let addr = start_server(true);
    // The server runs in this process.
    let pid = std::process::id().to_string();
    let run = run_loadgen(
        &addr.to_string(),
        &["--warmup", "1", "--server-pid", &pid],
        "tls",
    );
    let summary = &run.summary;
    check(summary);
    // The steady window starts a warm-up after the last set-up and lasts --duration.
    let t = |k: &str| {
        summary[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k}: {summary}"))
    };
    let warmup = t("steady_start_unix") - t("connect_end_unix");
    assert!(
        (0.9..1.5).contains(&warmup),
        "warm-up {warmup} s: {summary}"
    );
    assert!((1.9..2.1).contains(&t("steady_s")), "{summary}");
    // The warm-up is its own stage: in the progress lines, in timeline.csv, and as a
    // window in the summary, right after the ramp and right before the steady window.
    assert!(run.stderr.contains("] warmup "), "{}", run.stderr);
    let stages: Vec<&str> = run
        .timeline
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1))
        .collect();
    let warm = stages
        .iter()
        .position(|s| *s == "Warmup")
        .expect("a Warmup row");
    assert!(stages[..warm].iter().all(|s| *s == "Ramp"), "{stages:?}");
    assert!(stages[warm..].contains(&"Steady"), "{stages:?}");
    let warmup_start = t("warmup_start_unix");
    assert!(warmup_start >= t("connect_end_unix"), "{summary}");
    assert!(
        (t("steady_start_unix") - warmup_start - 1.0).abs() < 0.01,
        "{summary}"
    );
    // CPU time read at the windows' edges, the server's included.
    for window in ["connect_cpu_s", "steady_cpu_s"] {
        for who in ["window_s", "server", "loadgen", "machine"] {
            let v = summary[window][who].as_f64();
            assert!(v.is_some_and(|v| v > 0.0), "{window}.{who}: {summary}");
        }
    }
    let connect_window = summary["connect_cpu_s"]["window_s"].as_f64().unwrap();
    assert!(
        (connect_window - t("connect_window_s")).abs() < 0.01,
        "{summary}"
    );
}

#[test]
fn a_small_plaintext_run_connects_everyone_and_loses_nothing() {
    let addr = start_server(false);
    // By host name: `--server` resolves it.
    let server = format!("localhost:{}", addr.port());
    let run = run_loadgen(&server, &["--plaintext", "--quiet"], "plain");
    check(&run.summary);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    // Without --server-pid there is no server figure, and no guess either.
    assert!(run.summary["connect_cpu_s"]["server"].is_null());
    assert!(run.summary["connect_cpu_s"]["loadgen"].as_f64().is_some());
}

/// Counts in a summary, by name.
fn counts(summary: &Value) -> impl Fn(&str) -> u64 + '_ {
    move |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {summary}"))
    }
}

#[test]
fn a_small_v2_run_is_pushed_everything_with_echoes_and_never_polls() {
    let addr = start_server(true);
    let run = run_loadgen(
        &addr.to_string(),
        &["--protocol", "2", "--keepalive", "0.5", "--quiet"],
        "v2",
    );
    let s = &run.summary;
    let n = counts(s);
    assert_eq!(n("connected"), 40, "{s}");
    assert_eq!(n("errors"), 0, "{s}");
    assert_eq!(n("disconnects"), 0, "{s}");
    assert_eq!(n("finished"), 40, "{s}");
    assert_eq!(n("clients_v2"), 40, "{s}");
    // No polling: no QUERY in the steady window; only each client's fence and drain.
    assert_eq!(n("queries"), 0, "{s}");
    assert_eq!(n("queries_total"), 80, "{s}");
    // Keep-alive PINGs went out and were answered.
    assert!(n("pings") >= 40, "{s}");
    assert!(n("pongs") >= n("pings") - 40, "{s}");
    // Every message reached the 9 other members, and its sender as an echo.
    assert!(n("messages_sent") >= 120, "{s}");
    assert_eq!(n("messages_owed"), n("messages_sent") * 9, "{s}");
    assert_eq!(n("messages_owed_received"), n("messages_owed"), "{s}");
    assert_eq!(n("messages_lost"), 0, "{s}");
    assert_eq!(n("echoes_owed"), n("messages_sent"), "{s}");
    assert_eq!(n("echoes_owed_received"), n("echoes_owed"), "{s}");
    assert_eq!(n("echoes_lost"), 0, "{s}");
    assert_eq!(n("duplicates"), 0, "{s}");
    // Pushed: (nearly) everything arrived with no QUERY in flight, the fence and drain
    // answers having little or nothing left to carry.
    let read = n("messages_owed_received") + n("echoes_received");
    assert!(n("messages_pushed") * 10 >= read * 9, "{s}");
    let lat = &s["latency_us"];
    assert_eq!(lat["delivery_v1"]["count"], 0, "{s}");
    assert_eq!(
        lat["delivery_v2"]["count"], s["messages_owed_received"],
        "{s}"
    );
    assert_eq!(lat["echo"]["count"], s["echoes_owed"], "{s}");
}

#[test]
fn a_small_mixed_run_serves_each_protocol_what_it_promises() {
    let addr = start_server(false);
    let run = run_loadgen(
        &addr.to_string(),
        &["--protocol", "mixed", "--plaintext", "--quiet"],
        "mixed",
    );
    let s = &run.summary;
    let n = counts(s);
    assert_eq!(n("connected"), 40, "{s}");
    assert_eq!(n("errors"), 0, "{s}");
    assert_eq!(n("finished"), 40, "{s}");
    assert_eq!((n("clients_v1"), n("clients_v2")), (20, 20), "{s}");
    // The v1 half polls; each message reaches all 9 others, pollers and pushed alike.
    assert!(n("queries") > 100, "{s}");
    assert!(n("messages_sent") >= 120, "{s}");
    assert_eq!(n("messages_owed"), n("messages_sent") * 9, "{s}");
    assert_eq!(n("messages_owed_received"), n("messages_owed"), "{s}");
    assert_eq!(n("messages_lost"), 0, "{s}");
    // Only the v2 half's messages come back to their senders (a v1 client sent its own
    // would be an error).
    assert!(
        n("echoes_owed") > 0 && n("echoes_owed") < n("messages_sent"),
        "{s}"
    );
    assert_eq!(n("echoes_owed_received"), n("echoes_owed"), "{s}");
    assert_eq!(n("echoes_lost"), 0, "{s}");
    assert_eq!(n("duplicates"), 0, "{s}");
    let lat = &s["latency_us"];
    let count = |m: &str| lat[m]["count"].as_u64().unwrap();
    assert!(count("delivery_v1") > 0 && count("delivery_v2") > 0, "{s}");
    assert_eq!(
        count("delivery_v1") + count("delivery_v2"),
        count("delivery")
    );
}

#[test]
fn v2_clients_against_a_v1_only_server_are_errors_not_pollers() {
    let addr = start_server_with(
        false,
        Rules {
            max_version: 1,
            ..Rules::default()
        },
    );
    let run = run_loadgen(
        &addr.to_string(),
        &["--protocol", "mixed", "--plaintext", "--quiet"],
        "v1only",
    );
    let s = &run.summary;
    let n = counts(s);
    // The v1 half runs as ever; each v2 client stops at the version it was refused,
    // rather than measuring polling under the name of push.
    assert_eq!(n("connected"), 20, "{s}");
    assert_eq!(n("errors"), 20, "{s}");
    assert_eq!(
        s["errors_by_cause"]["protocol: version 1 agreed, version 2 wanted"], 20,
        "{s}"
    );
    assert_eq!(n("messages_lost"), 0, "{s}");
    assert_eq!(n("echoes_owed"), 0, "{s}");
}

#[test]
fn a_list_of_servers_spreads_the_clients_and_counts_each_one() {
    // One server named twice (by address and by name): the run is spread over two
    // "nodes" of what is one network, as a cluster's would be.
    let addr = start_server(false);
    let server = format!("{addr},localhost:{}", addr.port());
    let run = run_loadgen(
        &server,
        &["--plaintext", "--quiet", "--settle", "1.5"],
        "list",
    );
    check(&run.summary);
    let servers = run.summary["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 2, "{}", run.summary);
    for node in servers {
        // 40 clients in 4 channels: 20 a node, 5 of each channel.
        for k in ["clients", "established", "joined", "finished"] {
            assert_eq!(node[k].as_u64(), Some(20), "{k}: {}", run.summary);
        }
    }
    assert_eq!(servers[0]["addr"].as_str(), Some(addr.to_string().as_str()));
    assert_eq!(run.summary["config"]["settle_s"].as_f64(), Some(1.5));
    // The settling pause is a stage of its own, between the fence and the drain: at 1.5 s
    // it holds at least one of the timeline's whole seconds.
    let stages: Vec<&str> = run
        .timeline
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1))
        .collect();
    let settle = stages.iter().position(|s| *s == "Settle");
    assert!(
        settle.is_some_and(|at| !stages[..at].contains(&"Drain")),
        "{stages:?}"
    );
}
