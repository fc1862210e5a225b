//! What the operator asked for: one list of settings, each both a command-line flag
//! (`--history 50`) and a key of the TOML configuration file (`history = 50`), with the
//! same name, the same values and the same checks. Built-in defaults, then the file, then
//! the flags. It never opens a socket or a certificate: binding and loading are the
//! caller's, so `--print-config` works on a machine that cannot read the key.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use kaichat::cluster::url::RedisUrl;
use kaichat::cluster::{DEFAULT_LEASE_MS, MIN_LEASE_MS};
use kaichat::fd_limit::RESERVED_FDS;
use kaichat::server::{AddressLimits, DEFAULT_ACCEPT_RATE, DEFAULT_MAX_PER_ADDRESS, MAX_RATE};
use kaichat::server::{DEFAULT_HISTORY, DEFAULT_REPLAY, METRICS_CONNECTIONS, METRICS_TIMEOUT_MS};
use kaichat::store::SyncPolicy;
use kaichat::tls;
use kaichat_proto::hub::Rules;
use kaichat_proto::session::Deadlines;
use log::LevelFilter;
use toml::de::{DeTable, DeValue};

pub use kaichat::DEFAULT_PORT;

/// The longest deadline or interval accepted, a year. Longer means "never" in practice, which
/// 0 says; and the session adds a deadline to its clock in u64 seconds, so a value near
/// u64::MAX wrapped (closing every client at once) or panicked in a debug build.
pub const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;
/// Where the help text of a flag starts.
const HELP_COLUMN: usize = 28;

/// Every setting, a flag and a file key at once. A new one added here makes the compiler
/// ask for its name, help text and place in [`Settings`] (and, until it is in
/// [`Setting::ALL`], clippy's `-D warnings` for a variant never constructed), so a flag
/// cannot lack its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    Listen,
    Cert,
    Key,
    HandshakeTimeout,
    IdleTimeout,
    History,
    Replay,
    MaxClients,
    Plaintext,
    StatsInterval,
    MetricsListen,
    Log,
    Store,
    Sync,
    MaxPerAddress,
    AcceptRate,
    AcceptBurst,
    LimitLoopback,
    MaxVersion,
    OperPasswordFile,
    RateLimit,
    RateBurst,
    Redis,
    NodeId,
    LeaseMs,
}

/// What a setting's value is, with the words its errors use.
enum Kind {
    /// `HOST:PORT`, `[IPv6]:PORT` or `:PORT`.
    Address,
    /// A file name; says which file ("a PEM certificate file").
    File(&'static str),
    /// Whole seconds, at most [`MAX_SECONDS`]; 0 turns the thing off.
    Seconds,
    /// A count of something ("a number of entries"), at least `min`.
    Count { what: &'static str, min: usize },
    /// On or off: a flag without a value, `true` or `false` in the file.
    Switch,
    /// A log level: error, warn, info or debug.
    Level,
    /// A durability policy: `always`, `batch` or `off`.
    Sync,
    /// A protocol version this server speaks: 1 or 2.
    Version,
    /// Text that `check` accepts (its error says why not).
    Text {
        what: &'static str,
        check: fn(&str) -> Result<(), String>,
    },
}

impl Setting {
    /// In the order of `--help` and `--print-config`.
    pub const ALL: [Setting; 25] = [
        Setting::Listen,
        Setting::Cert,
        Setting::Key,
        Setting::HandshakeTimeout,
        Setting::IdleTimeout,
        Setting::History,
        Setting::Replay,
        Setting::MaxClients,
        Setting::Plaintext,
        Setting::StatsInterval,
        Setting::MetricsListen,
        Setting::Log,
        Setting::Store,
        Setting::Sync,
        Setting::MaxPerAddress,
        Setting::AcceptRate,
        Setting::AcceptBurst,
        Setting::LimitLoopback,
        Setting::MaxVersion,
        Setting::OperPasswordFile,
        Setting::RateLimit,
        Setting::RateBurst,
        Setting::Redis,
        Setting::NodeId,
        Setting::LeaseMs,
    ];

    /// The flag, and without its dashes the file's key; with what its value looks like in
    /// `--help`.
    fn spec(self) -> (&'static str, &'static str, Kind) {
        match self {
            Setting::Listen => ("--listen", "HOST:PORT", Kind::Address),
            Setting::Cert => ("--cert", "PEM", Kind::File("a PEM certificate file")),
            Setting::Key => ("--key", "PEM", Kind::File("a PEM private key file")),
            Setting::HandshakeTimeout => ("--handshake-timeout", "SECS", Kind::Seconds),
            Setting::IdleTimeout => ("--idle-timeout", "SECS", Kind::Seconds),
            Setting::History => (
                "--history",
                "N",
                Kind::Count {
                    what: "a number of entries",
                    min: 1,
                },
            ),
            Setting::Replay => (
                "--replay",
                "N",
                Kind::Count {
                    what: "a number of entries",
                    min: 0,
                },
            ),
            Setting::MaxClients => (
                "--max-clients",
                "N",
                Kind::Count {
                    what: "a number of clients",
                    min: 1,
                },
            ),
            Setting::Plaintext => ("--plaintext", "", Kind::Switch),
            Setting::StatsInterval => ("--stats-interval", "SECS", Kind::Seconds),
            Setting::MetricsListen => ("--metrics-listen", "HOST:PORT", Kind::Address),
            Setting::Log => ("--log", "LEVEL", Kind::Level),
            Setting::Store => ("--store", "PATH", Kind::File("an SQLite database file")),
            Setting::Sync => ("--sync", "POLICY", Kind::Sync),
            Setting::MaxPerAddress => (
                "--max-per-address",
                "N",
                Kind::Count {
                    what: "a number of connections",
                    min: 0,
                },
            ),
            Setting::AcceptRate => (
                "--accept-rate",
                "N",
                Kind::Count {
                    what: "a number of connections per second",
                    min: 0,
                },
            ),
            Setting::AcceptBurst => (
                "--accept-burst",
                "N",
                Kind::Count {
                    what: "a number of connections",
                    min: 1,
                },
            ),
            Setting::LimitLoopback => ("--limit-loopback", "", Kind::Switch),
            Setting::MaxVersion => ("--max-version", "N", Kind::Version),
            Setting::OperPasswordFile => (
                "--oper-password-file",
                "PATH",
                Kind::File("a file holding an argon2id PHC string"),
            ),
            Setting::RateLimit => (
                "--rate-limit",
                "MSGS_PER_SEC",
                Kind::Count {
                    what: "a number of messages per second",
                    min: 0,
                },
            ),
            Setting::RateBurst => (
                "--rate-burst",
                "N",
                Kind::Count {
                    what: "a number of messages",
                    min: 1,
                },
            ),
            Setting::Redis => (
                "--redis",
                "URL",
                Kind::Text {
                    what: "a Redis URL (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB])",
                    check: |text| RedisUrl::parse(text).map(|_| ()).map_err(|e| e.to_string()),
                },
            ),
            Setting::NodeId => (
                "--node-id",
                "NAME",
                Kind::Text {
                    what: "a node name (1 to 64 printable ASCII characters, no spaces)",
                    check: check_node_id,
                },
            ),
            Setting::LeaseMs => (
                "--lease-ms",
                "MS",
                Kind::Count {
                    what: "a number of milliseconds",
                    min: MIN_LEASE_MS as usize,
                },
            ),
        }
    }

    /// The description in `--help`, with the default the server uses.
    fn help(self) -> String {
        let deadlines = Deadlines::default();
        match self {
            Setting::Listen => format!(
                "address to listen on; a host name listens on its first address\n\
                 that binds, :PORT on all interfaces\n\
                 [default: all interfaces, port {DEFAULT_PORT}]"
            ),
            Setting::Cert => format!("certificate chain, leaf first [default: {}]", tls::DEV_CERT),
            Setting::Key => format!("private key of the certificate [default: {}]", tls::DEV_KEY),
            Setting::HandshakeTimeout => format!(
                "deadline of each set-up phase: accept to PING, PONG to\n\
                 version, version to accepted name [default: {}; 0 = off]",
                deadlines.handshake
            ),
            Setting::IdleTimeout => format!(
                "close established clients silent this long [default: {}; 0 = off]",
                deadlines.idle
            ),
            Setting::History => {
                format!("entries retained per channel [default: {DEFAULT_HISTORY}; at least 1]")
            }
            Setting::Replay => format!(
                "last entries shown to a client joining a channel [default: {DEFAULT_REPLAY}]"
            ),
            Setting::MaxClients => format!(
                "connections served at once; more wait in the listen backlog\n\
                 [default: the open-file limit minus {RESERVED_FDS}]"
            ),
            Setting::Plaintext => "no TLS, for debugging and benchmarks only".to_string(),
            Setting::StatsInterval => {
                "log a statistics line this often [default: 0 = off]".to_string()
            }
            Setting::MetricsListen => format!(
                "serve Prometheus metrics over plain HTTP at\n\
                 http://HOST:PORT/metrics, from the server's own thread\n\
                 [default: off]; keep it on a private address; at most\n\
                 {METRICS_CONNECTIONS} connections at once, each closed after {} s",
                METRICS_TIMEOUT_MS / 1000
            ),
            Setting::Log => "log lines of this level and above: error, warn, info or debug\n\
                 [default: info, or what RUST_LOG says when --log is not given]"
                .to_string(),
            Setting::Store => "keep history in an SQLite database at PATH (created if\n\
                 missing; see docs/STORE.md): the last --history entries of\n\
                 every channel survive a restart, and a channel's history stays\n\
                 when its last member leaves [default: none: history in memory,\n\
                 freed with the channel's last member]"
                .to_string(),
            Setting::Sync => "durability of --store: always = an entry is on disk before\n\
                 anyone is sent it; batch = a crash loses at most the last ~100 ms\n\
                 of entries; off = SQLite never syncs (an OS crash may lose more).\n\
                 A clean stop (SIGINT, SIGTERM) loses nothing [default: batch]"
                .to_string(),
            Setting::MaxPerAddress => format!(
                "connections one client IP address may hold at once (an\n\
                 IPv4-mapped IPv6 address is its IPv4 address); more are\n\
                 closed on accept, before any TLS\n\
                 [default: {DEFAULT_MAX_PER_ADDRESS}; 0 = no limit]"
            ),
            Setting::AcceptRate => format!(
                "new connections per second one address may open, on average;\n\
                 faster ones are closed on accept, before any TLS\n\
                 [default: {DEFAULT_ACCEPT_RATE}; 0 = no limit]"
            ),
            Setting::AcceptBurst => "new connections one address may open at once, before\n\
                 accept-rate applies [default: twice accept-rate]"
                .to_string(),
            Setting::LimitLoopback => "apply the two limits above to loopback addresses too\n\
                 (127.0.0.0/8, ::1), which are exempt by default"
                .to_string(),
            Setting::MaxVersion => {
                "highest protocol version offered: 2 (push delivery, listings,\n\
                 operators) or 1 (a version-1-only server) [default: 2]"
                    .to_string()
            }
            Setting::OperPasswordFile => "server operator password (OPER): a file holding its\n\
                 argon2id hash as a PHC string, e.g. made with\n\
                 argon2 SALT -id -e [default: none: OPER always fails]"
                .to_string(),
            Setting::RateLimit => format!(
                "SEND_MESSAGE per second one connection may send on average;\n\
                 more are dropped with an error notice\n\
                 [default: {}; 0 = no limit]",
                Rules::default().rate_limit
            ),
            Setting::RateBurst => format!(
                "messages one connection may send at once before rate-limit\n\
                 applies [default: {}]",
                Rules::default().rate_burst
            ),
            Setting::Redis => "cluster mode: share names, channels, history and bans with\n\
                 the other servers using this Redis (see docs/CLUSTER.md);\n\
                 rediss:// for TLS [default: none: a single server]"
                .to_string(),
            Setting::NodeId => "this server's name among the servers of --redis\n\
                 [default: HOSTNAME:PORT]"
                .to_string(),
            Setting::LeaseMs => format!(
                "with --redis: how long this server's names and liveness\n\
                 outlive it if it dies [default: {DEFAULT_LEASE_MS}; at least {MIN_LEASE_MS}]"
            ),
        }
    }

    /// The command-line flag: `--idle-timeout`.
    pub fn flag(self) -> &'static str {
        self.spec().0
    }

    /// The file's key: `idle-timeout`.
    pub fn key(self) -> &'static str {
        &self.flag()[2..]
    }

    /// Whether the flag takes a value (all but switches do).
    pub fn takes_value(self) -> bool {
        !matches!(self.spec().2, Kind::Switch)
    }

    /// What the value is, in the words of errors: "a number of seconds".
    pub fn what(self) -> &'static str {
        match self.spec().2 {
            Kind::Address => "an address (HOST:PORT or :PORT)",
            Kind::File(what) => what,
            Kind::Seconds => "a number of seconds",
            Kind::Count { what, .. } => what,
            Kind::Switch => "true or false",
            Kind::Level => "a level (error, warn, info or debug)",
            Kind::Sync => "always, batch or off",
            Kind::Version => "a protocol version (1 or 2)",
            Kind::Text { what, .. } => what,
        }
    }

    fn from_key(key: &str) -> Option<Setting> {
        Setting::ALL.into_iter().find(|s| s.key() == key)
    }
}

/// The `OPTIONS` lines of `--help` for every setting.
pub fn options_help() -> String {
    let indent = " ".repeat(HELP_COLUMN);
    let mut out = String::new();
    for setting in Setting::ALL {
        let (flag, placeholder, _) = setting.spec();
        let head = format!("  {flag} {placeholder}");
        let head = head.trim_end();
        let pad = HELP_COLUMN.saturating_sub(head.len()).max(2);
        let help = setting.help().replace('\n', &format!("\n{indent}"));
        let _ = writeln!(out, "{head}{}{help}", " ".repeat(pad));
    }
    out
}

/// A checked value, before it takes its place in [`Settings`].
#[derive(Clone, Debug)]
pub enum Value {
    Address(Listen),
    File(PathBuf),
    Seconds(u64),
    Count(usize),
    Switch(bool),
    Level(LevelFilter),
    Sync(SyncPolicy),
    Text(String),
}

/// `--listen` as written, and the addresses it stands for, to try in order.
#[derive(Clone, Debug)]
pub struct Listen {
    pub text: String,
    pub addrs: Vec<SocketAddr>,
}

/// Everything the command line and the file can set. `None` leaves the choice to the
/// server: the development certificate, a client limit from the open-file limit.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: Listen,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub deadlines: Deadlines,
    pub history: usize,
    pub replay: usize,
    pub max_clients: Option<usize>,
    pub plaintext: bool,
    pub stats_interval: u64,
    /// `None`: no metrics endpoint.
    pub metrics_listen: Option<Listen>,
    /// `None`: RUST_LOG decides, else info.
    pub log: Option<LevelFilter>,
    pub store: Option<PathBuf>,
    pub sync: SyncPolicy,
    pub max_per_address: usize,
    pub accept_rate: usize,
    /// `None`: twice the rate.
    pub accept_burst: Option<usize>,
    pub limit_loopback: bool,
    pub max_version: u16,
    /// `None`: no operator password, OPER always fails.
    pub oper_password_file: Option<PathBuf>,
    pub rate_limit: usize,
    pub rate_burst: usize,
    /// `None`: a single server (no cluster mode).
    pub redis: Option<String>,
    /// `None`: `HOSTNAME:PORT`.
    pub node_id: Option<String>,
    pub lease_ms: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            listen: Listen {
                text: format!(":{DEFAULT_PORT}"),
                addrs: all_interfaces(DEFAULT_PORT),
            },
            cert: None,
            key: None,
            deadlines: Deadlines::default(),
            history: DEFAULT_HISTORY,
            replay: DEFAULT_REPLAY,
            max_clients: None,
            plaintext: false,
            stats_interval: 0,
            metrics_listen: None,
            log: None,
            store: None,
            sync: SyncPolicy::Batch,
            max_per_address: DEFAULT_MAX_PER_ADDRESS as usize,
            accept_rate: DEFAULT_ACCEPT_RATE as usize,
            accept_burst: None,
            limit_loopback: false,
            max_version: Rules::default().max_version,
            oper_password_file: None,
            rate_limit: Rules::default().rate_limit as usize,
            rate_burst: Rules::default().rate_burst as usize,
            redis: None,
            node_id: None,
            lease_ms: DEFAULT_LEASE_MS as usize,
        }
    }
}

impl Settings {
    /// Puts a value checked by [`from_flag`] or [`read_file`] in its place.
    pub fn set(&mut self, setting: Setting, value: Value) {
        match setting {
            Setting::Listen => self.listen = value.address(),
            Setting::Cert => self.cert = Some(value.file()),
            Setting::Key => self.key = Some(value.file()),
            Setting::HandshakeTimeout => self.deadlines.handshake = value.seconds(),
            Setting::IdleTimeout => self.deadlines.idle = value.seconds(),
            Setting::History => self.history = value.count(),
            Setting::Replay => self.replay = value.count(),
            Setting::MaxClients => self.max_clients = Some(value.count()),
            Setting::Plaintext => self.plaintext = value.switch(),
            Setting::StatsInterval => self.stats_interval = value.seconds(),
            Setting::MetricsListen => self.metrics_listen = Some(value.address()),
            Setting::Log => self.log = Some(value.level()),
            Setting::Store => self.store = Some(value.file()),
            Setting::Sync => self.sync = value.sync(),
            Setting::MaxPerAddress => self.max_per_address = value.count(),
            Setting::AcceptRate => self.accept_rate = value.count(),
            Setting::AcceptBurst => self.accept_burst = Some(value.count()),
            Setting::LimitLoopback => self.limit_loopback = value.switch(),
            Setting::MaxVersion => self.max_version = value.count() as u16,
            Setting::OperPasswordFile => self.oper_password_file = Some(value.file()),
            Setting::RateLimit => self.rate_limit = value.count(),
            Setting::RateBurst => self.rate_burst = value.count(),
            Setting::Redis => self.redis = Some(value.text()),
            Setting::NodeId => self.node_id = Some(value.text()),
            Setting::LeaseMs => self.lease_ms = value.count(),
        }
    }

    /// The limits per client address; a rate or burst above [`MAX_RATE`] is that much (no
    /// limit in practice), as is a count above `u32::MAX`.
    pub fn address_limits(&self) -> AddressLimits {
        let at_most = |n: usize, max: u32| u32::try_from(n).unwrap_or(u32::MAX).min(max);
        let accept_rate = at_most(self.accept_rate, MAX_RATE);
        AddressLimits {
            max_per_address: at_most(self.max_per_address, u32::MAX),
            accept_rate,
            accept_burst: match self.accept_burst {
                Some(burst) => at_most(burst, MAX_RATE),
                None => accept_rate.saturating_mul(2).clamp(1, MAX_RATE),
            },
            limit_loopback: self.limit_loopback,
        }
    }

    /// The protocol rules sessions apply (`oper` is the server's to set).
    pub fn rules(&self) -> Rules {
        let at_most = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Rules {
            max_version: self.max_version,
            rate_limit: at_most(self.rate_limit),
            rate_burst: at_most(self.rate_burst),
            oper: false,
        }
    }

    /// The value in effect, as TOML; `None` when the server chooses.
    fn toml_value(&self, setting: Setting) -> Option<String> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| toml_string(&p.to_string_lossy()));
        match setting {
            Setting::Listen => Some(toml_string(&self.listen.text)),
            Setting::Cert => path(&self.cert),
            Setting::Key => path(&self.key),
            Setting::HandshakeTimeout => Some(self.deadlines.handshake.to_string()),
            Setting::IdleTimeout => Some(self.deadlines.idle.to_string()),
            Setting::History => Some(self.history.to_string()),
            Setting::Replay => Some(self.replay.to_string()),
            Setting::MaxClients => self.max_clients.map(|n| n.to_string()),
            Setting::Plaintext => Some(self.plaintext.to_string()),
            Setting::StatsInterval => Some(self.stats_interval.to_string()),
            Setting::MetricsListen => self.metrics_listen.as_ref().map(|l| toml_string(&l.text)),
            Setting::Log => self
                .log
                .map(|l| toml_string(&l.as_str().to_ascii_lowercase())),
            Setting::Store => path(&self.store),
            Setting::Sync => Some(toml_string(self.sync.name())),
            Setting::MaxPerAddress => Some(self.max_per_address.to_string()),
            Setting::AcceptRate => Some(self.accept_rate.to_string()),
            Setting::AcceptBurst => self.accept_burst.map(|n| n.to_string()),
            Setting::LimitLoopback => Some(self.limit_loopback.to_string()),
            Setting::MaxVersion => Some(self.max_version.to_string()),
            Setting::OperPasswordFile => path(&self.oper_password_file),
            Setting::RateLimit => Some(self.rate_limit.to_string()),
            Setting::RateBurst => Some(self.rate_burst.to_string()),
            Setting::Redis => self.redis.as_deref().map(toml_string),
            Setting::NodeId => self.node_id.as_deref().map(toml_string),
            Setting::LeaseMs => Some(self.lease_ms.to_string()),
        }
    }

    /// The settings as a TOML document that `--config` reads back to the same settings:
    /// a line per key, in `--help` order; one the server chooses is a comment saying what
    /// it chooses (`fd_clients`: the client limit the open-file limit allows now).
    pub fn to_toml(&self, origin: &str, fd_clients: usize) -> Result<String, String> {
        // A file name that is not UTF-8 cannot be written in TOML; refuse rather than print
        // a name that reads back as another file.
        for (setting, path) in [
            (Setting::Cert, &self.cert),
            (Setting::Key, &self.key),
            (Setting::Store, &self.store),
            (Setting::OperPasswordFile, &self.oper_password_file),
        ] {
            if let Some(path) = path.as_ref().filter(|p| p.to_str().is_none()) {
                return Err(format!(
                    "{}: '{}' is not UTF-8, so it cannot be written in TOML",
                    setting.flag(),
                    path.display()
                ));
            }
        }
        let mut out = format!(
            "# kaichat-server {}: the settings in effect: {origin}\n",
            kaichat::version()
        );
        for setting in Setting::ALL {
            let key = setting.key();
            if let Some(value) = self.toml_value(setting) {
                let _ = writeln!(out, "{key} = {value}");
                continue;
            }
            let chosen = match setting {
                Setting::Cert => format!("the bundled development certificate {}", tls::DEV_CERT),
                Setting::Key => format!("the bundled development key {}", tls::DEV_KEY),
                Setting::MaxClients => {
                    format!("the open-file limit minus {RESERVED_FDS}, here {fd_clients}")
                }
                Setting::MetricsListen => "no metrics endpoint".to_string(),
                Setting::Log => "RUST_LOG, else info".to_string(),
                Setting::Store => "history in memory only".to_string(),
                Setting::OperPasswordFile => "no operator password: OPER always fails".to_string(),
                Setting::Redis => "a single server, no cluster".to_string(),
                Setting::NodeId => "the host name and the port".to_string(),
                Setting::AcceptBurst => format!(
                    "twice accept-rate, here {}",
                    self.address_limits().accept_burst
                ),
                _ => unreachable!("{key} always has a value"),
            };
            let _ = writeln!(out, "# {key}: not set: {chosen}");
        }
        Ok(out)
    }
}

impl Value {
    // The setting's kind decides the value's variant (`check`), so a mismatch is a bug in
    // this file, not an input error.
    fn address(self) -> Listen {
        match self {
            Value::Address(listen) => listen,
            other => unreachable!("not an address: {other:?}"),
        }
    }

    fn file(self) -> PathBuf {
        match self {
            Value::File(path) => path,
            other => unreachable!("not a file: {other:?}"),
        }
    }

    fn seconds(self) -> u64 {
        match self {
            Value::Seconds(secs) => secs,
            other => unreachable!("not seconds: {other:?}"),
        }
    }

    fn count(self) -> usize {
        match self {
            Value::Count(n) => n,
            other => unreachable!("not a count: {other:?}"),
        }
    }

    fn switch(self) -> bool {
        match self {
            Value::Switch(on) => on,
            other => unreachable!("not a switch: {other:?}"),
        }
    }

    fn level(self) -> LevelFilter {
        match self {
            Value::Level(level) => level,
            other => unreachable!("not a level: {other:?}"),
        }
    }

    fn sync(self) -> SyncPolicy {
        match self {
            Value::Sync(policy) => policy,
            other => unreachable!("not a policy: {other:?}"),
        }
    }

    fn text(self) -> String {
        match self {
            Value::Text(text) => text,
            other => unreachable!("not text: {other:?}"),
        }
    }
}

/// A node name is put in Redis keys and values, space-separated: printable ASCII without
/// spaces, 1 to 64 bytes.
fn check_node_id(text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > 64 {
        return Err(format!(
            "'{text}' is {} bytes long, not 1 to 64",
            text.len()
        ));
    }
    match text.chars().find(|c| !c.is_ascii_graphic()) {
        Some(c) => Err(format!(
            "'{}' holds {c:?}: only printable ASCII without spaces",
            text.escape_debug()
        )),
        None => Ok(()),
    }
}

/// A value as given, before it is checked.
enum Given<'a> {
    /// A flag's value; `None` for a switch that is present.
    Flag(Option<std::ffi::OsString>),
    /// A file's value and its text as written there.
    File(&'a DeValue<'a>, &'a str),
}

/// Checks a setting's value; errors start with `place` (the flag, or the file, line and key)
/// and say what was expected, in the same words for the flag and the key.
fn check(setting: Setting, place: &str, given: Given) -> Result<Value, String> {
    let kind = setting.spec().2;
    let what = setting.what();
    let not = |shown: &str| format!("{place}: {shown} is not {what}");
    // A flag's value is text; a file's must have the TOML type the kind needs.
    let value = match given {
        Given::Flag(None) => return Ok(Value::Switch(true)),
        Given::Flag(Some(os)) => match os.into_string() {
            Ok(text) => Raw::Text(text),
            // Any bytes name a file on Unix; everything else is text.
            Err(os) if matches!(kind, Kind::File(_)) => return Ok(Value::File(os.into())),
            Err(os) => return Err(not(&format!("'{}'", os.to_string_lossy()))),
        },
        Given::File(value, written) => match (&kind, value) {
            (
                Kind::Address | Kind::File(_) | Kind::Level | Kind::Sync | Kind::Text { .. },
                DeValue::String(s),
            ) => Raw::Text(s.to_string()),
            (Kind::Seconds | Kind::Count { .. } | Kind::Version, DeValue::Integer(i)) => {
                match u64::from_str_radix(i.as_str(), i.radix()) {
                    Ok(n) => Raw::Number(n),
                    Err(_) => return Err(not(written)),
                }
            }
            (Kind::Switch, DeValue::Boolean(on)) => return Ok(Value::Switch(*on)),
            // A number or a switch in quotes: say what to write instead.
            (Kind::Seconds | Kind::Count { .. } | Kind::Version, DeValue::String(s))
                if s.parse::<u64>().is_ok() =>
            {
                return Err(format!("{}: write it without quotes", not(written)))
            }
            (Kind::Switch, DeValue::String(s)) if s.parse::<bool>().is_ok() => {
                return Err(format!("{}: write it without quotes", not(written)))
            }
            (Kind::Address | Kind::File(_) | Kind::Level | Kind::Sync | Kind::Text { .. }, _) => {
                return Err(format!("{}: write it as a string, in quotes", not(written)))
            }
            _ => return Err(not(written)),
        },
    };
    let number = |raw: Raw| -> Result<u64, String> {
        match raw {
            Raw::Number(n) => Ok(n),
            Raw::Text(t) => t.parse().map_err(|_| not(&format!("'{t}'"))),
        }
    };
    match kind {
        Kind::Address => listen_addresses(place, &value.text()).map(Value::Address),
        Kind::File(_) => Ok(Value::File(value.text().into())),
        Kind::Seconds => match number(value)? {
            n if n > MAX_SECONDS => Err(format!(
                "{place}: {n} seconds is more than a year ({MAX_SECONDS}); 0 turns it off"
            )),
            n => Ok(Value::Seconds(n)),
        },
        Kind::Count { min, .. } => {
            let n = usize::try_from(number(value)?).unwrap_or(usize::MAX);
            if n < min {
                Err(format!("{place}: must be at least {min}"))
            } else {
                Ok(Value::Count(n))
            }
        }
        Kind::Version => match number(value)? {
            n @ 1..=2 => Ok(Value::Count(n as usize)),
            n => Err(format!(
                "{place}: {n} is not a protocol version this server speaks: 1 or 2"
            )),
        },
        Kind::Switch => unreachable!("a switch was handled above"),
        Kind::Level => match value.text().as_str() {
            "error" => Ok(Value::Level(LevelFilter::Error)),
            "warn" => Ok(Value::Level(LevelFilter::Warn)),
            "info" => Ok(Value::Level(LevelFilter::Info)),
            "debug" => Ok(Value::Level(LevelFilter::Debug)),
            other => Err(not(&format!("'{other}'"))),
        },
        Kind::Sync => {
            let text = value.text();
            SyncPolicy::parse(&text)
                .map(Value::Sync)
                .ok_or_else(|| not(&format!("'{text}'")))
        }
        Kind::Text { check, .. } => {
            let text = value.text();
            check(&text).map_err(|e| format!("{place}: {e}"))?;
            Ok(Value::Text(text))
        }
    }
}

/// A value before its kind's checks.
enum Raw {
    Text(String),
    Number(u64),
}

impl Raw {
    fn text(&self) -> String {
        match self {
            Raw::Text(t) => t.clone(),
            Raw::Number(n) => n.to_string(),
        }
    }
}

/// Checks a flag's value (`None` for a switch that is given).
pub fn from_flag(setting: Setting, value: Option<std::ffi::OsString>) -> Result<Value, String> {
    check(setting, setting.flag(), Given::Flag(value))
}

/// Reads a TOML configuration file: its settings, checked, in the order they are written.
/// Every error is one line naming the file, and the line and key when there is one.
pub fn read_file(path: &Path) -> Result<Vec<(Setting, Value)>, String> {
    let file = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| format!("{file}: cannot read the configuration file: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = line_of(&e.as_bytes()[..e.utf8_error().valid_up_to()]);
        format!("{file}:{line}: not UTF-8 text, so not TOML")
    })?;
    let table = DeTable::parse(&text).map_err(|e| {
        let span = e.span().unwrap_or_default();
        let line = line_of(&text.as_bytes()[..span.start]);
        let message = e.message().trim().replace('\n', "; ");
        // The text the parser stopped at, when there is some: the key of "duplicate key".
        match text.get(span).map(str::trim).filter(|t| !t.is_empty()) {
            Some(at) => format!("{file}:{line}: not valid TOML: {message}: {}", shorten(at)),
            None => format!("{file}:{line}: not valid TOML: {message}"),
        }
    })?;
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut settings = Vec::new();
    for (key, value) in entries {
        let line = line_of(&text.as_bytes()[..key.span().start]);
        let Some(setting) = Setting::from_key(key.get_ref()) else {
            let known: Vec<&str> = Setting::ALL.iter().map(|s| s.key()).collect();
            return Err(format!(
                "{file}:{line}: unknown key '{}' (the keys are {})",
                key.get_ref(),
                known.join(", ")
            ));
        };
        // A table's span is its header or dotted key, which would read as its value.
        let written = match value.get_ref() {
            DeValue::Table(_) => "a table".to_string(),
            _ => shorten(&text[value.span()]),
        };
        let place = format!("{file}:{line}: {}", setting.key());
        let checked = check(setting, &place, Given::File(value.get_ref(), &written))?;
        settings.push((setting, checked));
    }
    Ok(settings)
}

/// The 1-based line at the end of `before`.
fn line_of(before: &[u8]) -> usize {
    1 + before.iter().filter(|&&b| b == b'\n').count()
}

/// A value as written, cut to fit an error line.
fn shorten(written: &str) -> String {
    let first = written.lines().next().unwrap_or_default();
    if first.chars().count() > 40 || first.len() < written.trim_end().len() {
        format!("{}…", first.chars().take(40).collect::<String>())
    } else {
        first.to_string()
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The wildcard addresses, IPv6 first: on most systems `[::]` takes IPv4 too, and a
/// machine without IPv6 falls back to `0.0.0.0`.
pub fn all_interfaces(port: u16) -> Vec<SocketAddr> {
    vec![
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
    ]
}

/// `listen`: `HOST:PORT` (a name, an IPv4 address or a bracketed IPv6 address), or `:PORT`
/// for all interfaces. Returns the addresses to try, in order; errors start with `place`.
fn listen_addresses(place: &str, text: &str) -> Result<Listen, String> {
    const FORM: &str = "HOST:PORT, [IPv6]:PORT, or :PORT for all interfaces";
    let listen = |addrs| {
        Ok(Listen {
            text: text.to_string(),
            addrs,
        })
    };
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return listen(vec![addr]);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{place}: '{text}' has no port ({FORM})"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{place}: '{port}' in '{text}' is not a port number (0 to 65535)"))?;
    if host.is_empty() {
        return listen(all_interfaces(port));
    }
    if host.contains(':') && !host.starts_with('[') {
        return Err(format!(
            "{place}: '{text}': an IPv6 address needs brackets, as in [::1]:{port}"
        ));
    }
    let mut addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{place}: cannot resolve '{host}': {e}"))?
        .collect();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(format!("{place}: '{host}' has no address"));
    }
    listen(addrs)
}

#[cfg(test)]
#[path = "settings/tests.rs"]
mod tests;
