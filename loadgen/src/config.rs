//! The settings of one run, checked: what `args` parses from the command line and the
//! reactor obeys. Parsing helpers for the value formats live here so they can be tested.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use kaichat_proto::pdu::MAX_USERNAME;

/// One run's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server to load.
    pub server: SocketAddr,
    /// The name the server's certificate is checked against.
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
    /// The server's process, when it runs on this machine: its CPU time is read at the
    /// edges of the connect and steady windows.
    pub server_pid: Option<u32>,
}

impl Config {
    /// The username of client `i`.
    pub fn username(&self, i: u32) -> String {
        format!("{}{}", self.user_prefix, self.first_id + i)
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
            server: "127.0.0.1:29200".parse().unwrap(),
            server_name: "localhost".into(),
            clients: 100,
            channels: 7,
            interval: Duration::from_secs(3),
            warmup: Duration::ZERO,
            duration: Duration::from_secs(10),
            ramp: 1000.0,
            max_setup: 100,
            msg_every: Duration::ZERO,
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
        }
    }
}

#[cfg(test)]
mod tests;
