//! 1,000 concurrent TLS clients exchanging messages through the real server: every client
//! joins one of a few channels, all join before anyone speaks, each sends a few messages,
//! and every member must receive every other member's messages of its channel, each
//! sender's in the order sent, exactly once.

mod common;

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const CLIENTS: usize = 1000;
const CHANNELS: usize = 10;
/// Messages each client sends.
const MESSAGES: usize = 3;

fn one_client(
    addr: std::net::SocketAddr,
    i: usize,
    joined: &Gate,
    deadline: Instant,
) -> Result<usize, String> {
    let mut c = TestClient::connect_tls(addr);
    let name = format!("u{i}");
    let channel = i % CHANNELS;
    c.handshake(&name);
    c.join(&format!("@load{channel}"));
    if !joined.wait(deadline) {
        return Err(format!("{name}: not everybody joined in time"));
    }
    for m in 0..MESSAGES {
        c.say(&format!("{m} from {name}"));
    }
    // How many messages of each other member have arrived so far.
    let mut next: HashMap<String, usize> = (0..CLIENTS)
        .filter(|j| j % CHANNELS == channel && *j != i)
        .map(|j| (format!("u{j}"), 0))
        .collect();
    let want = next.len() * MESSAGES;
    let mut got = 0;
    while got < want {
        if Instant::now() > deadline {
            return Err(format!("{name}: only {got} of {want} messages arrived"));
        }
        for pdu in c.query() {
            let (sender, text) = entry(&pdu);
            if sender == "SERVER" {
                continue;
            }
            let Some(n) = next.get_mut(&sender) else {
                return Err(format!(
                    "{name}: message from a stranger {sender}: {text:?}"
                ));
            };
            if text != format!("{n} from {sender}") {
                return Err(format!(
                    "{name}: expected message {n} of {sender}, got {text:?}"
                ));
            }
            *n += 1;
            got += 1;
        }
        if got < want {
            thread::sleep(Duration::from_millis(150));
        }
    }
    c.quit();
    c.expect_closed();
    Ok(got)
}

#[test]
fn a_thousand_clients_exchange_messages() {
    raise_fd_limit();
    let mut server = Server::start(&["--replay", "0"]);
    let addr = server.addr;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let joined = Arc::new(Gate::new(CLIENTS));
    let mut threads = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let joined = Arc::clone(&joined);
        let t = thread::Builder::new()
            .name(format!("client-{i}"))
            .stack_size(512 * 1024)
            .spawn(move || {
                let run = panic::catch_unwind(AssertUnwindSafe(|| {
                    one_client(addr, i, &joined, deadline)
                }));
                match run {
                    Ok(Ok(n)) => Ok(n),
                    Ok(Err(e)) => {
                        joined.fail();
                        Err(e)
                    }
                    Err(p) => {
                        joined.fail();
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Err(format!("u{i} panicked: {msg}"))
                    }
                }
            })
            .expect("spawn a client thread");
        threads.push(t);
    }
    let mut failures = Vec::new();
    let mut delivered = 0;
    for t in threads {
        match t.join().expect("client thread") {
            Ok(n) => delivered += n,
            Err(e) => failures.push(e),
        }
    }
    let per_channel = CLIENTS / CHANNELS;
    eprintln!(
        "{CLIENTS} clients, {CHANNELS} channels: {delivered} deliveries in {:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {CLIENTS} clients failed; first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(delivered, CLIENTS * (per_channel - 1) * MESSAGES);
    server.assert_running();
    // The server still serves after all of them left.
    server.login("after").assert_alive();
}

#[test]
fn sigterm_with_a_thousand_clients_closes_each_with_close_notify() {
    raise_fd_limit();
    let mut server = Server::start(&[]);
    let addr = server.addr;
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = Arc::new(Gate::new(CLIENTS + 1));
    let mut threads = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let ready = Arc::clone(&ready);
        let t = thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                let run = panic::catch_unwind(AssertUnwindSafe(|| {
                    let mut c = TestClient::connect_tls(addr);
                    // Half of them established (some in a channel), half only PINGed.
                    if i % 2 == 0 {
                        c.handshake(&format!("s{i}"));
                        if i % 4 == 0 {
                            c.join(&format!("@s{}", i % CHANNELS));
                        }
                    } else {
                        c.ping_version();
                    }
                    if !ready.wait(deadline) {
                        return Err(format!("s{i}: the others were not ready in time"));
                    }
                    match c.try_recv_within(Duration::from_secs(10)) {
                        Err(RecvError::Closed { partial: 0 }) => Ok(()),
                        other => Err(format!("s{i}: expected close_notify, got {other:?}")),
                    }
                }));
                run.unwrap_or_else(|_| {
                    ready.fail();
                    Err(format!("s{i} panicked"))
                })
            })
            .expect("spawn a client thread");
        threads.push(t);
    }
    assert!(ready.wait(deadline), "the clients did not all connect");
    server.assert_running();
    let end = server.terminate(Duration::from_secs(10));
    let failures: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().expect("client thread").err())
        .collect();
    assert_eq!(end.status.and_then(|s| s.code()), Some(0), "{}", end.stderr);
    assert!(
        end.elapsed < Duration::from_secs(2),
        "shutdown with {CLIENTS} clients took {:?}",
        end.elapsed
    );
    assert!(
        failures.is_empty(),
        "{} clients did not see close_notify; first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
