//! Limits per client address (issue 12.1): `--max-per-address` connections at once and
//! `--accept-rate` new connections per second (bursts of `--accept-burst`) per address. A
//! connection over a limit is closed right after accept, before any TLS: the client's
//! ClientHello gets not one byte of TLS back, only the end of the connection.
//!
//! The clients connect from several loopback addresses (127.0.0.2, .3, ...: Linux routes
//! all of 127.0.0.0/8 to lo), which the server sees as different addresses. Loopback is
//! exempt unless `--limit-loopback`, which these tests give, but one.

mod common;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

fn source(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A client established under `name`, connected from `from`.
fn login_from(server: &Server, from: IpAddr, name: &str) -> TestClient {
    let mut c = TestClient::connect_tls_from(from, server.addr);
    c.handshake(name);
    c
}

/// Sends a TLS ClientHello on `tcp` and expects the connection to end without one byte
/// back: no TLS session was started for it. A reset counts as an end (the server closed
/// with the ClientHello unread).
fn assert_closed_before_tls(mut tcp: TcpStream) {
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = ClientConnection::new(tls_config(), name).unwrap();
    let mut hello = Vec::new();
    tls.write_tls(&mut hello).unwrap();
    // The write may already fail: the server closed first.
    let _ = tcp.write_all(&hello);
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    match tcp.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Ok(n) => panic!("the server answered with {n} bytes: it started TLS"),
        Err(e) => panic!("expected the connection to be closed at once, got: {e}"),
    }
}

/// Connects from `from` and expects the connection to be closed before any TLS.
fn assert_refused(server: &Server, from: IpAddr) {
    assert_closed_before_tls(connect_tcp_from(from, server.addr).expect("connect"));
}

/// Whether a new client from `from` is served (its TLS handshake completes).
fn is_served(server: &Server, from: IpAddr) -> bool {
    let mut c = TestClient::connect_tls_from(from, server.addr);
    c.try_finish_tls(Duration::from_secs(5)).is_ok()
}

/// The value of `name` in the final statistics line, after a SIGTERM.
fn final_stat(server: Server, name: &str) -> u64 {
    let end = server.terminate(Duration::from_secs(5));
    let last = end.stderr.lines().last().unwrap_or_default().to_string();
    stat_in(&last, name).unwrap_or_else(|| panic!("no {name} in {last:?}"))
}

#[test]
fn an_address_at_max_per_address_is_refused_before_tls_while_others_connect() {
    let server = Server::start(&[
        "--limit-loopback",
        "--max-per-address",
        "3",
        "--accept-rate",
        "0",
    ]);
    let crowded = source(2);
    let mut held: Vec<TestClient> = (0..3)
        .map(|i| login_from(&server, crowded, &format!("held{i}")))
        .collect();
    // The fourth from the same address: closed before TLS.
    assert_refused(&server, crowded);
    // Another address is not affected.
    let mut other = login_from(&server, source(3), "other");
    other.assert_alive();
    for c in &mut held {
        c.assert_alive();
    }
    // One of the three leaves; once the server has freed its slot, a new one is served.
    let mut leaving = held.pop().unwrap();
    leaving.quit();
    leaving.expect_clean_close();
    drop(leaving);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut refusals = 1;
    while !is_served(&server, crowded) {
        refusals += 1;
        assert!(
            Instant::now() < deadline,
            "no new connection from {crowded} served after one of its three left"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(final_stat(server, "refused_max_per_address"), refusals);
}

#[test]
fn the_accept_rate_refuses_a_burst_beyond_the_bucket_then_accepts_again() {
    // One new connection a second per address, bursts of four.
    let server = Server::start(&[
        "--limit-loopback",
        "--max-per-address",
        "0",
        "--accept-rate",
        "1",
        "--accept-burst",
        "4",
    ]);
    let hasty = source(4);
    // Five connections at once (the TCP connections only, so that all five reach the
    // server within a few milliseconds): four take the bucket, the fifth is refused.
    let mut first: Vec<TestClient> = (0..4)
        .map(|_| TestClient::connect_tls_from(hasty, server.addr))
        .collect();
    let fifth = connect_tcp_from(hasty, server.addr).expect("connect");
    assert_closed_before_tls(fifth);
    for (i, c) in first.iter_mut().enumerate() {
        c.handshake(&format!("hasty{i}"));
    }
    // Another address has its own bucket.
    login_from(&server, source(5), "calm").assert_alive();
    // A second later, the bucket holds one token again: one more, not two.
    thread::sleep(Duration::from_millis(1100));
    login_from(&server, hasty, "later").assert_alive();
    assert_refused(&server, hasty);
    for c in &mut first {
        c.assert_alive();
    }
    assert_eq!(final_stat(server, "refused_accept_rate"), 2);
}

#[test]
fn loopback_is_exempt_without_limit_loopback() {
    // Limits that two connections would exceed, on any address but loopback.
    let server = Server::start(&[
        "--max-per-address",
        "1",
        "--accept-rate",
        "1",
        "--accept-burst",
        "1",
    ]);
    let mut clients = Vec::new();
    for (i, from) in [1, 1, 1, 2, 2, 2].into_iter().enumerate() {
        clients.push(login_from(&server, source(from), &format!("local{i}")));
    }
    for c in &mut clients {
        c.assert_alive();
    }
    let end = server.terminate(Duration::from_secs(5));
    let last = end.stderr.lines().last().unwrap_or_default();
    assert_eq!(stat_in(last, "refused_max_per_address"), Some(0), "{last}");
    assert_eq!(stat_in(last, "refused_accept_rate"), Some(0), "{last}");
}
