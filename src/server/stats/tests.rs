use super::*;

#[test]
fn each_close_reason_is_counted_under_its_own_name() {
    let mut stats = Stats::default();
    stats.closed(CloseReason::Quit);
    stats.closed(CloseReason::VersionRejected);
    stats.closed(CloseReason::VersionRejected);
    let line = stats.line(7, 0, &Hub::new(10, 5));
    assert!(line.starts_with("uptime=7s clients=0 "), "{line}");
    assert!(line.contains(" quit=1 version=2 peer=0 "), "{line}");
    let names: Vec<&str> = CloseReason::ALL.iter().map(|r| r.name()).collect();
    for (i, name) in names.iter().enumerate() {
        assert!(!names[i + 1..].contains(name), "{name} twice");
    }
}

#[test]
fn pdus_are_counted_by_command_and_unknown_codes_together() {
    let mut stats = Stats::default();
    stats.pdu_received(Some(Command::SendMessage));
    stats.pdu_received(Some(Command::SendMessage));
    stats.pdu_received(None);
    stats.pdu_sent(&Pdu::ping(kaichat_proto::pdu::ByteOrder::Big));
    assert_eq!(stats.pdus_received()[4], 2);
    assert_eq!(COMMANDS[4], "SEND_MESSAGE");
    assert_eq!(stats.pdus_received()[COMMANDS.len() - 1], 1);
    assert_eq!(stats.pdus_sent()[7], 1);
    assert_eq!(COMMANDS[7], "PING_PONG");
    assert!(stats.line(0, 0, &Hub::new(10, 5)).contains(" pdus_in=3 "));
}

#[test]
fn a_latency_falls_in_the_first_bucket_whose_bound_it_does_not_exceed() {
    let mut latency = Latency::default();
    for micros in [0, 50, 51, 1_000_000, 1_000_001] {
        latency.observe(micros);
    }
    assert_eq!(latency.buckets[0], 2, "0 and 50 µs are at most 50 µs");
    assert_eq!(latency.buckets[1], 1, "51 µs is in the 100 µs bucket");
    assert_eq!(latency.buckets[LATENCY_BOUNDS_US.len() - 1], 1, "1 s");
    assert_eq!(latency.buckets[LATENCY_BOUNDS_US.len()], 1, "above 1 s");
    assert_eq!((latency.count, latency.sum_us), (5, 2_000_102));
}

#[test]
fn every_command_has_its_own_label() {
    for code in 0..=255u32 {
        if let Some(command) = Command::from_code(code) {
            assert_eq!(COMMANDS[command_slot(Some(command))], command.name());
        }
    }
    assert_eq!(COMMANDS[command_slot(None)], "unknown");
}
