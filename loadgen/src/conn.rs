//! One simulated client: its socket, its transport, the shared client state machine
//! (`kaichat_proto::client`) and its schedules.
//!
//! The protocol itself (set-up, join, query, send, what each server PDU means) is
//! `kaichat_proto::client::Client`; this struct only adds what a load generator needs around it:
//! where the client is in the run, when it is next due to act, and what it has read.

use std::time::Instant;

use kaichat_proto::client::Client;
use mio::net::TcpStream;

use crate::config::Config;
use crate::ledger::{Member, Reader, Seen};
use crate::schedule::{Periodic, QuerySchedule};
use crate::transport::Transport;

/// The end of a run with messages takes two QUERYs per client, each sent once the
/// client's outstanding one is answered, each waited for from every client before the
/// next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndStep {
    /// Proves that every message the client sent has been processed by the server.
    Fence,
    /// Sent once every client is fenced: reads everything the client is still owed.
    Drain,
}

/// Where a client is in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// TCP connect in progress.
    Connecting,
    /// TLS handshake and protocol set-up (PING … CLIENT_INFO acknowledged).
    SettingUp,
    /// JOIN_CHANNEL sent.
    Joining,
    /// In its channel: querying or PINGing (and sending) on schedule.
    Active,
    /// End of the run: no new QUERY on schedule; the step's QUERY goes out once the
    /// outstanding one is answered (`sent`).
    Ending { step: EndStep, sent: bool },
    /// The step's answer arrived; waiting for every other client's.
    Ended(EndStep),
    /// QUIT sent; waiting for the server to close.
    Quitting,
}

/// One simulated client.
#[derive(Debug)]
pub struct Conn {
    /// Client number (0-based within this process).
    pub id: u32,
    /// Channel number.
    pub channel: u32,
    /// The server it connects to: an index into `Config::servers`.
    pub server: usize,
    pub sock: TcpStream,
    pub transport: Transport,
    pub client: Client,
    pub stage: Stage,
    /// Whether the socket accepted everything last written (edge-triggered: cleared on
    /// `WouldBlock`, set by a writable event).
    pub writable: bool,
    /// When the TCP connect started.
    pub connect_start: Instant,
    /// When the JOIN acknowledgement arrived.
    pub joined: Option<Instant>,
    /// The protocol version it speaks (`Config::version`), checked against the one the
    /// set-up agreed.
    pub version: u16,
    /// Version 1 only: QUERY on schedule.
    pub queries: QuerySchedule,
    pub messages: Periodic,
    /// Version 2 only: keep-alive PING on schedule.
    pub pings: Periodic,
    /// Due time of the PING whose PONG has not arrived.
    pub ping_due: Option<Instant>,
    /// When the outstanding scheduled QUERY was handed to the connection.
    pub query_sent: Instant,
    /// A fence or drain QUERY is outstanding.
    pub extra_query: bool,
    /// Messages sent so far (the next one's sequence number).
    pub msg_seq: u32,
    /// Messages read that this member was owed.
    pub received_owed: u64,
    /// Entries the server said it skipped for this member.
    pub skipped: u64,
    /// Echoes of its own messages read (version 2).
    pub echoes: u64,
    /// The sequence numbers read, per sender: finds duplicates.
    pub seen: Seen,
    /// When this client next needs [`crate::reactor`]'s attention, and the timer entry that
    /// stands for it.
    pub wake_at: Option<Instant>,
    pub wake_gen: u64,
    /// Completed the end of the run (drain, or in its channel at the end without messages)
    /// before QUIT: the ledger judges only such members.
    pub finished: bool,
}

impl Conn {
    /// Client `id` of `cfg` (its channel, server and version as `cfg` assigns them), its
    /// TCP connect started at `now` on `sock`: nothing scheduled, nothing read yet.
    pub fn new(
        cfg: &Config,
        id: u32,
        sock: TcpStream,
        transport: Transport,
        client: Client,
        now: Instant,
    ) -> Conn {
        Conn {
            id,
            channel: id % cfg.channels.max(1),
            server: cfg.server_of(id),
            sock,
            transport,
            client,
            stage: Stage::Connecting,
            writable: false,
            connect_start: now,
            joined: None,
            version: cfg.version(id),
            queries: QuerySchedule::stopped(),
            messages: Periodic::never(),
            pings: Periodic::never(),
            ping_due: None,
            query_sent: now,
            extra_query: false,
            msg_seq: 0,
            received_owed: 0,
            skipped: 0,
            echoes: 0,
            seen: Seen::default(),
            wake_at: None,
            wake_gen: 0,
            finished: false,
        }
    }

    /// Whether the client is still on its way in.
    pub fn setting_up(&self) -> bool {
        matches!(
            self.stage,
            Stage::Connecting | Stage::SettingUp | Stage::Joining
        )
    }

    /// Whether the client is still in its TCP connect or TLS and protocol set-up.
    pub fn handshaking(&self) -> bool {
        matches!(self.stage, Stage::Connecting | Stage::SettingUp)
    }

    /// Whether the client still owes the answer of end step `step`.
    pub fn is_ending(&self, step: EndStep) -> bool {
        matches!(self.stage, Stage::Ending { step: s, .. } if s == step)
    }

    /// The next time anything is due: a QUERY, a message, a PING or a client-side deadline.
    pub fn next_wake(&self, deadline: Option<Instant>) -> Option<Instant> {
        [
            self.queries.next_wake(),
            self.messages.next_wake(),
            self.pings.next_wake(),
            deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// This client as a reader of its channel.
    pub fn reader(&self) -> Reader {
        Reader {
            client: self.id,
            channel: self.channel,
            version: self.version,
            joined: self.joined,
        }
    }

    /// The ledger's view of this client, once the run is over for it.
    pub fn membership(&self) -> Option<Member> {
        self.joined.map(|joined| Member {
            client: self.id,
            channel: self.channel,
            joined,
            finished: self.finished,
            received_owed: self.received_owed,
            skipped: self.skipped,
            version: self.version,
            echoes: self.echoes,
        })
    }
}
