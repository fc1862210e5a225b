use std::time::Duration;

use kaichat_proto::client::{Client, Settings};

use super::*;
use crate::config::Protocol;
use crate::conn::Stage;
use crate::transport::Transport;

/// Client `id` of `cfg` (of the version `cfg` gives it), joined at `joined`, on a real (idle)
/// loopback socket: `Conn` owns one.
fn conn(cfg: &Config, id: u32, joined: Instant) -> Conn {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let std_sock = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let sock = mio::net::TcpStream::from_std(std_sock);
    let client = Client::new(Settings::default());
    Conn {
        stage: Stage::Active,
        writable: true,
        joined: Some(joined),
        ..Conn::new(cfg, id, sock, Transport::plain(), client, joined)
    }
}

/// A message arriving at `now`, time-stamped as a version-2 server does (version 1
/// ignores the stamp).
fn arrive<'p>(
    sender: &'p [u8],
    text: &'p str,
    asked: bool,
    clock: &Clock,
    now: Instant,
) -> Arrival<'p> {
    Arrival {
        sender,
        text: text.as_bytes(),
        time_ms: (clock.unix(now) * 1000.0) as u64,
        asked,
    }
}

/// The text client `sender` writes as its message `seq`, sent `sent_ms` after the epoch.
fn text(clock: &Clock, sender: u32, seq: u32, sent_ms: u64) -> String {
    let at = clock.epoch() + Duration::from_millis(sent_ms);
    let mut out = String::new();
    Stamp {
        sender,
        seq,
        due: at,
        sent: at,
    }
    .encode(clock, &mut out);
    out
}

#[test]
fn messages_are_judged_by_protocol_push_echo_and_order() {
    // 4 clients in 1 channel, mixed: clients 0 and 2 speak v1, 1 and 3 v2.
    let cfg = Config {
        clients: 4,
        channels: 1,
        protocol: Protocol::Mixed { v2_percent: 50 },
        ..Config::example()
    };
    let clock = Clock::start();
    let joined = clock.epoch() + Duration::from_millis(10);
    let now = clock.epoch() + Duration::from_millis(500);
    let mut r = Record::default();
    let mut v1 = conn(&cfg, 0, joined);
    let mut v2 = conn(&cfg, 1, joined);
    assert_eq!((v1.version, v2.version), (1, 2));
    let m = |sender, seq| text(&clock, sender, seq, 100);
    // `reader` reads message `text` from `sender`, inside a QUERY answer if `asked`.
    let read = |r: &mut Record, reader: &mut Conn, sender: &[u8], text: &str, asked| {
        r.message_read(
            reader,
            arrive(sender, text, asked, &clock, now),
            &cfg,
            &clock,
            now,
        );
    };

    // v2: pushed deliveries and an echo.
    read(&mut r, &mut v2, b"lg2", &m(2, 0), false);
    read(&mut r, &mut v2, b"lg1", &m(1, 0), false);
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
    assert_eq!((v2.received_owed, v2.echoes), (1, 1));
    assert_eq!(r.counters.pushed, 2);
    assert_eq!(r.counters.echoes_received, 1);
    assert_eq!(r.counters.messages_received, 1);
    assert_eq!(r.metrics.delivery_v2.count(), 1);
    assert_eq!(r.metrics.echo.count(), 1);
    // The same message again: a duplicate, an error, not a second receipt.
    read(&mut r, &mut v2, b"lg2", &m(2, 0), false);
    assert_eq!(r.counters.duplicates, 1);
    assert_eq!(r.errors.total(), 1);
    assert_eq!(v2.received_owed, 1);

    // v1: inside a QUERY answer, fine; pushed, an error; its own message, an error.
    let mut r = Record::default();
    read(&mut r, &mut v1, b"lg3", &m(3, 0), true);
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
    assert_eq!(r.metrics.delivery_v1.count(), 1);
    assert_eq!(r.metrics.delivery_v2.count(), 0);
    assert_eq!(r.counters.pushed, 0);
    read(&mut r, &mut v1, b"lg3", &m(3, 1), false);
    assert_eq!(r.errors.total(), 1, "{:?}", r.errors);
    read(&mut r, &mut v1, b"lg0", &m(0, 0), true);
    assert_eq!(r.errors.total(), 2, "{:?}", r.errors);
    assert_eq!(v1.echoes, 0);

    // A text whose stamp names another sender than the PDU's sender field, and a text
    // that is no stamp: foreign, counted, not judged.
    let mut r = Record::default();
    read(&mut r, &mut v2, b"lg3", &m(2, 5), false);
    read(&mut r, &mut v2, b"amy", "hello", false);
    assert_eq!(r.counters.messages_foreign, 2);
    assert_eq!(r.errors.total(), 0);
    assert_eq!(v2.received_owed, 1);
}

#[test]
fn a_version_2_message_must_carry_the_time_it_was_stored() {
    let cfg = Config {
        clients: 2,
        channels: 1,
        protocol: Protocol::V2,
        ..Config::example()
    };
    let clock = Clock::start();
    let joined = clock.epoch() + Duration::from_millis(10);
    let now = clock.epoch() + Duration::from_millis(500);
    let mut v2 = conn(&cfg, 0, joined);
    let sent_ms = 100;
    let message = text(&clock, 1, 0, sent_ms);
    let at = |ms: f64| (clock.unix(clock.epoch()) * 1000.0 + ms) as u64;
    // Stored between sending and arrival: fine; no stamp, or seconds off: an error.
    for (time_ms, errors) in [(at(300.0), 0), (0, 1), (at(-5_000.0), 1), (at(9_000.0), 1)] {
        let mut r = Record::default();
        let mut seen = v2.seen.clone();
        let arrival = Arrival {
            sender: b"lg1",
            text: message.as_bytes(),
            time_ms,
            asked: false,
        };
        r.message_read(&mut v2, arrival, &cfg, &clock, now);
        assert_eq!(r.errors.total(), errors, "{time_ms}: {:?}", r.errors);
        std::mem::swap(&mut v2.seen, &mut seen); // read it afresh next time
    }
}
