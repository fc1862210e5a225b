//! The reactor's statistics: counters kept as connections come and go, why each one
//! closed, and the one-line summary printed with `--stats-interval` and at shutdown.
//!
//! Counting is a field increment on the loop's thread; formatting happens only when a line
//! is asked for. Nothing here touches a connection.

use std::fmt::Write as _;

use crate::transport::TransportError;
use kaichat_proto::hub::Hub;
use kaichat_proto::session::Ending;

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
}

impl CloseReason {
    pub const ALL: [CloseReason; 8] = [
        CloseReason::Quit,
        CloseReason::VersionRejected,
        CloseReason::PeerClosed,
        CloseReason::Timeout,
        CloseReason::TlsError,
        CloseReason::IoError,
        CloseReason::Overflow,
        CloseReason::Shutdown,
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

/// Counters for the statistics line.
#[derive(Default)]
pub struct Stats {
    pub accepted: u64,
    pub refused_no_fd: u64,
    pub pdus_in: u64,
    closed: [u64; CloseReason::ALL.len()],
}

impl Stats {
    /// Counts a connection that closed for `reason`.
    pub fn closed(&mut self, reason: CloseReason) {
        self.closed[reason as usize] += 1;
    }

    /// One line of counters, for the periodic and the final statistics.
    pub fn line(&self, uptime_secs: u64, clients: usize, hub: &Hub) -> String {
        let mut line = format!(
            "uptime={uptime_secs}s clients={clients} named={} channels={} accepted={} pdus_in={} messages={} closed:",
            hub.users(),
            hub.channels(),
            self.accepted,
            self.pdus_in,
            hub.messages(),
        );
        for reason in CloseReason::ALL {
            let _ = write!(line, " {}={}", reason.name(), self.closed[reason as usize]);
        }
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
fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()? / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_close_reason_is_counted_under_its_own_name() {
        let mut stats = Stats::default();
        stats.closed(CloseReason::Quit);
        stats.closed(CloseReason::VersionRejected);
        stats.closed(CloseReason::VersionRejected);
        let line = stats.line(7, 0, &Hub::new(10, 5));
        assert!(line.starts_with("uptime=7s clients=0 "), "{line}");
        assert!(line.contains(" quit=1 version=2 peer=0 "), "{line}");
        let names: Vec<&str> = CloseReason::ALL.iter().map(|r| r.name()).collect();
        for (i, name) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(name), "{name} twice");
        }
    }
}
