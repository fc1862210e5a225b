//! Admission per client address: how many connections one address may hold at once
//! (`--max-per-address`) and how fast it may open new ones (`--accept-rate`, a token bucket
//! of `--accept-burst` tokens). The reactor asks right after `accept`, before any TLS work:
//! a refused connection costs the server an accept and a close, nothing more.
//!
//! Sans-IO: addresses and milliseconds in, verdicts out. It never touches a socket.
//!
//! An address is its IP alone; an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a
//! dual-stack listener reports for IPv4 clients) is the IPv4 address. Loopback addresses
//! are exempt unless `limit_loopback` is set.
//!
//! **The map stays bounded.** An address has an entry only while it holds a connection or
//! its bucket is refilling; [`Admission::sweep`], once a second, drops the others, so under
//! normal traffic the map holds the addresses connected now plus those that connected in
//! the last `burst / rate` seconds (2 s by default). Under a flood from many addresses
//! (each admitted once, then gone) that could still grow with the flood's rate, so the map
//! also has a hard size: at [`Admission::new`]'s `max_entries`, a new address first makes
//! room by dropping every entry without a connection. Those addresses only lose the
//! record of their recent rate, never their count of connections, which is bounded by
//! `--max-clients`. The map therefore never holds more than `max_entries` addresses (about
//! 70 bytes each), and the drop costs O(entries) once per `max_entries − connections` new
//! addresses.
//!
//! The entries live in a slab, found by address through a hash map (SipHash with a random
//! key, so that a client choosing its addresses cannot make the map degrade), and a
//! connection holds its entry's slab key: 4 bytes in `Connection` rather than a 16-byte
//! address, and no hashing when it closes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use slab::Slab;

/// Connections one address may hold unless configured.
pub const DEFAULT_MAX_PER_ADDRESS: u32 = 64;
/// New connections per second per address unless configured.
pub const DEFAULT_ACCEPT_RATE: u32 = 20;
/// The largest rate or burst accepted: a million connections a second is no limit in
/// practice, and a bucket of that many thousandths of a token still fits in a `u32`.
pub const MAX_RATE: u32 = 1_000_000;

/// Thousandths of a token per token: a bucket refills `rate` of them per millisecond.
const MILLI: u32 = 1000;

/// The limits per client address, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressLimits {
    /// Connections one address may hold at once (queued, served or closing); 0 = no limit.
    pub max_per_address: u32,
    /// New connections per second per address: the bucket's refill rate; 0 = no limit.
    pub accept_rate: u32,
    /// The bucket's size: new connections an address may open at once, at least 1.
    pub accept_burst: u32,
    /// Whether loopback addresses are limited too; they are exempt by default.
    pub limit_loopback: bool,
}

impl AddressLimits {
    /// No limit at all.
    pub const OFF: AddressLimits = AddressLimits {
        max_per_address: 0,
        accept_rate: 0,
        accept_burst: 1,
        limit_loopback: false,
    };
}

impl Default for AddressLimits {
    fn default() -> AddressLimits {
        AddressLimits {
            max_per_address: DEFAULT_MAX_PER_ADDRESS,
            accept_rate: DEFAULT_ACCEPT_RATE,
            accept_burst: 2 * DEFAULT_ACCEPT_RATE,
            limit_loopback: false,
        }
    }
}

/// Why a connection was refused; each is counted under its own name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The address already holds `max_per_address` connections.
    MaxPerAddress,
    /// The address's bucket is empty: it opens connections faster than `accept_rate`.
    AcceptRate,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::MaxPerAddress => "its address holds --max-per-address connections",
            Refusal::AcceptRate => "its address opens connections faster than --accept-rate",
        })
    }
}

/// An admitted connection's place in its address's count, given back to
/// [`Admission::release`] when the connection's slot is freed: the slab key of its
/// address's entry, plus one (the niche makes `Option<Claim>` 4 bytes). An entry with a
/// connection is never removed, so the key stays its address's while a claim is out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim(NonZeroU32);

impl Claim {
    fn key(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// What is known of one address.
#[derive(Debug)]
struct Peer {
    address: Ipv6Addr,
    /// Connections admitted and not yet released.
    connections: u32,
    /// Tokens in the bucket, in thousandths, as of `filled_at`.
    milli_tokens: u32,
    /// The millisecond up to which the bucket has been refilled.
    filled_at: u64,
}

/// The admission state: one entry per address that holds a connection or whose bucket is
/// refilling.
pub struct Admission {
    limits: AddressLimits,
    peers: Slab<Peer>,
    /// The slab key of each address's entry.
    keys: HashMap<Ipv6Addr, usize>,
    max_entries: usize,
}

impl Admission {
    /// Admission under `limits`, remembering at most `max_entries` addresses (at least the
    /// connections the server may hold, else the count of one could be forgotten: the
    /// server uses twice its `--max-clients`).
    pub fn new(limits: AddressLimits, max_entries: usize) -> Admission {
        Admission {
            limits: AddressLimits {
                accept_rate: limits.accept_rate.min(MAX_RATE),
                accept_burst: limits.accept_burst.clamp(1, MAX_RATE),
                ..limits
            },
            peers: Slab::new(),
            keys: HashMap::new(),
            // A claim is a u32 slab key plus one.
            max_entries: max_entries.clamp(1, u32::MAX as usize - 1),
        }
    }

    /// Decides on a connection from `ip` accepted at `now` (ms). `Ok(Some(claim))`: admitted
    /// and counted, give the claim back on release; `Ok(None)`: admitted, not subject to
    /// the limits (no limit on, or a loopback address).
    pub fn admit(&mut self, ip: IpAddr, now: u64) -> Result<Option<Claim>, Refusal> {
        let limits = self.limits;
        if limits.max_per_address == 0 && limits.accept_rate == 0 {
            return Ok(None);
        }
        if !limits.limit_loopback && ip.to_canonical().is_loopback() {
            return Ok(None);
        }
        let address = canonical(ip);
        let key = match self.keys.get(&address) {
            Some(&key) => key,
            None => {
                if self.peers.len() >= self.max_entries {
                    // The hard size: forget the rates of the addresses that hold no
                    // connection.
                    self.forget_where(|peer| peer.connections == 0);
                }
                let key = self.peers.insert(Peer {
                    address,
                    connections: 0,
                    milli_tokens: limits.accept_burst * MILLI,
                    filled_at: now,
                });
                self.keys.insert(address, key);
                key
            }
        };
        let peer = &mut self.peers[key];
        if limits.max_per_address > 0 && peer.connections >= limits.max_per_address {
            return Err(Refusal::MaxPerAddress);
        }
        if limits.accept_rate > 0 {
            peer.refill(&limits, now);
            if peer.milli_tokens < MILLI {
                return Err(Refusal::AcceptRate);
            }
            peer.milli_tokens -= MILLI;
        }
        peer.connections += 1;
        let claim = u32::try_from(key + 1).ok().and_then(NonZeroU32::new);
        Ok(Some(Claim(
            claim.expect("max_entries keeps keys below u32::MAX"),
        )))
    }

    /// A connection admitted with `claim` is gone (its slot freed) at `now`. The address's
    /// entry goes with its last connection if its bucket is full again.
    pub fn release(&mut self, claim: Claim, now: u64) {
        let limits = self.limits;
        let Some(peer) = self.peers.get_mut(claim.key()) else {
            return;
        };
        peer.connections = peer.connections.saturating_sub(1);
        if peer.forgettable(&limits, now) {
            let peer = self.peers.remove(claim.key());
            self.keys.remove(&peer.address);
        }
    }

    /// Drops the entries of addresses with no connection and a full bucket, and shrinks
    /// the map once it is mostly empty, so that a flood's entries do not keep its room.
    /// For once a second: O(entries).
    pub fn sweep(&mut self, now: u64) {
        let limits = self.limits;
        self.forget_where(|peer| peer.forgettable(&limits, now));
        if self.keys.capacity() > 64 && self.keys.len() < self.keys.capacity() / 4 {
            self.keys.shrink_to(self.keys.len() * 2);
            // Only the vacant keys above the highest entry in use can go: claims are keys.
            self.peers.shrink_to_fit();
        }
    }

    /// Removes the entries `forget` says to (never one with a connection: its claims are
    /// its key).
    fn forget_where(&mut self, mut forget: impl FnMut(&mut Peer) -> bool) {
        let keys = &mut self.keys;
        self.peers.retain(|_, peer| {
            if peer.connections == 0 && forget(peer) {
                keys.remove(&peer.address);
                return false;
            }
            true
        });
    }

    /// Addresses remembered now.
    #[cfg(test)]
    pub fn addresses(&self) -> usize {
        self.peers.len()
    }
}

impl Peer {
    /// Adds the tokens earned since `filled_at`, up to the bucket's size.
    fn refill(&mut self, limits: &AddressLimits, now: u64) {
        let earned = now
            .saturating_sub(self.filled_at)
            .saturating_mul(u64::from(limits.accept_rate));
        let full = limits.accept_burst * MILLI;
        self.milli_tokens = u64::from(self.milli_tokens)
            .saturating_add(earned)
            .min(u64::from(full)) as u32;
        self.filled_at = self.filled_at.max(now);
    }

    /// Whether nothing would be lost by forgetting the address at `now`: it holds no
    /// connection and a new entry (a full bucket) would be the same.
    fn forgettable(&mut self, limits: &AddressLimits, now: u64) -> bool {
        if self.connections > 0 {
            return false;
        }
        if limits.accept_rate == 0 {
            return true;
        }
        self.refill(limits, now);
        self.milli_tokens >= limits.accept_burst * MILLI
    }
}

/// The key of an address: IPv4 as its IPv4-mapped IPv6 form, so that the same client seen
/// by an IPv4 and a dual-stack listener is one address.
fn canonical(ip: IpAddr) -> Ipv6Addr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests;
