use super::*;
use kaichat_proto::pdu::Command;

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn counters_come_out_under_their_names_and_labels() {
    let mut stats = Stats::default();
    stats.closed(CloseReason::Quit);
    stats.pdu_received(Some(Command::SendMessage));
    stats.expired(DeadlineKind::Idle);
    stats.query_latency.observe(70);
    stats.query_latency.observe(2_000_000);
    stats.refused_accept_rate = 4;
    let hub = Hub::new(10, 5);
    let text = encode(&Snapshot {
        stats: &stats,
        hub: &hub,
        lives: Lives {
            setting_up: 1,
            established: 2,
            closing: 3,
        },
        max_clients: 100,
        uptime_ms: 1500,
        store: None,
        redis_up: None,
    });
    for (name, value) in [
        ("kaichat_connections{state=\"established\"}", 2.0),
        ("kaichat_connections_closed_total{reason=\"quit\"}", 1.0),
        ("kaichat_connections_closed_total{reason=\"version\"}", 0.0),
        ("kaichat_pdus_received_total{command=\"SEND_MESSAGE\"}", 1.0),
        ("kaichat_deadline_expiries_total{kind=\"idle\"}", 1.0),
        (
            "kaichat_query_answer_duration_seconds_bucket{le=\"5e-05\"}",
            0.0,
        ),
        (
            "kaichat_query_answer_duration_seconds_bucket{le=\"0.0001\"}",
            1.0,
        ),
        (
            "kaichat_query_answer_duration_seconds_bucket{le=\"1\"}",
            1.0,
        ),
        (
            "kaichat_query_answer_duration_seconds_bucket{le=\"+Inf\"}",
            2.0,
        ),
        ("kaichat_query_answer_duration_seconds_count", 2.0),
        ("kaichat_query_answer_duration_seconds_sum", 2.00007),
        ("kaichat_received_bytes_total", 0.0),
        ("kaichat_uptime_seconds", 1.5),
        ("kaichat_max_clients", 100.0),
        (
            "kaichat_connections_refused_total{cause=\"max_per_address\"}",
            0.0,
        ),
        (
            "kaichat_connections_refused_total{cause=\"accept_rate\"}",
            4.0,
        ),
    ] {
        assert_eq!(sample(&text, name), Some(value), "{name} in:\n{text}");
    }
    assert!(
        text.contains("# TYPE kaichat_query_answer_duration_seconds histogram\n"),
        "{text}"
    );
    assert!(
        !text.contains("kaichat_store_"),
        "no store, no store metrics"
    );
}

#[test]
fn the_store_writers_progress_comes_out_when_there_is_a_store() {
    let stats = Stats::default();
    let hub = Hub::new(10, 5);
    let text = encode(&Snapshot {
        stats: &stats,
        hub: &hub,
        lives: Lives {
            setting_up: 0,
            established: 0,
            closing: 0,
        },
        max_clients: 100,
        uptime_ms: 0,
        store: Some(StoreProgress {
            committed: 120,
            lag: 7,
            not_persisted: 3,
            failing: true,
        }),
        redis_up: Some(false),
    });
    for (name, value) in [
        ("kaichat_store_committed_entries_total", 120.0),
        ("kaichat_store_lag_entries", 7.0),
        ("kaichat_store_not_persisted_entries_total", 3.0),
        ("kaichat_store_failing", 1.0),
        ("kaichat_redis_up", 0.0),
    ] {
        assert_eq!(sample(&text, name), Some(value), "{name} in:\n{text}");
    }
}
