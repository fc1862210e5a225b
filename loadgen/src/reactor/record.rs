//! What the clients' events mean as measurements: latency histograms, counters, errors
//! and disconnects by cause, and the ledger entries (messages sent, memberships) that the
//! loss accounting judges at the end.
//!
//! The reactor calls one method per event and decides nothing here: which window a QUERY
//! belongs to is the stages' answer ([`Phase`]), passed in. Nothing here touches a socket
//! or reads a clock.

use std::time::Instant;

use crate::clock::{Clock, Window};
use crate::config::Config;
use crate::conn::Conn;
use crate::cpu::WindowCpu;
use crate::ledger::{self, Loss, Member, Read, Sent};
use crate::message::{parse_skipped, Stamp};
use crate::stats::{Causes, Counters, Metrics, ServerCounts};

use super::stages::Phase;
use super::Tick;

/// Everything a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub counters: Counters,
    pub metrics: Metrics,
    pub errors: Causes,
    pub disconnects: Causes,
    pub loss: Loss,
    pub timeline: Vec<Tick>,
    /// Highest number of clients in their channel at once.
    pub peak_members: u64,
    /// The run's clock: the output turns the instants here into seconds with it.
    pub clock: Clock,
    /// First TCP connect start → last CLIENT_INFO acknowledgement.
    pub connect: Option<Window>,
    /// The end of the ramp, when the warm-up began.
    pub warmup_start: Option<Instant>,
    /// The steady window the QUERY figures describe.
    pub steady: Option<Window>,
    /// CPU time used in the connect and steady windows, read at their edges.
    pub connect_cpu: Option<WindowCpu>,
    pub steady_cpu: Option<WindowCpu>,
    /// Clients that completed the drain (or, without messages, were in their channel at
    /// the end).
    pub finished: u64,
    /// Per server, in `Config::servers` order (shorter when the last servers saw
    /// nothing).
    pub servers: Vec<ServerCounts>,
}

/// The measurements of a run in progress.
#[derive(Debug, Default)]
pub struct Record {
    pub counters: Counters,
    pub metrics: Metrics,
    pub errors: Causes,
    pub disconnects: Causes,
    /// Ledger: every message handed to a connection.
    pub sent: Vec<Sent>,
    /// Ledger: every client that joined, once its connection is over.
    pub members: Vec<Member>,
    pub first_connect: Option<Instant>,
    pub last_established: Option<Instant>,
    pub peak_members: u64,
    /// Per server (index of `Config::servers`), grown as servers are first seen.
    pub servers: Vec<ServerCounts>,
}

impl Record {
    /// The counts of server `server`.
    fn server(&mut self, server: usize) -> &mut ServerCounts {
        if self.servers.len() <= server {
            self.servers.resize(server + 1, ServerCounts::default());
        }
        &mut self.servers[server]
    }

    /// A client of server `server` completed the end of the run.
    pub fn finished(&mut self, server: usize) {
        self.server(server).finished += 1;
    }

    /// A TCP connect is starting.
    pub fn connect_started(&mut self, now: Instant) {
        self.counters.connects_started += 1;
        self.first_connect.get_or_insert(now);
    }

    /// Server `server` acknowledged CLIENT_INFO for a connection started at
    /// `connect_start`.
    pub fn established(&mut self, server: usize, connect_start: Instant, now: Instant) {
        self.server(server).established += 1;
        self.metrics
            .connect
            .record(now.saturating_duration_since(connect_start));
        self.counters.established += 1;
        self.last_established = Some(now);
    }

    /// First TCP connect start → last CLIENT_INFO acknowledgement, once there was one.
    pub fn connect_window(&self) -> Option<Window> {
        Some(Window {
            start: self.first_connect?,
            end: self.last_established?,
        })
    }

    /// Server `server` acknowledged a JOIN; `members_now` clients are in their channel.
    pub fn joined(&mut self, server: usize, members_now: u64) {
        self.server(server).joined += 1;
        self.counters.joined += 1;
        self.peak_members = self.peak_members.max(members_now);
    }

    /// A chat message arrived for `conn` at `now`; loadgen's stamps were written with
    /// `clock`. Checks that it is of `conn`'s channel, not read twice, asked for
    /// (version 1) or time-stamped (version 2), then counts it as an echo (the member's
    /// own message, version 2) or as delivered.
    pub fn message_read(
        &mut self,
        conn: &mut Conn,
        arrival: Arrival,
        cfg: &Config,
        clock: &Clock,
        now: Instant,
    ) {
        let Arrival {
            sender,
            text,
            time_ms,
            asked,
        } = arrival;
        if !asked && conn.version < 2 {
            // Version 1 sends chat only inside QUERY answers (kaichat-v1 section 5).
            self.errors
                .add("protocol: a message pushed to a version-1 client");
        }
        let stamp = Stamp::parse(text, clock).filter(|s| cfg.client_of(sender) == Some(s.sender));
        let Some(stamp) = stamp else {
            // Not written by this process (or its sender field does not match its text).
            self.counters.messages_received += 1;
            self.counters.messages_foreign += 1;
            return;
        };
        let reader = conn.reader();
        let read = conn.seen.read(
            &reader,
            stamp.sender,
            stamp.seq,
            stamp.sent,
            cfg.channels,
            cfg.channel_size(),
        );
        let latency = now.saturating_duration_since(stamp.due);
        if matches!(read, Read::Delivered { .. } | Read::Echo) {
            if !asked {
                self.counters.pushed += 1;
            }
            if conn.version >= 2 && !stamped_in_time(time_ms, clock, stamp.sent, now) {
                self.errors
                    .add("protocol: a time stamp outside the message's send and arrival");
            }
        }
        match read {
            Read::Delivered { owed } => {
                self.counters.messages_received += 1;
                // A replayed message (sent before this member joined) has no delivery
                // latency to speak of.
                if owed {
                    conn.received_owed += 1;
                    self.metrics.window_delivery.record(latency);
                    if conn.version >= 2 {
                        self.metrics.delivery_v2.record(latency);
                    } else {
                        self.metrics.delivery_v1.record(latency);
                    }
                }
            }
            Read::Echo => {
                self.counters.echoes_received += 1;
                self.metrics.echo.record(latency);
                conn.echoes += 1;
            }
            Read::Duplicate => {
                self.counters.duplicates += 1;
                self.errors.add("duplicate (or out-of-order) message");
            }
            Read::OtherChannel => self.errors.add("protocol: a message of another channel"),
            Read::OwnToV1 => self
                .errors
                .add("protocol: own message sent back to a version-1 client"),
        }
    }

    /// A keep-alive PING due at `due` went out at `now`.
    pub fn ping_sent(&mut self, due: Instant, phase: Phase, now: Instant) {
        self.counters.pings += 1;
        if phase != Phase::Before {
            self.metrics.lag.record(now.saturating_duration_since(due));
        }
    }

    /// The PONG of a keep-alive PING due at `due` arrived at `now`.
    pub fn pong(&mut self, due: Instant, phase: Phase, now: Instant) {
        self.counters.pongs += 1;
        if phase == Phase::Steady {
            self.metrics.ping.record(now.saturating_duration_since(due));
        }
    }

    /// A notice arrived for `conn`.
    pub fn notice(&mut self, conn: &mut Conn, text: &[u8], is_error: bool) {
        self.counters.notices += 1;
        if is_error {
            self.errors.add(&format!("error notice: {}", short(text)));
        } else if let Some(n) = parse_skipped(text) {
            self.counters.skip_notices += 1;
            self.counters.skipped_entries += n;
            conn.skipped += n;
        }
    }

    /// A PDU the client state machine found out of place.
    pub fn unexpected(&mut self, cause: &str) {
        self.counters.unexpected_pdus += 1;
        self.errors.add(cause);
    }

    /// A QUERY answer completed at `now`. `due` is the scheduled QUERY's due time (`None`
    /// for an end-of-run QUERY), `sent` when it was handed to the connection.
    pub fn answer(&mut self, due: Option<Instant>, phase: Phase, sent: Instant, now: Instant) {
        self.counters.queries_total += 1;
        let Some(due) = due else {
            return;
        };
        let latency = now.saturating_duration_since(due);
        match phase {
            Phase::Steady => {
                self.metrics.query.record(latency);
                self.metrics
                    .query_sent
                    .record(now.saturating_duration_since(sent));
                self.metrics.window_query.record(latency);
                self.counters.queries += 1;
            }
            Phase::Before => self.metrics.query_ramp.record(latency),
            Phase::After => {}
        }
    }

    /// A scheduled QUERY due at `due` went out at `now`.
    pub fn query_sent(&mut self, due: Instant, phase: Phase, now: Instant) {
        if phase != Phase::Before {
            self.metrics.lag.record(now.saturating_duration_since(due));
        }
    }

    /// A message due at `due` was handed to `conn`'s connection at `now`.
    pub fn message_sent(&mut self, conn: &Conn, due: Instant, now: Instant) {
        self.counters.messages_sent += 1;
        self.metrics.lag.record(now.saturating_duration_since(due));
        self.sent.push(Sent {
            channel: conn.channel,
            sender: conn.id,
            sent: now,
        });
    }

    /// A connection is over; `cause` is `None` for an orderly end.
    pub fn closed(&mut self, conn: &Conn, cause: Option<&str>) {
        if let Some(cause) = cause {
            // A connection lost after it joined is also a disconnect.
            self.errors.add(cause);
            if !conn.setting_up() {
                self.disconnects.add(cause);
            }
        }
        if let Some(member) = conn.membership() {
            self.members.push(member);
        }
    }

    /// The loss accounting over every message sent and every member.
    pub fn loss(&self) -> Loss {
        ledger::account(&self.sent, &self.members)
    }
}

/// A chat message as it arrived.
#[derive(Clone, Copy, Debug)]
pub struct Arrival<'p> {
    /// The sender field.
    pub sender: &'p [u8],
    pub text: &'p [u8],
    /// The time stamp, ms since the Unix epoch (version 2; 0 on version 1).
    pub time_ms: u64,
    /// A QUERY was in flight: the message is part of its answer, not pushed.
    pub asked: bool,
}

/// How far a version-2 time stamp may lie outside [send, arrival]: the stamp is whole
/// milliseconds, and loadgen's wall-clock reading of an instant is its start-up reading
/// plus monotonic time, which NTP may slew apart from the server's wall clock a little.
const STAMP_SLACK_S: f64 = 1.0;

/// Whether a version-2 time stamp (`time_ms`) says the server stored the message between
/// its sending (`sent`) and its arrival (`now`), as kaichat-v2 section 2a requires.
fn stamped_in_time(time_ms: u64, clock: &Clock, sent: Instant, now: Instant) -> bool {
    let t = time_ms as f64 / 1000.0;
    time_ms != 0 && t >= clock.unix(sent) - STAMP_SLACK_S && t <= clock.unix(now) + STAMP_SLACK_S
}

/// At most 60 bytes of a server text, for a cause name (printable, one line).
pub(super) fn short(text: &[u8]) -> String {
    let cut = &text[..text.len().min(60)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
