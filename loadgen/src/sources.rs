//! Source addresses for outgoing connections (`--sources`).
//!
//! A TCP client bound to one source address gets at most one ephemeral port per
//! connection from the kernel's range (about 28,000 ports here), so a run with more
//! connections than that binds its sockets to several loopback addresses in turn. This
//! module only parses the list and answers how many connections it can hold; it never opens
//! a socket.

use std::fmt;
use std::net::Ipv4Addr;

/// The most addresses a `--sources` list may expand to (a typo like `127.0.0.1-127.1.0.1`
/// should be an error, not a million-entry list).
pub const MAX_SOURCES: usize = 4096;

/// Why a `--sources` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesError(pub String);

impl fmt::Display for SourcesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourcesError {}

fn addr(text: &str) -> Result<Ipv4Addr, SourcesError> {
    text.trim()
        .parse()
        .map_err(|_| SourcesError(format!("not an IPv4 address: {text:?}")))
}

/// Parses a comma-separated list of IPv4 addresses and inclusive ranges
/// (`127.0.0.1-127.0.0.40`, `127.0.0.1,127.0.0.5-127.0.0.6`). Order is kept; duplicates
/// are refused, since two entries for one address would not add ports.
pub fn parse_sources(text: &str) -> Result<Vec<Ipv4Addr>, SourcesError> {
    let mut out: Vec<Ipv4Addr> = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(SourcesError(format!("empty entry in source list {text:?}")));
        }
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (addr(a)?, addr(b)?),
            None => {
                let a = addr(part)?;
                (a, a)
            }
        };
        let (lo, hi) = (u32::from(first), u32::from(last));
        if lo > hi {
            return Err(SourcesError(format!(
                "source range {part:?} runs backwards"
            )));
        }
        if (hi - lo) as usize >= MAX_SOURCES || out.len() + (hi - lo) as usize >= MAX_SOURCES {
            return Err(SourcesError(format!(
                "source list {text:?} has more than {MAX_SOURCES} addresses"
            )));
        }
        for n in lo..=hi {
            let a = Ipv4Addr::from(n);
            if out.contains(&a) {
                return Err(SourcesError(format!("source address {a} listed twice")));
            }
            out.push(a);
        }
    }
    Ok(out)
}

/// The ephemeral port range of this machine (`/proc/sys/net/ipv4/ip_local_port_range`),
/// as a count of ports; 28,232 (the Linux default) when it cannot be read.
pub fn ephemeral_ports() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or(61000 - 32768)
}

/// Parses the two numbers of `ip_local_port_range` into a count of ports.
pub fn parse_port_range(text: &str) -> Option<u32> {
    let mut it = text.split_whitespace().map(|n| n.parse::<u32>());
    let lo = it.next()?.ok()?;
    let hi = it.next()?.ok()?;
    (hi >= lo).then(|| hi - lo + 1)
}

#[cfg(test)]
mod tests;
