//! The settings of one run, checked: what `args` parses from the command line and the
//! reactor obeys. Parsing helpers for the value formats live here so they can be tested.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use kaichat_proto::pdu::MAX_USERNAME;

/// One run's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The servers to load: one, or the nodes of one network (cluster mode), which
    /// clients are spread over by [`Config::server_of`]. Never empty.
    pub servers: Vec<SocketAddr>,
    /// The name every server's certificate is checked against.
    pub server_name: String,
    /// Simulated clients.
    pub clients: u32,
    /// Channels, `@load0` .. `@load{K-1}`; client i joins channel i mod K.
    pub channels: u32,
    /// QUERY period per client; zero means flat out (next QUERY when the answer is in).
    pub interval: Duration,
    /// Time between the end of the ramp and the start of the steady window: the last
    /// joiners' first QUERY answers carry their channel's replay, which is set-up work.
    pub warmup: Duration,
    /// Length of the steady window, after the ramp and the warm-up.
    pub duration: Duration,
    /// New connections per second; zero means as fast as `max_setup` allows.
    pub ramp: f64,
    /// Most connections in set-up (connect, TLS, set-up, join) at once.
    pub max_setup: u32,
    /// Message period per client in the steady window; zero means no messages.
    pub msg_every: Duration,
    /// Pause between the end of the fence and the drain (`--settle`). With several
    /// servers, a fence answer proves that the sender's server took its messages, not
    /// that the network has handed them to the other servers yet.
    pub settle: Duration,
    /// Source addresses, used round-robin.
    pub sources: Vec<Ipv4Addr>,
    /// CA to trust (TLS runs).
    pub ca: PathBuf,
    /// Speak plaintext (the server must run with `--plaintext`).
    pub plaintext: bool,
    /// Skip certificate and handshake-signature checks (`--no-verify`).
    pub no_verify: bool,
    /// Where to write `summary.json`, the `.hgrm` files and `timeline.csv`.
    pub out: Option<PathBuf>,
    /// Seed of every random choice (phases).
    pub seed: u64,
    /// Usernames are this prefix followed by the client's number.
    pub user_prefix: String,
    /// Number of the first client (to run several loadgen processes side by side).
    pub first_id: u32,
    /// Client-side deadline for each set-up step and for each answer.
    pub timeout: Duration,
    /// No progress lines.
    pub quiet: bool,
    /// Which protocol version each client speaks (`--protocol`, `--v2-share`).
    pub protocol: Protocol,
    /// PING period of a version-2 client in its channel (it does not QUERY, so this keeps
    /// the server's idle deadline away, kaichat-v2 section 2); zero means no PING.
    pub keepalive: Duration,
    /// The server's process, when it runs on this machine: its CPU time is read at the
    /// edges of the connect and steady windows.
    pub server_pid: Option<u32>,
}

/// Which protocol version the clients speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Version 1: members QUERY every `--interval` (kaichat-v1 section 8).
    V1,
    /// Version 2: members are pushed every entry, receive their own messages back (the
    /// echo) and PING every `--keepalive` (kaichat-v2 sections 2 and 2a).
    V2,
    /// Both in the same channels: `v2_percent` % of each channel's members speak
    /// version 2, the others version 1, interleaved in joining order.
    Mixed { v2_percent: u8 },
}

impl Protocol {
    /// The `--protocol` value that names it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V1 => "1",
            Protocol::V2 => "2",
            Protocol::Mixed { .. } => "mixed",
        }
    }

    /// Percent of the clients that speak version 2.
    pub fn v2_percent(self) -> u8 {
        match self {
            Protocol::V1 => 0,
            Protocol::V2 => 100,
            Protocol::Mixed { v2_percent } => v2_percent,
        }
    }
}

/// Parses `--protocol`: `1`, `2` or `mixed` (the share of version 2 is `--v2-share`).
pub fn parse_protocol(text: &str) -> Result<Protocol, String> {
    match text.trim() {
        "1" => Ok(Protocol::V1),
        "2" => Ok(Protocol::V2),
        "mixed" => Ok(Protocol::Mixed { v2_percent: 50 }),
        _ => Err(format!("'{text}' is not 1, 2 or mixed")),
    }
}

/// Parses `--v2-share`: a whole percentage from 1 to 99 (0 and 100 are `--protocol 1`
/// and `--protocol 2`).
pub fn parse_share(text: &str) -> Result<u8, String> {
    match text.trim().trim_end_matches('%').parse::<u8>() {
        Ok(p) if (1..=99).contains(&p) => Ok(p),
        _ => Err(format!("'{text}' is not a percentage from 1 to 99")),
    }
}

impl Config {
    /// The protocol version client `i` speaks. Client `i` is member `i / K` of channel
    /// `i mod K` (in joining order); with [`Protocol::Mixed`], member `j` speaks version 2
    /// when `floor((j+1)·p/100) > floor(j·p/100)`, which spreads the two versions evenly
    /// through every channel (at 50 %: v1, v2, v1, v2, …) whatever K is. A split on `i`
    /// alone would not: with an even K, odd clients all land in odd channels.
    pub fn version(&self, i: u32) -> u16 {
        let p = u64::from(self.protocol.v2_percent());
        let j = u64::from(i / self.channels.max(1));
        if (j + 1) * p / 100 > j * p / 100 {
            2
        } else {
            1
        }
    }

    /// How many clients speak version 1 and version 2.
    pub fn clients_by_version(&self) -> [u32; 2] {
        let v2 = (0..self.clients).filter(|&i| self.version(i) == 2).count() as u32;
        [self.clients - v2, v2]
    }

    /// The username of client `i`.
    pub fn username(&self, i: u32) -> String {
        format!("{}{}", self.user_prefix, self.first_id + i)
    }

    /// The client of this process whose username `name` is (the inverse of
    /// [`Config::username`]); `None` for any other name, another process's included.
    pub fn client_of(&self, name: &[u8]) -> Option<u32> {
        let digits = name.strip_prefix(self.user_prefix.as_bytes())?;
        // `username` writes no sign and no leading zero.
        if digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
            return None;
        }
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let number: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        let i = number.checked_sub(self.first_id)?;
        (i < self.clients).then_some(i)
    }

    /// The index in [`Config::servers`] of the server client `i` connects to. Client `i`
    /// is member `j = i / K` of channel `c = i mod K`; it goes to server `(c + j) mod S`.
    /// So a channel's members go round robin over the servers in joining order (two
    /// consecutive members of a channel are never on the same server when S > 1), and so
    /// do the clients of one round of channels (`i` and `i + 1` of the same `j`), so that
    /// the ramp loads every server at once. A split on `i` alone would not do: with K a
    /// multiple of S, a whole channel would land on one server.
    pub fn server_of(&self, i: u32) -> usize {
        let k = self.channels.max(1);
        let s = self.servers.len().max(1) as u64;
        ((u64::from(i % k) + u64::from(i / k)) % s) as usize
    }

    /// [`Config::servers`] as `--server` takes them: the addresses, comma-separated.
    pub fn servers_text(&self) -> String {
        let addrs: Vec<String> = self.servers.iter().map(ToString::to_string).collect();
        addrs.join(",")
    }

    /// How many clients each server gets (index as in [`Config::servers`]).
    pub fn clients_by_server(&self) -> Vec<u32> {
        let mut counts = vec![0; self.servers.len()];
        for i in 0..self.clients {
            if let Some(n) = counts.get_mut(self.server_of(i)) {
                *n += 1;
            }
        }
        counts
    }

    /// Members of the fullest channel: `ceil(clients / channels)`.
    pub fn channel_size(&self) -> u32 {
        self.clients.div_ceil(self.channels.max(1))
    }

    /// The channel client `i` joins.
    pub fn channel(&self, i: u32) -> String {
        format!("@load{}", i % self.channels.max(1))
    }

    /// Checks what parsing alone cannot; the error is one line for the user.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if self.channels == 0 {
            return Err("--channels must be at least 1".into());
        }
        if self.servers.is_empty() {
            return Err("--server names no server".into());
        }
        if self.sources.is_empty() {
            return Err("--sources is empty".into());
        }
        let longest = self.username(self.clients - 1);
        if kaichat_proto::names::Username::new(longest.as_bytes()).is_err() {
            return Err(format!(
                "usernames like {longest:?} are not valid: a username is 1-{MAX_USERNAME} \
                 printable bytes (shorten --user-prefix or --first-id)"
            ));
        }
        if kaichat_proto::names::ChannelName::new(self.channel(self.channels - 1).as_bytes())
            .is_err()
        {
            return Err("--channels is too large".into());
        }
        if self.max_setup == 0 {
            return Err("--max-setup must be at least 1".into());
        }
        Ok(())
    }
}

/// Parses seconds, fractions allowed (`3`, `0.5`, `0`); refuses negatives and non-numbers.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("'{text}' is not a number of seconds"));
    }
    if secs > 1e7 {
        return Err(format!("'{text}' seconds is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a rate per second (`2000`, `0` = unlimited).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number per second"))?;
    if !rate.is_finite() || rate < 0.0 {
        return Err(format!("'{text}' is not a number per second"));
    }
    Ok(rate)
}

#[cfg(test)]
impl Config {
    /// A small valid run, for tests.
    pub fn example() -> Config {
        Config {
            servers: vec!["127.0.0.1:29200".parse().unwrap()],
            server_name: "localhost".into(),
            clients: 100,
            channels: 7,
            interval: Duration::from_secs(3),
            warmup: Duration::ZERO,
            duration: Duration::from_secs(10),
            ramp: 1000.0,
            max_setup: 100,
            msg_every: Duration::ZERO,
            settle: Duration::ZERO,
            sources: vec![Ipv4Addr::LOCALHOST],
            ca: "certs/ca.pem".into(),
            plaintext: false,
            no_verify: false,
            out: None,
            seed: 1,
            user_prefix: "lg".into(),
            first_id: 0,
            timeout: Duration::from_secs(30),
            quiet: true,
            server_pid: None,
            protocol: Protocol::V1,
            keepalive: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests;
