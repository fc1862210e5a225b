//! `kaichat-server`: argument parsing and wiring only; the reactor is `kaichat::server`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kaichat::fd_limit::RESERVED_FDS;
use kaichat::server::{Config, Server, Shutdown, DEFAULT_HISTORY, DEFAULT_REPLAY};
use kaichat::tls;
use kaichat_proto::session::Deadlines;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The protocol's port (contract section 1).
const DEFAULT_PORT: u16 = 29200;

/// The help text, with the defaults the server actually uses.
fn help() -> String {
    let deadlines = Deadlines::default();
    let handshake = deadlines.handshake;
    let idle = deadlines.idle;
    format!(
        "\
kaichat-server: the KaiChat v1 chat server (TLS on TCP port {DEFAULT_PORT})

USAGE:
  kaichat-server [OPTIONS]

OPTIONS:
  --listen ADDR:PORT        address to listen on [default: all interfaces, port {DEFAULT_PORT}]
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
  --stats-interval SECS     print a statistics line to stderr this often [default: 0 = off]
  -h, --help                print this help

The bundled certificate in certs/ is for development only. SIGINT or SIGTERM closes every
client with a TLS close_notify, prints a final statistics line and exits 0.
",
        cert = tls::DEV_CERT,
        key = tls::DEV_KEY,
    )
}

struct Args {
    listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    handshake_timeout: u64,
    idle_timeout: u64,
    history: usize,
    replay: usize,
    max_clients: Option<usize>,
    plaintext: bool,
    stats_interval: u64,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = pico_args::Arguments::from_env();
    if args.contains(["-h", "--help"]) {
        return Ok(None);
    }
    let defaults = Deadlines::default();
    let parsed = (|| -> Result<Args, pico_args::Error> {
        Ok(Args {
            listen: args.opt_value_from_str("--listen")?,
            cert: args.opt_value_from_str("--cert")?,
            key: args.opt_value_from_str("--key")?,
            handshake_timeout: args
                .opt_value_from_str("--handshake-timeout")?
                .unwrap_or(defaults.handshake),
            idle_timeout: args
                .opt_value_from_str("--idle-timeout")?
                .unwrap_or(defaults.idle),
            history: args
                .opt_value_from_str("--history")?
                .unwrap_or(DEFAULT_HISTORY),
            replay: args
                .opt_value_from_str("--replay")?
                .unwrap_or(DEFAULT_REPLAY),
            max_clients: args.opt_value_from_str("--max-clients")?,
            plaintext: args.contains("--plaintext"),
            stats_interval: args.opt_value_from_str("--stats-interval")?.unwrap_or(0),
        })
    })()
    .map_err(|e| e.to_string())?;
    let rest = args.finish();
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected argument '{}'", extra.to_string_lossy()));
    }
    if parsed.history == 0 {
        return Err("--history must be at least 1".to_string());
    }
    if parsed.max_clients == Some(0) {
        return Err("--max-clients must be at least 1".to_string());
    }
    Ok(Some(parsed))
}

/// Looks for the bundled development files relative to the working directory, then to
/// the repository the binary was built from.
fn dev_file(relative: &str) -> PathBuf {
    let local = Path::new(relative);
    if local.exists() {
        return local.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
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
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kaichat-server: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    // Without a readable limit, assume the common default of 1024.
    let fd_limit = kaichat::fd_limit::raise().unwrap_or(1024);
    let fd_clients =
        usize::try_from(fd_limit.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
    let max_clients = args.max_clients.unwrap_or(fd_clients);

    let dev_pair = args.cert.is_none() && args.key.is_none();
    let cert = args.cert.unwrap_or_else(|| dev_file(tls::DEV_CERT));
    let key = args.key.unwrap_or_else(|| dev_file(tls::DEV_KEY));
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
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, DEFAULT_PORT)));
    let config = Config {
        listen,
        tls: tls_config,
        deadlines: Deadlines {
            handshake: args.handshake_timeout,
            idle: args.idle_timeout,
        },
        history: args.history,
        replay: args.replay,
        max_clients,
        stats_interval: args.stats_interval,
    };
    let bound = match Server::bind(config.clone()) {
        // A machine without IPv6 cannot bind the default [::]; fall back to IPv4.
        Err(_) if args.listen.is_none() => Server::bind(Config {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            ..config
        }),
        other => other,
    };
    let mut server = match bound {
        Ok(server) => server,
        Err(e) => {
            eprintln!("kaichat-server: cannot listen on {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = server.local_addr().map_or(listen, |a| a);
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
    eprintln!("kaichat-server: listening on {addr} ({security}; max {max_clients} clients)");
    if let Err(e) = stop_on_signals(server.shutdown_handle()) {
        eprintln!("kaichat-server: cannot install the SIGINT/SIGTERM handlers: {e}");
        return ExitCode::FAILURE;
    }
    match server.run() {
        Ok(stats) => {
            eprintln!("kaichat-server: shut down: {stats}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kaichat-server: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
