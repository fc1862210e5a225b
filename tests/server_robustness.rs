//! Framing and robustness against the real server: a whole session in one write, a session
//! written one byte at a time, random garbage from several connections, and a slow reader
//! that must not delay anybody else.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const LE: ByteOrder = ByteOrder::Little;

#[test]
fn a_whole_session_pipelined_in_one_write() {
    let server = Server::start(&[]);
    let mut obs = server.member("obs", "@pipe");
    let mut c = server.client();
    let mut bytes = Vec::new();
    for pdu in [
        Pdu::ping(LE),
        Pdu::client_version(LE, 1),
        Pdu::client_info(LE, b"piper"),
        join_pdu(LE, b"piper", b"@pipe"),
        Pdu::send_message(LE, b"all at once"),
        Pdu::query(LE),
        Pdu::ping(LE),
        Pdu::leave(LE),
        Pdu::quit(LE),
    ] {
        bytes.extend_from_slice(pdu.as_bytes());
    }
    c.write(&bytes);
    c.expect_pong();
    let v = c.expect(Command::VersionNegotiation);
    assert_eq!(v.version(), 2, "the server offers 2; this client selects 1");
    c.expect_client_info_ack("piper");
    let ack = c.expect(Command::JoinChannel);
    assert_eq!(ack.channel(), b"@pipe");
    c.channel = b"@pipe".to_vec();
    let answer: Vec<_> = c.read_answer().iter().map(entry).collect();
    assert_eq!(
        answer,
        entries(&[("SERVER", "obs joined"), ("SERVER", "piper joined")])
    );
    c.expect_pong();
    let ack = c.expect(Command::LeaveChannel);
    assert_eq!(ack.channel(), b"@pipe");
    c.expect_clean_close();
    assert_eq!(
        obs.query_entries(),
        entries(&[
            ("SERVER", "obs joined"),
            ("SERVER", "piper joined"),
            ("piper", "all at once"),
            ("SERVER", "piper left"),
        ])
    );
}

/// Writes `pdu` one byte per write (one TLS record per byte over TLS).
fn dribble(c: &mut TestClient, pdu: &Pdu) {
    for (i, b) in pdu.as_bytes().iter().enumerate() {
        c.write(std::slice::from_ref(b));
        if i % 512 == 511 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

fn byte_at_a_time_session(server: &Server, name: &str) {
    let mut obs = server.member(&format!("{name}o"), "@drip");
    let mut c = server.client();
    dribble(&mut c, &Pdu::ping(LE));
    c.expect_pong();
    assert_eq!(c.expect(Command::VersionNegotiation).version(), 2);
    dribble(&mut c, &Pdu::client_version(LE, 1));
    dribble(&mut c, &Pdu::client_info(LE, name.as_bytes()));
    c.expect_client_info_ack(name);
    dribble(&mut c, &join_pdu(LE, name.as_bytes(), b"@drip"));
    c.expect(Command::JoinChannel);
    c.channel = b"@drip".to_vec();
    dribble(&mut c, &Pdu::send_message(LE, b"drop by drop"));
    dribble(&mut c, &Pdu::query(LE));
    let answer: Vec<_> = c.read_answer().iter().map(entry).collect();
    assert!(answer.contains(&("SERVER".to_string(), format!("{name} joined"))));
    let seen = obs.query_entries();
    assert!(
        seen.contains(&(name.to_string(), "drop by drop".to_string())),
        "{seen:?}"
    );
    dribble(&mut c, &Pdu::quit(LE));
    c.expect_clean_close();
}

#[test]
fn a_session_written_one_byte_at_a_time_over_tls() {
    let server = Server::start(&[]);
    byte_at_a_time_session(&server, "drip");
}

#[test]
fn a_session_written_one_byte_at_a_time_in_plaintext() {
    let server = Server::start_plaintext(&[]);
    byte_at_a_time_session(&server, "drop");
}

#[test]
fn pdus_split_across_writes_at_odd_places() {
    let server = Server::start(&[]);
    let mut c = server.client();
    let mut bytes = Vec::new();
    for pdu in [
        Pdu::ping(LE),
        Pdu::client_version(LE, 1),
        Pdu::client_info(LE, b"split"),
        join_pdu(LE, b"split", b"@s"),
        Pdu::query(LE),
    ] {
        bytes.extend_from_slice(pdu.as_bytes());
    }
    let mut rng = Rng::new(7);
    let mut at = 0;
    while at < bytes.len() {
        let n = (1 + rng.below(5000)).min(bytes.len() - at);
        c.write(&bytes[at..at + n]);
        at += n;
        thread::sleep(Duration::from_millis(2));
    }
    c.expect_pong();
    c.expect(Command::VersionNegotiation);
    c.expect_client_info_ack("split");
    c.expect(Command::JoinChannel);
    c.channel = b"@s".to_vec();
    let answer: Vec<_> = c.read_answer().iter().map(entry).collect();
    assert_eq!(answer, entries(&[("SERVER", "split joined")]));
}

/// Raw TCP garbage: random bytes, some shaped like TLS records.
fn raw_garbage(addr: std::net::SocketAddr, seed: u64) {
    let mut rng = Rng::new(seed);
    let Ok(mut tcp) = TcpStream::connect(addr) else {
        return;
    };
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut data = Vec::new();
    if seed.is_multiple_of(2) {
        // A plausible record header with a random length and body.
        data.extend_from_slice(&[0x16, 0x03, 0x01]);
        data.extend_from_slice(&(rng.below(20000) as u16).to_be_bytes());
    }
    let n = 1 + rng.below(30_000);
    data.extend(rng.bytes(n));
    let _ = tcp.write_all(&data);
    let mut buf = [0u8; 4096];
    // Read what the server says (an alert, a close) for a little while.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Garbage inside TLS: random PDUs (random commands and fields) and a cut-off tail,
/// before and after set-up.
fn tls_garbage(server_addr: std::net::SocketAddr, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut c = TestClient::connect_tls(server_addr);
    let establish = seed % 2 == 1;
    if establish {
        c.handshake(&format!("g{seed}"));
        if seed % 4 == 1 {
            c.join("@garbage");
        }
    }
    for _ in 0..40 {
        let mut pdu = Pdu::from_slice(&rng.bytes(PDU_LEN)).unwrap();
        // Mostly real command codes in either order, sometimes random bytes; never QUIT.
        let code = 1 + rng.below(9) as u8;
        let command = match rng.below(3) {
            0 => [code, 0, 0, 0],
            1 => [0, 0, 0, code],
            _ => [rng.below(256) as u8 | 1, rng.below(256) as u8, 7, 9],
        };
        pdu.bytes_mut()[256..260].copy_from_slice(&command);
        if c.try_write(pdu.as_bytes()).is_err() {
            return;
        }
        // Drain whatever came back so the server is never blocked on us.
        while c.try_recv_within(Duration::from_millis(5)).is_ok() {}
    }
    let tail_len = 1 + rng.below(PDU_LEN - 1);
    let tail = rng.bytes(tail_len);
    let _ = c.try_write(&tail);
    while c.try_recv_within(Duration::from_millis(20)).is_ok() {}
}

#[test]
fn random_garbage_from_many_connections_then_a_normal_session() {
    let mut server = Server::start(&[]);
    let addr = server.addr;
    let mut threads = Vec::new();
    for seed in 0..8u64 {
        threads.push(thread::spawn(move || raw_garbage(addr, seed)));
        threads.push(thread::spawn(move || tls_garbage(addr, seed + 100)));
    }
    for t in threads {
        t.join().expect("a garbage thread panicked");
    }
    server.assert_running();
    let mut a = server.member("clean1", "@after");
    let mut b = server.member("clean2", "@after");
    a.say("the server survived");
    a.assert_alive();
    assert_eq!(
        b.query_entries(),
        entries(&[
            ("SERVER", "clean1 joined"),
            ("SERVER", "clean2 joined"),
            ("clean1", "the server survived"),
        ])
    );
    b.quit();
    b.expect_clean_close();
    server.assert_running();
}

#[test]
fn a_slow_reader_does_not_delay_others_and_is_cut_when_idle() {
    let server = Server::start(&["--idle-timeout", "3", "--replay", "1000"]);

    // A big backlog: 1000 messages of 2000 bytes (2.26 MB per full QUERY answer).
    let mut filler = fill_channel(&server, "@big", 1000);

    // Another channel with ordinary traffic.
    let mut quick = server.member("quick", "@small");
    let mut partner = server.member("partner", "@small");
    quick.query();

    // The slow reader asks for the backlog again and again and never reads.
    let mut slow = server.member("slow", "@big");
    let slow_thread = thread::spawn(move || {
        let Transport::Tls(stream) = &mut slow.transport else {
            unreachable!()
        };
        stream
            .sock
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let start = Instant::now();
        let query = Pdu::query(LE);
        let mut pending: Vec<u8> = Vec::new();
        let mut queries = 0u64;
        while start.elapsed() < Duration::from_secs(20) {
            if pending.is_empty() {
                pending.extend_from_slice(query.as_bytes());
                queries += 1;
            }
            let n = stream.conn.writer().write(&pending).unwrap_or(0);
            pending.drain(..n);
            match stream.conn.write_tls(&mut stream.sock) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (queries, Some(start.elapsed())),
            }
        }
        (queries, None)
    });

    // Give the slow reader time to fill every buffer, then measure round trips of others.
    thread::sleep(Duration::from_millis(500));
    let mut worst = Duration::ZERO;
    let measure_start = Instant::now();
    let mut rounds = 0;
    while measure_start.elapsed() < Duration::from_millis(2000) {
        partner.say(&format!("r{rounds}"));
        let t = Instant::now();
        partner.assert_alive(); // the message is stored once PONG is back
        worst = worst.max(t.elapsed());
        let t = Instant::now();
        let got = quick.query_entries();
        worst = worst.max(t.elapsed());
        assert!(
            got.contains(&("partner".to_string(), format!("r{rounds}"))),
            "round {rounds}: {got:?}"
        );
        let t = Instant::now();
        let own = filler.query();
        worst = worst.max(t.elapsed());
        assert!(own.len() <= 3, "filler's own messages are not returned");
        rounds += 1;
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        worst < Duration::from_secs(1),
        "a round trip took {worst:?} while a slow reader was connected"
    );

    // The slow reader is cut once its idle deadline has passed and its close has given up
    // waiting for it (about 2 s more); meanwhile `quick` stays active, as any client would.
    while !slow_thread.is_finished() {
        quick.assert_alive();
        thread::sleep(Duration::from_millis(300));
    }
    let (queries, cut) = slow_thread.join().unwrap();
    eprintln!(
        "{rounds} rounds, worst round trip {worst:?}; slow reader wrote {queries} QUERYs, cut after {cut:?}"
    );
    let cut = cut.unwrap_or_else(|| {
        panic!("the slow reader ({queries} QUERYs written) was never cut by the idle deadline")
    });
    assert!(
        cut < Duration::from_secs(12),
        "slow reader cut only after {cut:?}"
    );
    // Its name and channel place are free again; the server serves on.
    let mut again = server.login("slow");
    again.assert_alive();
    quick.assert_alive();
}

/// Waits until `watcher` reads `<name> left`; returns everything it read.
fn wait_for_left(watcher: &mut TestClient, name: &str) -> Vec<(String, String)> {
    let want = ("SERVER".to_string(), format!("{name} left"));
    let deadline = Instant::now() + ANSWER;
    let mut seen = Vec::new();
    while !seen.contains(&want) {
        assert!(Instant::now() < deadline, "no `{name} left` in {seen:?}");
        seen.extend(watcher.query_entries());
        thread::sleep(Duration::from_millis(50));
    }
    seen
}

#[test]
fn a_peer_that_closes_mid_pdu_has_sent_nothing_for_that_pdu() {
    let server = Server::start(&[]);
    let mut watcher = server.member("watcher", "@half");
    for (name, close_notify) in [("cut", false), ("polite", true)] {
        let mut c = server.member(name, "@half");
        let pdu = Pdu::send_message(LE, b"never stored");
        c.write(&pdu.as_bytes()[..1500]);
        thread::sleep(Duration::from_millis(100));
        if close_notify {
            if let Transport::Tls(s) = &mut c.transport {
                s.conn.send_close_notify();
                let _ = s.conn.complete_io(&mut s.sock);
            }
        }
        drop(c);
        let seen = wait_for_left(&mut watcher, name);
        assert!(
            !seen.iter().any(|(_, text)| text == "never stored"),
            "a partial PDU was processed: {seen:?}"
        );
        // The name is free again.
        server.login(name).assert_alive();
    }
}

#[test]
fn a_tls_error_frees_the_name_and_leaves_the_channel() {
    let server = Server::start(&[]);
    let mut watcher = server.member("watcher", "@tlserr");
    let mut broken = server.member("broken", "@tlserr");
    // An application-data record that cannot decrypt, straight onto the socket.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend(Rng::new(3).bytes(0x40));
    broken.tcp().write_all(&record).unwrap();
    broken.expect_closed();
    wait_for_left(&mut watcher, "broken");
    server.login("broken").assert_alive();
}
