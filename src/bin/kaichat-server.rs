//! `kaichat-server`: argument parsing and wiring only; the reactor is `kaichat::server`.

use std::ffi::OsString;
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use kaichat::fd_limit::RESERVED_FDS;
use kaichat::server::{
    Config, Server, Shutdown, DEFAULT_HISTORY, DEFAULT_REPLAY, METRICS_CONNECTIONS,
    METRICS_TIMEOUT_MS,
};
use kaichat::tls;
use kaichat_proto::session::Deadlines;
use log::LevelFilter;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The protocol's port (contract section 1).
const DEFAULT_PORT: u16 = 29200;
/// The longest deadline or interval accepted, a year. Longer means "never" in practice, which
/// 0 says; and the session adds a deadline to its clock in u64 seconds, so a value near
/// u64::MAX wrapped (closing every client at once) or panicked in a debug build.
const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;

/// Every flag that takes a value, to tell "given twice" from "unknown".
const VALUE_FLAGS: [&str; 11] = [
    "--listen",
    "--cert",
    "--key",
    "--handshake-timeout",
    "--idle-timeout",
    "--history",
    "--replay",
    "--max-clients",
    "--stats-interval",
    "--metrics-listen",
    "--log",
];

/// The help text, with the defaults the server actually uses.
fn help() -> String {
    let deadlines = Deadlines::default();
    let handshake = deadlines.handshake;
    let idle = deadlines.idle;
    format!(
        "\
kaichat-server {version}: the KaiChat v1 chat server (TLS on TCP port {DEFAULT_PORT})

USAGE:
  kaichat-server [OPTIONS]

OPTIONS:
  --listen HOST:PORT        address to listen on; a host name listens on its first address
                            that binds, :PORT on all interfaces
                            [default: all interfaces, port {DEFAULT_PORT}]
  --cert PEM                certificate chain, leaf first [default: {cert}]
  --key PEM                 private key of the certificate [default: {key}]
  --handshake-timeout SECS  deadline of each set-up phase: accept to PING, PONG to
                            version, version to accepted name [default: {handshake}; 0 = off]
  --idle-timeout SECS       close established clients silent this long [default: {idle}; 0 = off]
  --history N               entries retained per channel [default: {DEFAULT_HISTORY}; at least 1]
  --replay N                last entries shown to a client joining a channel [default: {DEFAULT_REPLAY}]
  --max-clients N           connections served at once; more wait in the listen backlog
                            [default: the open-file limit minus {RESERVED_FDS}]
  --plaintext               no TLS, for debugging and benchmarks only
  --stats-interval SECS     log a statistics line this often [default: 0 = off]
  --metrics-listen HOST:PORT  serve Prometheus metrics over plain HTTP at
                            http://HOST:PORT/metrics, from the server's own thread
                            [default: off]; keep it on a private address
  --log LEVEL               log lines of this level and above: error, warn, info or debug
                            [default: info, or what RUST_LOG says when --log is not given]
  -h, --help                print this help
  -V, --version             print the version

Durations are whole seconds, at most {MAX_SECONDS} (a year). The bundled certificate in
certs/ is for development only. SIGINT or SIGTERM closes every client with a TLS
close_notify, logs a final statistics line and exits 0.

Logs go to stderr, one line each: UTC time (RFC 3339), level, what happened. At info, a
line per connection accepted, set up and closed (with its reason and duration); warnings
for TLS, socket and accept errors. No message a client sends is ever logged. The metrics
endpoint answers GET /metrics only, to at most {metrics_clients} connections at once, each
closed after one answer or {metrics_timeout} s.
",
        version = env!("CARGO_PKG_VERSION"),
        cert = tls::DEV_CERT,
        key = tls::DEV_KEY,
        metrics_clients = METRICS_CONNECTIONS,
        metrics_timeout = METRICS_TIMEOUT_MS / 1000,
    )
}

struct Args {
    /// Addresses to try in order; the first that binds is used.
    listen: Option<Vec<SocketAddr>>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    deadlines: Deadlines,
    history: usize,
    replay: usize,
    max_clients: Option<usize>,
    plaintext: bool,
    stats_interval: u64,
    metrics_listen: Option<SocketAddr>,
    /// None: RUST_LOG decides, or info.
    log: Option<LevelFilter>,
}

/// What the command line asks for.
enum Request {
    Run(Args),
    Help,
    Version,
}

/// `flag`'s value, if the flag is given. Errors name the flag and say what it takes.
fn value(
    args: &mut pico_args::Arguments,
    flag: &'static str,
    what: &str,
) -> Result<Option<OsString>, String> {
    let missing = || format!("{flag}: needs a value, {what}");
    let value = args
        .opt_value_from_os_str(flag, |s| Ok::<_, std::convert::Infallible>(s.to_owned()))
        .map_err(|_| missing())?;
    match value {
        // `--replay --history 5`: the next flag is not --replay's value.
        Some(v) if v.to_string_lossy().starts_with("--") => Err(missing()),
        other => Ok(other),
    }
}

/// `flag`'s value as text.
fn text(
    args: &mut pico_args::Arguments,
    flag: &'static str,
    what: &str,
) -> Result<Option<String>, String> {
    value(args, flag, what)?
        .map(|v| {
            v.into_string()
                .map_err(|v| format!("{flag}: '{}' is not {what}", v.to_string_lossy()))
        })
        .transpose()
}

/// `flag`'s value as a number.
fn number<T: FromStr>(
    args: &mut pico_args::Arguments,
    flag: &'static str,
    what: &str,
) -> Result<Option<T>, String> {
    text(args, flag, what)?
        .map(|t| {
            t.parse()
                .map_err(|_| format!("{flag}: '{t}' is not {what}"))
        })
        .transpose()
}

/// `flag`'s value as a duration in whole seconds, 0 meaning off.
fn seconds(args: &mut pico_args::Arguments, flag: &'static str) -> Result<Option<u64>, String> {
    let secs: Option<u64> = number(args, flag, "a number of seconds")?;
    match secs {
        Some(n) if n > MAX_SECONDS => Err(format!(
            "{flag}: {n} seconds is more than a year ({MAX_SECONDS}); 0 turns it off"
        )),
        other => Ok(other),
    }
}

/// `flag`'s value as a count of at least 1.
fn at_least_one(
    args: &mut pico_args::Arguments,
    flag: &'static str,
    what: &str,
) -> Result<Option<usize>, String> {
    match number(args, flag, what)? {
        Some(0) => Err(format!("{flag}: must be at least 1")),
        other => Ok(other),
    }
}

/// The wildcard addresses, IPv6 first: on most systems `[::]` takes IPv4 too, and a
/// machine without IPv6 falls back to `0.0.0.0`.
fn all_interfaces(port: u16) -> Vec<SocketAddr> {
    vec![
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
    ]
}

/// `--listen`: `HOST:PORT` (a name, an IPv4 address or a bracketed IPv6 address), or `:PORT`
/// for all interfaces. Returns the addresses to try, in order.
fn listen_addresses(text: &str) -> Result<Vec<SocketAddr>, String> {
    const FORM: &str = "HOST:PORT, [IPv6]:PORT, or :PORT for all interfaces";
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("--listen: '{text}' has no port ({FORM})"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("--listen: '{port}' in '{text}' is not a port number (0 to 65535)"))?;
    if host.is_empty() {
        return Ok(all_interfaces(port));
    }
    if host.contains(':') && !host.starts_with('[') {
        return Err(format!(
            "--listen: '{text}': an IPv6 address needs brackets, as in [::1]:{port}"
        ));
    }
    let mut addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("--listen: cannot resolve '{host}': {e}"))?
        .collect();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(format!("--listen: '{host}' has no address"));
    }
    Ok(addrs)
}

/// `--metrics-listen`: `HOST:PORT` or `[IPv6]:PORT`; a name listens on its first address.
fn metrics_address(text: &str) -> Result<SocketAddr, String> {
    let form = "HOST:PORT, e.g. 127.0.0.1:9464";
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !text.contains(':') {
        return Err(format!("--metrics-listen: '{text}' has no port ({form})"));
    }
    text.to_socket_addrs()
        .map_err(|e| format!("--metrics-listen: '{text}' is not an address ({form}): {e}"))?
        .next()
        .ok_or_else(|| format!("--metrics-listen: '{text}' has no address"))
}

/// `--log`: one of the four levels.
fn log_level(text: &str) -> Result<LevelFilter, String> {
    match text {
        "error" => Ok(LevelFilter::Error),
        "warn" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        _ => Err(format!(
            "--log: '{text}' is not a level (error, warn, info or debug)"
        )),
    }
}

/// Installs the logger for the whole process (the library only calls `log`'s macros).
/// `--log LEVEL` sets KaiChat's own lines, and lets libraries (rustls) say only warnings
/// and errors; without it, RUST_LOG is read with env_logger's full syntax
/// (`RUST_LOG=debug,rustls=trace`), and without either it is `--log info`. One line per
/// record on stderr: UTC time in RFC 3339 with milliseconds, the level, the message.
fn install_logger(level: Option<LevelFilter>) {
    let mut builder = env_logger::Builder::new();
    match (level, std::env::var_os("RUST_LOG")) {
        (None, Some(_)) => {
            builder.parse_env(env_logger::Env::default());
        }
        (level, _) => {
            let level = level.unwrap_or(LevelFilter::Info);
            builder
                .filter_level(level.min(LevelFilter::Warn))
                // Every target of ours starts so: kaichat::server, kaichat_server.
                .filter_module("kaichat", level);
        }
    }
    builder
        .format(|out, record| {
            let time = out.timestamp_millis();
            writeln!(out, "{time} {:<5} {}", record.level(), record.args())
        })
        .write_style(env_logger::WriteStyle::Never)
        .target(env_logger::Target::Stderr)
        .init();
}

fn parse_args() -> Result<Request, String> {
    let mut args = pico_args::Arguments::from_env();
    if args.contains(["-h", "--help"]) {
        return Ok(Request::Help);
    }
    if args.contains(["-V", "--version"]) {
        return Ok(Request::Version);
    }
    let defaults = Deadlines::default();
    let listen = text(&mut args, "--listen", "an address (HOST:PORT or :PORT)")?;
    let parsed = Args {
        listen: listen.as_deref().map(listen_addresses).transpose()?,
        cert: value(&mut args, "--cert", "a PEM certificate file")?.map(PathBuf::from),
        key: value(&mut args, "--key", "a PEM private key file")?.map(PathBuf::from),
        deadlines: Deadlines {
            handshake: seconds(&mut args, "--handshake-timeout")?.unwrap_or(defaults.handshake),
            idle: seconds(&mut args, "--idle-timeout")?.unwrap_or(defaults.idle),
        },
        history: at_least_one(&mut args, "--history", "a number of entries")?
            .unwrap_or(DEFAULT_HISTORY),
        replay: number(&mut args, "--replay", "a number of entries")?.unwrap_or(DEFAULT_REPLAY),
        max_clients: at_least_one(&mut args, "--max-clients", "a number of clients")?,
        plaintext: args.contains("--plaintext"),
        stats_interval: seconds(&mut args, "--stats-interval")?.unwrap_or(0),
        metrics_listen: text(&mut args, "--metrics-listen", "an address (HOST:PORT)")?
            .map(|t| metrics_address(&t))
            .transpose()?,
        log: text(&mut args, "--log", "a level (error, warn, info or debug)")?
            .map(|t| log_level(&t))
            .transpose()?,
    };
    if let Some(extra) = args.finish().first() {
        let extra = extra.to_string_lossy();
        let before_equals = extra.split('=').next().unwrap_or_default();
        return Err(if VALUE_FLAGS.contains(&extra.as_ref()) {
            format!("{extra}: given more than once")
        } else if extra.contains('=') && VALUE_FLAGS.contains(&before_equals) {
            format!("{before_equals}: put the value after a space, not '='")
        } else if extra.starts_with('-') {
            format!("unknown flag '{extra}'")
        } else {
            format!("unexpected argument '{extra}'")
        });
    }
    Ok(Request::Run(parsed))
}

/// Binds the first of `candidates` that can be bound; returns the server and the address it
/// listens on. The error names every address tried, with why it failed.
fn bind_first(config: Config, candidates: &[SocketAddr]) -> Result<(Server, SocketAddr), String> {
    let mut failures = Vec::new();
    for &listen in candidates {
        match Server::bind(Config {
            listen,
            ..config.clone()
        }) {
            Ok(server) => {
                let addr = server.local_addr().unwrap_or(listen);
                return Ok((server, addr));
            }
            Err(e) => failures.push(format!("{listen} ({e})")),
        }
    }
    Err(format!("cannot listen on {}", failures.join(", nor on ")))
}

/// The process owns its signals: a thread waits for SIGINT or SIGTERM and stops the
/// server, which then closes every client cleanly.
fn stop_on_signals(shutdown: Shutdown) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            if signals.forever().next().is_some() {
                shutdown.trigger();
            }
        })?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Request::Run(args)) => args,
        Ok(Request::Help) => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Ok(Request::Version) => {
            println!("kaichat-server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kaichat-server: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    install_logger(args.log);
    // Without a readable limit, assume the common default of 1024.
    let fd_limit = kaichat::fd_limit::raise().unwrap_or(1024);
    let fd_clients =
        usize::try_from(fd_limit.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
    let max_clients = args.max_clients.unwrap_or(fd_clients);

    let dev_pair = args.cert.is_none() && args.key.is_none();
    let cert = args.cert.unwrap_or_else(|| tls::dev_file(tls::DEV_CERT));
    let key = args.key.unwrap_or_else(|| tls::dev_file(tls::DEV_KEY));
    let tls_config = if args.plaintext {
        None
    } else {
        match tls::server_config(&cert, &key) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("kaichat-server: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let candidates = args.listen.unwrap_or_else(|| all_interfaces(DEFAULT_PORT));
    let config = Config {
        listen: candidates[0], // bind_first sets each candidate in turn
        tls: tls_config,
        deadlines: args.deadlines,
        history: args.history,
        replay: args.replay,
        max_clients,
        stats_interval: args.stats_interval,
    };
    let (mut server, addr) = match bind_first(config, &candidates) {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("kaichat-server: {e}");
            return ExitCode::from(2);
        }
    };
    let security = if args.plaintext {
        "PLAINTEXT, no TLS: for debugging and benchmarks only".to_string()
    } else if dev_pair {
        format!(
            "TLS, certificate {}: WARNING: bundled development certificate, do not use in production",
            cert.display()
        )
    } else {
        format!("TLS, certificate {}", cert.display())
    };
    let metrics = match args
        .metrics_listen
        .map(|m| server.serve_metrics(m))
        .transpose()
    {
        Ok(bound) => bound,
        Err(e) => {
            let wanted = args
                .metrics_listen
                .map(|m| m.to_string())
                .unwrap_or_default();
            eprintln!("kaichat-server: --metrics-listen: cannot listen on {wanted}: {e}");
            return ExitCode::from(2);
        }
    };
    // The first line: tests and scripts read the address from it.
    log::info!("listening on {addr} ({security}; max {max_clients} clients)");
    if let Some(metrics) = metrics {
        log::info!("metrics on http://{metrics}/metrics");
    }
    if let Err(e) = stop_on_signals(server.shutdown_handle()) {
        log::error!("cannot install the SIGINT/SIGTERM handlers: {e}");
        return ExitCode::FAILURE;
    }
    match server.run() {
        Ok(stats) => {
            log::info!("shut down: {stats}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
