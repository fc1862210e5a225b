//! The single-threaded mio reactor that runs every simulated client of the process.
//!
//! One loop: poll (timeout = the earliest of the next client wake-up, the next connection
//! the ramp allows, the next progress second and the next stage deadline) → handle socket
//! events → fire due client wake-ups → start new connections → advance the run's stage →
//! progress. This file holds the loop, its deadlines and the timer heap of client
//! wake-ups; the rest is in
//! - `clients`: one simulated client's life in the loop: connect, read, react, act, close;
//! - `stages`: the run's stages (ramp, warm-up, steady, the fence and drain end steps,
//!   quit) and the CPU readings at the edges of its windows;
//! - `record`: what the clients' events mean as metrics, counts and ledger entries;
//! - `progress`: the per-second timeline and progress line.
//!
//! Sockets are registered once for READABLE | WRITABLE (edge-triggered); reads drain to
//! `WouldBlock` and a `writable` flag remembers whether the last write did.

mod clients;
mod progress;
mod record;
mod stages;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kaichat_proto::pdu::Pdu;
use mio::{Events, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use slab::Slab;

use crate::alarm::Alarm;
use crate::clock::Clock;
use crate::config::Config;
use crate::conn::Conn;
use crate::cpu::CpuProbe;

pub use progress::{second, Tick};
pub use record::Outcome;
pub use stages::RunStage;

use progress::Progress;
use record::Record;
use stages::Run;

/// The token of the [`Alarm`]; slab keys never reach it.
const ALARM: Token = Token(usize::MAX);

/// Runs the whole load and returns what it measured.
pub fn run(config: &Config, tls: Option<Arc<ClientConfig>>) -> io::Result<Outcome> {
    let server_name = ServerName::try_from(config.server_name.clone()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a valid server name: {:?}", config.server_name),
        )
    })?;
    let clock = Clock::start();
    let mut reactor = Reactor {
        cfg: config,
        tls,
        server_name,
        clock,
        cpu: CpuProbe::new(config.server_pid),
        poll: Poll::new()?,
        conns: Slab::with_capacity(config.clients as usize),
        timers: BinaryHeap::new(),
        next_gen: 0,
        next_client: 0,
        setting_up: 0,
        handshaking: 0,
        members_now: 0,
        run: Run::new(),
        record: Record::default(),
        progress: Progress::new(clock.epoch()),
        pdus: Vec::new(),
        text: String::new(),
    };
    reactor.run()?;
    Ok(reactor.outcome())
}

struct Reactor<'c> {
    cfg: &'c Config,
    tls: Option<Arc<ClientConfig>>,
    server_name: ServerName<'static>,
    /// The start of the run; turns instants into numbers for the output.
    clock: Clock,
    /// Reads CPU time at the edges of the windows.
    cpu: CpuProbe,
    poll: Poll,
    conns: Slab<Conn>,
    /// (wake time, slab key, generation): an entry whose generation is not the
    /// connection's current one is stale and skipped.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_gen: u64,
    /// The next client the ramp starts.
    next_client: u32,
    /// Clients connecting, setting up or joining.
    setting_up: u32,
    /// Of those, clients still connecting or setting up.
    handshaking: u32,
    /// Clients in their channel.
    members_now: u64,
    run: Run,
    record: Record,
    progress: Progress,
    /// Scratch: PDUs of one read.
    pdus: Vec<Pdu>,
    /// Scratch: one message text.
    text: String,
}

impl Reactor<'_> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(4096);
        let mut alarm = Alarm::new(self.poll.registry(), ALARM)?;
        let mut alarm_at: Option<Instant> = None;
        while self.run.stage != RunStage::Done {
            let now = Instant::now();
            let timeout = match self.next_deadline() {
                Some(at) if at <= now => Duration::ZERO,
                Some(at) => {
                    if alarm_at != Some(at) {
                        alarm.arm(at - now)?;
                        alarm_at = Some(at);
                    }
                    // The alarm wakes us on time; the poll timeout is only a safety net.
                    (at - now) + Duration::from_millis(2)
                }
                None => Duration::from_secs(1),
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                let key = event.token().0;
                if event.token() == ALARM {
                    alarm.clear();
                    alarm_at = None;
                } else if self.conns.contains(key) {
                    self.on_event(key, event.is_readable(), event.is_writable(), now);
                }
            }
            let now = Instant::now();
            self.fire_timers(now);
            self.start_clients(now);
            self.advance(now);
            if let Some(tick) =
                self.progress
                    .tick(now, self.run.stage, self.members_now, &mut self.record)
            {
                if !self.cfg.quiet {
                    let line = progress::line(&tick, &self.clock, self.cfg.clients, &self.record);
                    eprintln!("{line}");
                }
            }
        }
        Ok(())
    }

    /// The earliest moment the loop must wake without a socket event.
    fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let start = (self.next_client < self.cfg.clients && self.setting_up < self.cfg.max_setup)
            .then(|| self.connect_due(self.next_client));
        [
            timer,
            start,
            self.run.next_deadline(),
            Some(self.progress.next_deadline()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Sets connection `key`'s wake-up to its next due action or client deadline.
    fn rearm(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let wake = conn.next_wake(conn.client.next_wakeup());
        if wake != conn.wake_at {
            conn.wake_at = wake;
            self.next_gen += 1;
            conn.wake_gen = self.next_gen;
            if let Some(at) = wake {
                self.timers.push(Reverse((at, key, self.next_gen)));
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, key, gen))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let current = self.conns.get(key).is_some_and(|c| c.wake_gen == gen);
            if current {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.wake_at = None; // fired
                }
                self.act(key, now);
            }
        }
    }

    fn outcome(self) -> Outcome {
        let record = self.record;
        Outcome {
            loss: record.loss(),
            connect: record.connect_window(),
            counters: record.counters,
            metrics: record.metrics.with_delivery(),
            errors: record.errors,
            disconnects: record.disconnects,
            timeline: self.progress.into_timeline(),
            peak_members: record.peak_members,
            clock: self.clock,
            warmup_start: self.run.warmup_start,
            steady: self.run.steady,
            connect_cpu: self.run.connect_cpu.used(),
            steady_cpu: self.run.steady_cpu.used(),
            finished: self.run.finished,
            servers: record.servers,
        }
    }
}
