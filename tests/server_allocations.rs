//! No heap allocation per request on the server's hot paths (issue 10): the real reactor
//! (`kaichat::server::Server`, in a thread of this process) under a counting global
//! allocator that counts only the server thread's allocations, and a blocking client that
//! runs QUERY round trips and SEND_MESSAGE + QUERY round trips after a warm-up.
//!
//! A message costs one allocation, the history's copy of its text; nothing else on its way
//! in or out allocates. The zero-allocation test runs in plaintext: in TLS, rustls 0.23 itself allocates per
//! record (each encrypted record is built in a fresh `Vec` by the crypto provider, each
//! decrypted record is copied into a fresh `Vec`), whichever of its APIs is used, so the
//! server's own allocations can only be isolated without it. The TLS test bounds what is
//! left: the allocations per round trip are those of rustls's records, no more.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use kaichat::server::{Config, Server, Shutdown, DEFAULT_HISTORY};
use kaichat::tls;

mod common;
use common::TestClient;

/// Counts the allocations (and reallocations) of each thread that asked to be counted, in
/// that thread's own counter (the tests run side by side, each with its server thread).
struct Counting;

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates, also while
    // the thread is being torn down.
    static COUNTER: Cell<Option<&'static AtomicU64>> = const { Cell::new(None) };
}

fn note() {
    if let Some(counter) = COUNTER.with(Cell::get) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct InProcess {
    addr: SocketAddr,
    /// The server thread's allocations so far.
    allocations: &'static AtomicU64,
    shutdown: Shutdown,
    thread: thread::JoinHandle<()>,
}

impl InProcess {
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> InProcess {
        let config = Config {
            max_clients: 64,
            // Messages as fast as the test sends them (the default limit is 10 a second).
            rules: kaichat_proto::hub::Rules {
                rate_limit: 0,
                ..kaichat_proto::hub::Rules::default()
            },
            ..Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), tls)
        };
        let mut server = Server::bind(config).expect("bind on 127.0.0.1");
        let addr = server.local_addr().expect("bound address");
        let shutdown = server.shutdown_handle();
        // One small leak per test: the counter must outlive the server thread.
        let allocations: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        let thread = thread::spawn(move || {
            COUNTER.with(|c| c.set(Some(allocations)));
            server.run().expect("the server's loop failed");
        });
        InProcess {
            addr,
            allocations,
            shutdown,
            thread,
        }
    }

    fn stop(self) {
        self.shutdown.trigger();
        self.thread.join().expect("the server thread panicked");
    }
}

/// Allocations on the server thread per call of `round` after `warm_up` of them, over
/// `rounds` calls. Each round ends with the client's receipt of the answer; what the
/// server does after writing an answer (the rest of its turn) is counted in the next
/// round, so a per-request allocation anywhere in the loop shows in all rounds but one.
fn allocations_per_round(
    server: &InProcess,
    warm_up: usize,
    rounds: usize,
    mut round: impl FnMut(),
) -> f64 {
    for _ in 0..warm_up {
        round();
    }
    let before = server.allocations.load(Ordering::SeqCst);
    for _ in 0..rounds {
        round();
    }
    let after = server.allocations.load(Ordering::SeqCst);
    (after - before) as f64 / rounds as f64
}

fn query(client: &mut TestClient) {
    let answer = client.query();
    assert!(
        answer.is_empty(),
        "a QUERY with nothing new: the up-to-date PDU alone"
    );
}

/// Four members of one channel; the first says something, the next one QUERYs it.
fn message_round(clients: &mut [TestClient], turn: &mut usize) {
    let n = clients.len();
    let speaker = *turn % n;
    clients[speaker].say("the same words each time, of a fixed length");
    let listener = (speaker + 1) % n;
    let answer = clients[listener].query();
    assert!(!answer.is_empty(), "the message, before the up-to-date PDU");
    *turn += 1;
}

#[test]
fn a_query_round_trip_allocates_nothing_on_the_server_thread_in_plaintext() {
    let server = InProcess::start(None);
    let mut client = TestClient::connect_plain(server.addr);
    client.handshake("alloc");
    client.join("@alloc");
    client.query();
    // The warm-up lets every buffer reach its working size.
    let per_query = allocations_per_round(&server, 200, 1000, || query(&mut client));
    drop(client);
    server.stop();
    assert_eq!(
        per_query, 0.0,
        "the server thread allocated {per_query} times per QUERY round trip"
    );
}

#[test]
fn a_message_round_trip_allocates_only_the_stored_text_on_the_server_thread_in_plaintext() {
    let server = InProcess::start(None);
    let mut clients: Vec<TestClient> = (0..4)
        .map(|i| {
            let mut c = TestClient::connect_plain(server.addr);
            c.handshake(&format!("m{i}"));
            c.join("@msgs");
            c
        })
        .collect();
    for c in &mut clients {
        c.query();
    }
    let mut turn = 0;
    // More than the history ring holds (DEFAULT_HISTORY), so that the measured messages
    // replace old entries as in a server that has run for a while.
    let warm_up = DEFAULT_HISTORY + 200;
    for _ in 0..warm_up {
        message_round(&mut clients, &mut turn);
    }
    // Everyone catches up, so that each QUERY below carries one message.
    for c in &mut clients {
        c.query();
    }
    let per_message =
        allocations_per_round(&server, 0, 500, || message_round(&mut clients, &mut turn));
    drop(clients);
    server.stop();
    eprintln!("plaintext: {per_message} allocations per SEND_MESSAGE + QUERY round trip");
    // The one allocation left is the history's copy of the text (`Entry::text`, freed
    // with the entry it evicts): storing a message of any length needs its bytes.
    assert!(
        per_message <= 1.0,
        "the server thread allocated {per_message} times per SEND_MESSAGE + QUERY round trip"
    );
}

#[test]
fn a_query_round_trip_over_tls_allocates_only_rustls_records() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = tls::server_config(&root.join(tls::DEV_CERT), &root.join(tls::DEV_KEY))
        .expect("server TLS configuration");
    let server = InProcess::start(Some(config));
    let mut client = TestClient::connect_tls(server.addr);
    client.handshake("alloc");
    client.join("@alloc");
    client.query();
    let per_query = allocations_per_round(&server, 200, 1000, || query(&mut client));
    drop(client);
    server.stop();
    eprintln!("TLS: {per_query} allocations per QUERY round trip on the server thread");
    // One record in (its plaintext copied into a fresh Vec by rustls), one record out
    // (encrypted into a fresh Vec by the crypto provider).
    assert!(
        per_query <= 2.0,
        "the server thread allocated {per_query} times per QUERY round trip over TLS"
    );
}
