//! Micro-benchmarks of the sans-IO core: the PDU codec, a QUERY answer built from a
//! channel backlog through `Session`, and the timer wheel.
//!
//! Run with `cargo bench --bench core`. Nothing here touches a socket; the only clock is
//! the one that times the measured section.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kaichat_proto::hub::{Hub, Rules};
use kaichat_proto::names::ChannelName;
use kaichat_proto::outbox::Outbox;
use kaichat_proto::pdu::{ByteOrder, Command, Decoded, Pdu, PDU_LEN};
use kaichat_proto::session::{Phase, Session, Step};
use kaichat_proto::timer_wheel::TimerWheel;

/// The server's history and replay defaults (`kaichat-server --help`).
const HISTORY: usize = 1000;
const REPLAY: usize = 20;
/// PDUs of an answer produced per `continue_output` call, as the reactor asks for them
/// (`ANSWER_BATCH` in `server/connection.rs`).
const ANSWER_BATCH: usize = 4;
/// A typical chat line.
const MESSAGE_LEN: usize = 100;
/// The reactor's timer key: slab key, generation, due millisecond (`TimerKey` in `server`).
type TimerKey = (usize, u32, u64);
/// The wheel counts milliseconds; its slots are seconds.
const SECOND: u64 = 1000;
/// The longest default deadline (idle, 120 s): where idle connections' entries spread.
const IDLE_SECONDS: u64 = 120;
/// The wheel's slot count (`SLOTS` in `timer_wheel.rs`).
const WHEEL_SLOTS: u64 = 256;
/// Clients of the poll-19k scenario, one live deadline each.
const CLIENTS: usize = 19_000;

fn order_name(order: ByteOrder) -> &'static str {
    match order {
        ByteOrder::Little => "little",
        ByteOrder::Big => "big",
    }
}

/// An outbox that keeps nothing. It counts PDUs, and passes each one through
/// `black_box` so that the compiler must build all 2260 bytes: what is measured is
/// producing the PDUs, not growing a `Vec<Pdu>`.
#[derive(Default)]
struct CountingSink {
    pdus: u64,
    up_to_date: u64,
}

impl Outbox for CountingSink {
    fn send(&mut self, pdu: &Pdu) {
        let pdu = black_box(pdu);
        self.pdus += 1;
        self.up_to_date += u64::from(pdu.up_to_date());
    }
}

fn pdu_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("pdu_encode");
    group.throughput(Throughput::Bytes(PDU_LEN as u64));
    let channel = ChannelName::new(b"@bench").unwrap();
    for len in [100, 2000] {
        let text = vec![b'm'; len];
        group.bench_with_input(
            BenchmarkId::new("receive_message", len),
            &text,
            |b, text| {
                b.iter(|| {
                    Pdu::receive(
                        ByteOrder::Little,
                        black_box(b"alice"),
                        black_box(Some(&channel)),
                        black_box(text),
                    )
                })
            },
        );
    }
    group.finish();
}

/// What a reader of a RECEIVE_MESSAGE looks at: the command and every field.
fn read_receive(pdu: &Pdu, fixed: Option<ByteOrder>) -> (Decoded, usize, usize, bool, usize) {
    (
        pdu.decode_command(fixed),
        pdu.username().len(),
        pdu.channel().len(),
        pdu.up_to_date(),
        pdu.params_text().len(),
    )
}

fn pdu_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("pdu_decode");
    group.throughput(Throughput::Bytes(PDU_LEN as u64));
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let channel = ChannelName::new(b"@bench").unwrap();
        let pdu = Pdu::receive(order, b"alice", Some(&channel), &[b'm'; MESSAGE_LEN]);
        // `fixed`: the order is known, as after VERSION_NEGOTIATION. `detect`: the order is
        // read from the bytes, as before it.
        for (mode, fixed) in [("fixed", Some(order)), ("detect", None)] {
            assert!(matches!(
                read_receive(&pdu, fixed).0,
                Decoded::Known {
                    command: Command::ReceiveMessage,
                    ..
                }
            ));
            group.bench_with_input(
                BenchmarkId::new(format!("receive_message_100/{mode}"), order_name(order)),
                &pdu,
                |b, pdu| b.iter(|| read_receive(black_box(pdu), black_box(fixed))),
            );
        }
    }
    group.finish();
}

/// Takes a fresh session through set-up (PING, version 1, CLIENT_INFO) and JOIN. Version 1:
/// what is measured is the QUERY answer of a polling client, as in earlier runs.
fn joined(name: &[u8], channel: &[u8], hub: &mut Hub, sink: &mut CountingSink) -> Session {
    let channel = ChannelName::new(channel).unwrap();
    let order = ByteOrder::Little;
    let mut session = Session::new(0);
    for pdu in [
        Pdu::ping(order),
        Pdu::client_version(order, 1),
        Pdu::client_info(order, name),
        Pdu::join(order, name, &channel),
    ] {
        assert_eq!(session.on_pdu(&pdu, 0, hub, sink), Step::Continue);
    }
    assert_eq!(session.phase(), Phase::InChannel);
    session
}

/// Two members of one channel: `poster` writes, `reader` QUERYs.
struct Backlog {
    hub: Hub,
    poster: Session,
    reader: Session,
    sink: CountingSink,
    message: Pdu,
    query: Pdu,
}

impl Backlog {
    fn new() -> Backlog {
        let mut hub = Hub::new(HISTORY, REPLAY);
        // The poster writes a whole backlog at once: no rate limit (v2 section 6).
        hub.set_rules(Rules {
            rate_limit: 0,
            ..Rules::default()
        });
        let mut sink = CountingSink::default();
        let reader = joined(b"reader", b"@bench", &mut hub, &mut sink);
        let poster = joined(b"poster", b"@bench", &mut hub, &mut sink);
        let mut backlog = Backlog {
            hub,
            poster,
            reader,
            sink,
            message: Pdu::send_message(ByteOrder::Little, &[b'm'; MESSAGE_LEN]),
            query: Pdu::query(ByteOrder::Little),
        };
        // Read the two `joined` notices, so that each answer holds only posted messages.
        backlog.answer();
        backlog
    }

    fn post(&mut self, n: u64) {
        for _ in 0..n {
            self.poster
                .on_pdu(&self.message, 0, &mut self.hub, &mut self.sink);
        }
    }

    /// The reader's QUERY and its whole answer; returns the PDUs the answer held.
    fn answer(&mut self) -> u64 {
        let before = self.sink.pdus;
        self.reader
            .on_pdu(&self.query, 0, &mut self.hub, &mut self.sink);
        while !self
            .reader
            .continue_output(&self.hub, 0, ANSWER_BATCH, &mut self.sink)
        {}
        self.sink.pdus - before
    }
}

fn query_answer(c: &mut Criterion) {
    let mut group = c.benchmark_group("query_answer");
    for n in [20u64, 200, 1000] {
        // Per PDU: n messages and the up-to-date marker.
        group.throughput(Throughput::Elements(n + 1));
        group.bench_function(BenchmarkId::new("backlog", n), |b| {
            let mut backlog = Backlog::new();
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Posting (and evicting the oldest entries) is not timed.
                    backlog.post(n);
                    let start = Instant::now();
                    let pdus = backlog.answer();
                    total += start.elapsed();
                    assert_eq!(pdus, n + 1, "the answer must hold every message");
                }
                total
            })
        });
    }
    group.finish();
}

fn timer_wheel(c: &mut Criterion) {
    let mut group = c.benchmark_group("timer_wheel");

    // Arming n idle deadlines spread over 120 s, into slots that already have capacity
    // (the steady state of a running server). Draining them is not timed.
    for n in [1_000, CLIENTS] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("arm", n), |b| {
            let mut wheel = TimerWheel::<TimerKey>::new(0);
            let mut fired = Vec::with_capacity(n);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let base = wheel.now();
                    let start = Instant::now();
                    for key in 0..n {
                        let due = base + SECOND * (1 + key as u64 % IDLE_SECONDS);
                        wheel.arm(due, black_box((key, 1, due)));
                    }
                    total += start.elapsed();
                    wheel.advance(base + SECOND * IDLE_SECONDS, &mut fired);
                    assert_eq!(fired.len(), n);
                    fired.clear();
                }
                total
            })
        });
    }

    // Cancelling by invalidation: every entry belongs to a closed connection (its slot now
    // holds a later generation), so it fires and the owner's check drops it. Timed: arming
    // the entries, advancing over them, and the owner's check; per entry.
    group.throughput(Throughput::Elements(CLIENTS as u64));
    group.bench_function(BenchmarkId::new("cancel_by_invalidation", CLIENTS), |b| {
        let mut wheel = TimerWheel::<TimerKey>::new(0);
        let mut fired = Vec::with_capacity(CLIENTS);
        // (generation, armed due millisecond) of the live connection in each slab slot.
        let live: Vec<(u32, u64)> = vec![(2, 0); CLIENTS];
        b.iter(|| {
            let base = wheel.now();
            for key in 0..CLIENTS {
                let due = base + SECOND * (1 + key as u64 % IDLE_SECONDS);
                wheel.arm(due, (key, 1, due));
            }
            wheel.advance(base + SECOND * IDLE_SECONDS, &mut fired);
            let still_live = fired
                .drain(..)
                .filter(|&(key, generation, due)| live[key] == (generation, due))
                .count();
            assert_eq!(still_live, 0);
        })
    });

    // One second of the clock with 19,000 deadlines spread over all 256 slots: the slot
    // visited holds about 74 entries, all due. Timed: `advance` alone. The fired entries
    // are re-armed one revolution later, untimed, to keep 19,000 in the wheel.
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("advance_1s", CLIENTS), |b| {
        let mut wheel = TimerWheel::<TimerKey>::new(0);
        for key in 0..CLIENTS {
            let due = SECOND * (1 + key as u64 % WHEEL_SLOTS);
            wheel.arm(due, (key, 1, due));
        }
        let mut fired = Vec::with_capacity(CLIENTS);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let next = wheel.now() + SECOND;
                let start = Instant::now();
                wheel.advance(next, &mut fired);
                total += start.elapsed();
                for (key, generation, due) in fired.drain(..) {
                    let due = due + SECOND * WHEEL_SLOTS;
                    wheel.arm(due, (key, generation, due));
                }
                assert_eq!(wheel.len(), CLIENTS);
            }
            total
        })
    });
    group.finish();
}

criterion_group! {
    name = core;
    // Modest times: the whole file runs in about a minute on a 2-core machine.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = pdu_encode, pdu_decode, query_answer, timer_wheel
}
criterion_main!(core);
