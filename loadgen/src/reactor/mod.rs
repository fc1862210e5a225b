//! The single-threaded mio reactor that runs every simulated client of the process.
//!
//! One loop: poll (timeout = the earliest of the next client wake-up, the next connection
//! the ramp allows, the next progress second and the next stage deadline) → handle socket
//! events → fire due client wake-ups → start new connections → advance the run's stage →
//! progress. This file holds the loop, its deadlines and the timer heap of client
//! wake-ups; the rest is in
//! - `clients`: one simulated client's life in the loop: connect, read, react, act, close;
//! - `stages`: the run's stages (ramp, steady, the fence and drain end steps, quit);
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
use std::time::Duration;

use kaichat_proto::pdu::Pdu;
use mio::{Events, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use slab::Slab;

use crate::alarm::Alarm;
use crate::config::Config;
use crate::conn::Conn;
use crate::schedule::Clock;

pub use progress::Tick;
pub use record::Outcome;
pub use stages::RunStage;

use progress::Progress;
use record::Record;
use stages::{unix_now, Run};

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
    let mut reactor = Reactor {
        cfg: config,
        tls,
        server_name,
        clock: Clock::start(),
        start_unix: unix_now(),
        poll: Poll::new()?,
        conns: Slab::with_capacity(config.clients as usize),
        timers: BinaryHeap::new(),
        next_gen: 0,
        next_client: 0,
        setting_up: 0,
        members_now: 0,
        run: Run::new(),
        record: Record::default(),
        progress: Progress::new(),
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
    clock: Clock,
    /// Wall-clock time of the clock's epoch.
    start_unix: f64,
    poll: Poll,
    conns: Slab<Conn>,
    /// (wake time, slab key, generation): an entry whose generation is not the
    /// connection's current one is stale and skipped.
    timers: BinaryHeap<Reverse<(u64, usize, u64)>>,
    next_gen: u64,
    /// The next client the ramp starts.
    next_client: u32,
    /// Clients connecting, setting up or joining.
    setting_up: u32,
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
        let mut alarm_at: Option<u64> = None;
        while self.run.stage != RunStage::Done {
            let now = self.clock.now_us();
            let timeout = match self.next_deadline() {
                Some(at) if at <= now => Duration::ZERO,
                Some(at) => {
                    if alarm_at != Some(at) {
                        alarm.arm(Duration::from_micros(at - now))?;
                        alarm_at = Some(at);
                    }
                    // The alarm wakes us on time; the poll timeout is only a safety net.
                    Duration::from_micros(at - now) + Duration::from_millis(2)
                }
                None => Duration::from_secs(1),
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = self.clock.now_us();
            for event in events.iter() {
                let key = event.token().0;
                if event.token() == ALARM {
                    alarm.clear();
                    alarm_at = None;
                } else if self.conns.contains(key) {
                    self.on_event(key, event.is_readable(), event.is_writable(), now);
                }
            }
            let now = self.clock.now_us();
            self.fire_timers(now);
            self.start_clients(now);
            self.advance(now);
            if let Some(tick) =
                self.progress
                    .tick(now, self.run.stage, self.members_now, &mut self.record)
            {
                if !self.cfg.quiet {
                    eprintln!("{}", progress::line(&tick, self.cfg.clients, &self.record));
                }
            }
        }
        Ok(())
    }

    /// The earliest moment the loop must wake without a socket event.
    fn next_deadline(&self) -> Option<u64> {
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
        let clock = self.clock;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let deadline = conn.client.next_wakeup().map(|at| clock.us(at));
        let wake = conn.next_wake(deadline);
        if wake != conn.wake_at {
            conn.wake_at = wake;
            self.next_gen += 1;
            conn.wake_gen = self.next_gen;
            if let Some(at) = wake {
                self.timers.push(Reverse((at, key, self.next_gen)));
            }
        }
    }

    fn fire_timers(&mut self, now: u64) {
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
        let loss = self.record.loss();
        let record = self.record;
        let connect_window_s = match record.first_connect_us {
            Some(first) if record.last_established_us > first => {
                (record.last_established_us - first) as f64 / 1e6
            }
            _ => 0.0,
        };
        let steady_s = if self.run.steady_start_us > 0 {
            self.run
                .steady_end_us
                .min(self.clock.now_us())
                .saturating_sub(self.run.steady_start_us) as f64
                / 1e6
        } else {
            0.0
        };
        Outcome {
            counters: record.counters,
            metrics: record.metrics,
            errors: record.errors,
            disconnects: record.disconnects,
            loss,
            timeline: self.progress.into_timeline(),
            peak_members: record.peak_members,
            connect_window_s,
            steady_s,
            steady_start_unix: self.run.steady_start_unix,
            steady_end_unix: self.run.steady_end_unix,
            connect_start_unix: self.start_unix + record.first_connect_us.unwrap_or(0) as f64 / 1e6,
            connect_end_unix: self.start_unix + record.last_established_us as f64 / 1e6,
            finished: self.run.finished,
        }
    }
}
