//! The server as a process: command-line errors, graceful shutdown on SIGTERM and SIGINT,
//! `--max-clients`, and the periodic statistics line.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn assert_one_line_exit_2(args: &[&str]) {
    let Exit {
        code,
        stderr,
        timed_out,
        ..
    } = run_to_exit(args, Duration::from_secs(5));
    assert!(
        !timed_out,
        "{args:?}: the server did not exit (it should refuse)"
    );
    assert_eq!(code, Some(2), "{args:?}: exit status; stderr: {stderr:?}");
    assert!(
        !stderr.contains("panicked"),
        "{args:?}: must not panic: {stderr:?}"
    );
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: exactly one line on stderr, got {stderr:?}"
    );
}

#[test]
fn a_bad_flag_is_one_line_and_exit_status_2() {
    for args in [
        &["--bogus"][..],
        &["--listen", "127.0.0.1:0", "--handshake-timeout", "abc"],
        &["--listen", "127.0.0.1:0", "--idle-timeout", "-5"],
        &["--listen", "127.0.0.1:0", "--history", "many"],
        &["--listen", "127.0.0.1:0", "--replay"],
        &["--listen", "not-an-address"],
        &["--listen", "127.0.0.1:0", "extra-positional"],
    ] {
        assert_one_line_exit_2(args);
    }
}

#[test]
fn an_unusable_certificate_or_key_is_one_line_and_exit_status_2() {
    let m = manifest();
    let p = |rel: &str| m.join(rel).display().to_string();
    let missing = "/nonexistent/kaichat/cert.pem".to_string();
    let not_pem = p("Cargo.toml");
    for (cert, key) in [
        (missing.clone(), p("certs/server.key")),
        (p("certs/server.pem"), missing),
        (not_pem.clone(), p("certs/server.key")),
        (p("certs/server.pem"), not_pem),
        // A key that does not belong to the certificate.
        (p("certs/server.pem"), p("certs/ca.key")),
    ] {
        assert_one_line_exit_2(&["--listen", "127.0.0.1:0", "--cert", &cert, "--key", &key]);
    }
}

fn shutdown_closes_everyone_cleanly(signal: i32) {
    let mut server = Server::start(&[]);
    let mut a = server.member("a", "@bye");
    let mut b = server.login("b");
    let mut fresh = server.client();
    fresh.finish_tls(); // TLS up, no PING yet
    let mut mid = server.client();
    mid.ping_version();
    b.assert_alive();
    server.assert_running();
    let before = server.stderr();

    let end = server.signal_and_wait(signal, Duration::from_secs(5));
    let status = end
        .status
        .unwrap_or_else(|| panic!("no exit within 5 s of signal {signal}"));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; stderr:\n{}",
        end.stderr
    );
    assert!(
        end.elapsed < Duration::from_secs(2),
        "exit took {:?}, must be within 2 s",
        end.elapsed
    );
    for (name, c) in [
        ("in a channel", &mut a),
        ("established", &mut b),
        ("before PING", &mut fresh),
        ("after PONG", &mut mid),
    ] {
        match c.try_recv_within(Duration::from_secs(3)) {
            Err(RecvError::Closed { partial: 0 }) => {}
            other => panic!("client {name}: expected TLS close_notify, got {other:?}"),
        }
    }
    let after = end.stderr.strip_prefix(before.as_str()).unwrap_or("");
    assert!(
        after.lines().any(|l| !l.trim().is_empty()),
        "a final statistics line on stderr after the signal; stderr:\n{}",
        end.stderr
    );
    assert!(!end.stderr.contains("panicked"), "{}", end.stderr);
}

#[test]
fn sigterm_closes_every_client_with_close_notify_and_exits_0() {
    shutdown_closes_everyone_cleanly(libc::SIGTERM);
}

#[test]
fn sigint_does_the_same() {
    shutdown_closes_everyone_cleanly(libc::SIGINT);
}

#[test]
fn sigterm_in_plaintext_mode_exits_0() {
    let server = Server::start_plaintext(&[]);
    let mut a = server.member("p", "@p");
    a.assert_alive();
    let end = server.terminate(Duration::from_secs(5));
    assert_eq!(end.status.and_then(|s| s.code()), Some(0), "{end:?}");
    assert!(end.elapsed < Duration::from_secs(2), "{end:?}");
    a.expect_closed();
}

#[test]
fn max_clients_holds_back_the_next_client_until_one_leaves() {
    let mut server = Server::start(&["--max-clients", "2"]);
    let mut a = server.member("first", "@max");
    let mut b = server.member("second", "@max");

    // The third is not served: its TLS handshake does not complete.
    let mut c = server.client();
    let start = Instant::now();
    let early = c.try_finish_tls(Duration::from_millis(1500));
    assert!(
        early.is_err(),
        "a third client was served with --max-clients 2"
    );
    assert!(start.elapsed() >= Duration::from_millis(1400));
    // Holding a client back does not make the server spin on its listener.
    let share = server.cpu_share_over(Duration::from_secs(1));
    assert!(
        share < 0.3,
        "the server used {:.0}% of a core while a client waited",
        share * 100.0
    );

    // The others are served normally meanwhile.
    a.say("still served");
    a.assert_alive();
    assert_eq!(
        b.query_entries(),
        entries(&[
            ("SERVER", "first joined"),
            ("SERVER", "second joined"),
            ("first", "still served"),
        ])
    );
    server.assert_running();

    // One leaves: the waiting client is served now.
    a.quit();
    a.expect_clean_close();
    c.try_finish_tls(Duration::from_secs(5))
        .expect("the waiting client is served once a slot is free");
    c.handshake("third");
    c.join("@max");
    b.say("welcome");
    b.assert_alive();
    let got = c.query_entries();
    assert!(
        got.contains(&("second".to_string(), "welcome".to_string())),
        "{got:?}"
    );
    b.assert_alive();
}

#[test]
fn stats_interval_prints_periodic_lines() {
    let server = Server::start(&["--stats-interval", "1"]);
    let mut c = server.login("stats");
    thread::sleep(Duration::from_millis(2600));
    c.assert_alive();
    // Connection events are logged too: count the statistics lines themselves.
    let lines = server
        .stderr()
        .lines()
        .filter(|l| l.contains(" stats: uptime="))
        .count();
    assert!(
        lines >= 2,
        "expected at least two statistics lines, got:\n{}",
        server.stderr()
    );
}

#[test]
fn running_out_of_descriptors_holds_back_clients_without_spinning() {
    // --max-clients above what 40 descriptors allow: the server meets EMFILE.
    let mut server = Server::start_with_fd_limit(&["--max-clients", "1000"], 40);
    let mut served = Vec::new();
    let mut waiting = Vec::new();
    for i in 0..60 {
        let mut c = server.client();
        if c.try_finish_tls(Duration::from_millis(1500)).is_ok()
            && c.try_write(Pdu::ping(ByteOrder::Little).as_bytes()).is_ok()
            && c.try_recv_within(Duration::from_secs(2)).is_ok()
        {
            c.recv(); // the server's version
            c.send(&Pdu::client_version(ByteOrder::Little, 1));
            c.client_info(&format!("fd{i}"));
            served.push(c);
        } else {
            waiting.push(c);
            if waiting.len() == 3 {
                break;
            }
        }
    }
    assert!(
        served.len() >= 10 && !waiting.is_empty(),
        "{} served, {} not served: the descriptor limit should bite between",
        served.len(),
        waiting.len()
    );
    eprintln!("{} served, {} held back", served.len(), waiting.len());
    server.assert_running();
    let share = server.cpu_share_over(Duration::from_millis(1500));
    assert!(
        share < 0.3,
        "out of descriptors, the server used {:.0}% of a core",
        share * 100.0
    );
    // Everyone established is still served.
    for c in &mut served {
        c.assert_alive();
    }
    // Free some slots: accepting resumes.
    for mut c in served.drain(..3) {
        c.quit();
        c.expect_clean_close();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut newcomer = loop {
        let mut c = server.client();
        if c.try_finish_tls(Duration::from_secs(2)).is_ok() {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "no new client was served after slots were freed"
        );
        thread::sleep(Duration::from_millis(100));
    };
    newcomer.handshake("late");
    newcomer.join("@fd");
    assert_eq!(
        newcomer.query_entries(),
        entries(&[("SERVER", "late joined")])
    );
    for c in &mut served {
        c.assert_alive();
    }
    drop(waiting);
    server.assert_running();
}

#[test]
fn shutdown_is_prompt_even_with_a_client_that_never_reads() {
    let server = Server::start(&["--replay", "1000"]);
    let mut filler = server.member("filler", "@stuck");
    let mut batch = Vec::new();
    for _ in 0..1000 {
        batch.extend_from_slice(Pdu::send_message(ByteOrder::Little, &[b'x'; 2000]).as_bytes());
    }
    filler.write(&batch);
    filler.assert_alive();
    let mut stuck = server.member("stuck", "@stuck");
    let mut queries = Vec::new();
    for _ in 0..20 {
        queries.extend_from_slice(Pdu::query(ByteOrder::Little).as_bytes());
    }
    stuck.write(&queries); // megabytes of answers that are never read
    thread::sleep(Duration::from_millis(500));
    let end = server.terminate(Duration::from_secs(5));
    assert_eq!(
        end.status.and_then(|s| s.code()),
        Some(0),
        "exit status; stderr:\n{}",
        end.stderr
    );
    assert!(
        end.elapsed < Duration::from_secs(2),
        "exit took {:?} with a client that never reads",
        end.elapsed
    );
    filler.expect_closed();
}
