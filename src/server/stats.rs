//! The reactor's statistics: counters kept as connections come and go, why each one
//! closed, PDUs and bytes in and out, the QUERY answer latency, and the one-line summary
//! logged with `--stats-interval` and at shutdown. The metrics endpoint (`exposition.rs`)
//! reads the same counters.
//!
//! Counting is a field increment on the loop's thread, with no allocation; formatting
//! happens only when a line or a scrape asks for it. Nothing here touches a connection.

use std::fmt::Write as _;

use crate::transport::TransportError;
use kaichat_proto::hub::Hub;
use kaichat_proto::pdu::{Command, Decoded, Pdu};
use kaichat_proto::session::Ending;

/// The label of each slot of a by-command count: the fifteen commands of versions 1 and 2
/// by code, in the contracts' names, then what is no command.
pub const COMMANDS: [&str; 16] = [
    "QUIT",
    "VERSION_NEGOTIATION",
    "CLIENT_INFO",
    "JOIN_CHANNEL",
    "SEND_MESSAGE",
    "RECEIVE_MESSAGE",
    "LEAVE_CHANNEL",
    "PING_PONG",
    "QUERY",
    "LIST_CHANNELS",
    "NAMES",
    "KICK",
    "BAN",
    "UNBAN",
    "OPER",
    "unknown",
];

/// The slot of `command` (None: unknown) in a by-command count.
fn command_slot(command: Option<Command>) -> usize {
    command.map_or(COMMANDS.len() - 1, |c| c.code() as usize)
}

/// Which deadline of a connection passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlineKind {
    /// A set-up phase took longer than `--handshake-timeout`.
    Handshake,
    /// An established client was silent longer than `--idle-timeout`.
    Idle,
    /// A closing connection did not finish saying goodbye within its bound.
    Linger,
}

impl DeadlineKind {
    pub const ALL: [DeadlineKind; 3] = [
        DeadlineKind::Handshake,
        DeadlineKind::Idle,
        DeadlineKind::Linger,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DeadlineKind::Handshake => "handshake",
            DeadlineKind::Idle => "idle",
            DeadlineKind::Linger => "linger",
        }
    }
}

/// Upper bounds of the QUERY answer latency buckets, in microseconds: 50 µs to 1 s. An
/// answer from memory to loopback takes tens of microseconds; one that backs up behind a
/// slow reader takes as long as the reader does.
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// A histogram of QUERY answer latencies: a count per bucket (the last one for above
/// 1 s), their sum and their number. Observing is a few comparisons and three increments.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    /// Answers per bucket, not cumulative; `buckets[i]` took at most
    /// `LATENCY_BOUNDS_US[i]` and more than the bound before it.
    pub buckets: [u64; LATENCY_BOUNDS_US.len() + 1],
    pub sum_us: u64,
    pub count: u64,
}

impl Latency {
    pub fn observe(&mut self, micros: u64) {
        let bucket = LATENCY_BOUNDS_US.partition_point(|&bound| bound < micros);
        self.buckets[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(micros);
        self.count += 1;
    }
}

/// Why a connection closed; each is counted under its own name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent QUIT.
    Quit,
    /// The client asked for a protocol version this server does not speak.
    VersionRejected,
    PeerClosed,
    Timeout,
    TlsError,
    IoError,
    Overflow,
    Shutdown,
    /// A server operator banned the client's address (v2 section 5).
    Banned,
    /// Cluster mode: this server was cut off from Redis for longer than its lease, and
    /// another server's client took the name meanwhile.
    NameLost,
}

impl CloseReason {
    pub const ALL: [CloseReason; 10] = [
        CloseReason::Quit,
        CloseReason::VersionRejected,
        CloseReason::PeerClosed,
        CloseReason::Timeout,
        CloseReason::TlsError,
        CloseReason::IoError,
        CloseReason::Overflow,
        CloseReason::Shutdown,
        CloseReason::Banned,
        CloseReason::NameLost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CloseReason::Quit => "quit",
            CloseReason::VersionRejected => "version",
            CloseReason::PeerClosed => "peer",
            CloseReason::Timeout => "timeout",
            CloseReason::TlsError => "tls",
            CloseReason::IoError => "io",
            CloseReason::Overflow => "overflow",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Banned => "banned",
            CloseReason::NameLost => "name_lost",
        }
    }
}

impl From<TransportError> for CloseReason {
    fn from(e: TransportError) -> CloseReason {
        match e {
            TransportError::Io(_) => CloseReason::IoError,
            TransportError::Tls(_) => CloseReason::TlsError,
        }
    }
}

impl From<Ending> for CloseReason {
    fn from(ending: Ending) -> CloseReason {
        match ending {
            Ending::Quit => CloseReason::Quit,
            Ending::VersionRejected => CloseReason::VersionRejected,
        }
    }
}

/// Counters for the statistics line and the metrics endpoint.
#[derive(Default)]
pub struct Stats {
    pub accepted: u64,
    /// Times accepting paused because the process ran out of file descriptors.
    pub refused_no_fd: u64,
    /// Connections closed at accept: their address held `--max-per-address` already.
    pub refused_max_per_address: u64,
    /// Connections closed at accept: their address opened them faster than `--accept-rate`.
    pub refused_accept_rate: u64,
    /// Connections closed at accept: their address is under a server ban (v2 section 5).
    pub refused_banned: u64,
    /// Times accepting paused because `--max-clients` connections were open.
    pub paused_max_clients: u64,
    /// Connections whose set-up completed (a name was accepted).
    pub setups: u64,
    /// TLS ciphertext (plaintext with `--plaintext`) read from and written to client
    /// sockets, the handshakes included.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Times a connection stopped reading because its unwritten output was above the bound.
    pub output_pauses: u64,
    /// From the QUERY taken off the connection to the answer's last byte written.
    pub query_latency: Latency,
    pdus_in: [u64; COMMANDS.len()],
    pdus_out: [u64; COMMANDS.len()],
    expired: [u64; DeadlineKind::ALL.len()],
    closed: [u64; CloseReason::ALL.len()],
}

impl Stats {
    /// Counts a connection that closed for `reason`.
    pub fn closed(&mut self, reason: CloseReason) {
        self.closed[reason as usize] += 1;
    }

    /// Connections closed for `reason` so far.
    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.closed[reason as usize]
    }

    /// Counts a PDU received, by the command its session reads in it.
    pub fn pdu_received(&mut self, command: Option<Command>) {
        self.pdus_in[command_slot(command)] += 1;
    }

    /// Counts a PDU sent. The server writes only known commands, in the client's order.
    pub fn pdu_sent(&mut self, pdu: &Pdu) {
        let command = match pdu.decode_command(None) {
            Decoded::Known { command, .. } => Some(command),
            Decoded::Unknown(_) => None,
        };
        self.pdus_out[command_slot(command)] += 1;
    }

    /// PDUs received, by slot of [`COMMANDS`].
    pub fn pdus_received(&self) -> &[u64; COMMANDS.len()] {
        &self.pdus_in
    }

    /// PDUs sent, by slot of [`COMMANDS`].
    pub fn pdus_sent(&self) -> &[u64; COMMANDS.len()] {
        &self.pdus_out
    }

    /// Counts a deadline that passed.
    pub fn expired(&mut self, kind: DeadlineKind) {
        self.expired[kind as usize] += 1;
    }

    /// Deadlines of `kind` that passed so far.
    pub fn expiries(&self, kind: DeadlineKind) -> u64 {
        self.expired[kind as usize]
    }

    /// One line of counters, for the periodic and the final statistics.
    pub fn line(&self, uptime_secs: u64, clients: usize, hub: &Hub) -> String {
        let mut line = format!(
            "uptime={uptime_secs}s clients={clients} named={} channels={} accepted={} pdus_in={} messages={} closed:",
            hub.users(),
            hub.channels(),
            self.accepted,
            self.pdus_in.iter().sum::<u64>(),
            hub.messages(),
        );
        for reason in CloseReason::ALL {
            let _ = write!(line, " {}={}", reason.name(), self.closed[reason as usize]);
        }
        let _ = write!(
            line,
            " refused_max_per_address={} refused_accept_rate={} refused_banned={}",
            self.refused_max_per_address, self.refused_accept_rate, self.refused_banned
        );
        if self.refused_no_fd > 0 {
            let _ = write!(line, " refused_no_fd={}", self.refused_no_fd);
        }
        if let Some(kib) = rss_kib() {
            let _ = write!(line, " rss_kib={kib}");
        }
        line
    }
}

/// The process's resident set size, from /proc (Linux).
pub fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()? / 1024)
}

#[cfg(test)]
mod tests;
