//! Memory given back after a burst (issue 12.2): the memory the server held for
//! connections that are gone returns to the system within a bounded time, so a machine
//! that took a burst of 10,000 connections (a slowloris attack: connect, send nothing) is
//! not left with the server's peak footprint.
//!
//! The real binary with its real allocator (jemalloc), measured from the outside:
//! /proc/PID/status.

mod common;

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Connections of the burst.
const BURST: usize = 10_000;
/// Local addresses the burst comes from (127.0.0.2 and up): 1,000 ports each, far from
/// exhausting one address's ephemeral ports even with earlier tests' TIME_WAITs.
const SOURCES: usize = 10;
/// How far above its baseline the server's RSS may stay once the burst is gone.
const SLACK_KIB: u64 = 2 * 1024;
/// How long the server has to give the memory back, once the burst's slots are free.
const GIVE_BACK: Duration = Duration::from_secs(6);

/// Waits until the server's statistics line says `clients=want`.
fn wait_for_clients(server: &Server, want: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if server.last_stat("clients") == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not reach {want} clients in {timeout:?}; last line: {:?}",
            server.stderr().lines().last()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn memory_of_a_burst_of_idle_connections_is_given_back() {
    raise_fd_limit();
    let mut server = Server::start(&["--stats-interval", "1", "--max-clients", "12000"]);
    // The baseline: a server that has served a few clients (rustls, the hub and the
    // allocator are warmed up), once the start-up has settled.
    let mut regulars: Vec<TestClient> = (0..3)
        .map(|i| server.member(&format!("regular{i}"), "@mem"))
        .collect();
    thread::sleep(Duration::from_millis(1500));
    let baseline = server.rss_kib();

    let started = Instant::now();
    let mut burst: Vec<TcpStream> = Vec::with_capacity(BURST);
    for i in 0..BURST {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8));
        burst.push(connect_tcp_from(source, server.addr).expect("connect"));
    }
    wait_for_clients(
        &server,
        (BURST + regulars.len()) as u64,
        Duration::from_secs(15),
    );
    let peak = server.rss_kib();
    eprintln!(
        "{BURST} idle connections held after {:?}: RSS {baseline} KiB -> {peak} KiB",
        started.elapsed()
    );
    assert!(
        peak > baseline + 8 * 1024,
        "the burst should cost the server several MiB: {baseline} KiB -> {peak} KiB"
    );

    // The burst goes away: the server reads each one's EOF and closes it.
    drop(burst);
    wait_for_clients(&server, regulars.len() as u64, Duration::from_secs(10));
    let closed = Instant::now();
    let mut rss = server.rss_kib();
    while rss > baseline + SLACK_KIB && closed.elapsed() < GIVE_BACK {
        thread::sleep(Duration::from_millis(200));
        rss = server.rss_kib();
    }
    eprintln!(
        "RSS {:?} after the burst's slots were freed: {rss} KiB (baseline {baseline} KiB, \
         peak {peak} KiB)",
        closed.elapsed()
    );
    server.assert_running();
    assert!(
        rss <= baseline + SLACK_KIB,
        "RSS still {rss} KiB {GIVE_BACK:?} after the burst was gone, {} KiB above the \
         baseline of {baseline} KiB (peak {peak} KiB)",
        rss - baseline
    );
    // The regulars were served throughout.
    for c in &mut regulars {
        c.assert_alive();
    }
}
