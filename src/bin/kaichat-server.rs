//! `kaichat-server`: argument parsing and wiring only; the reactor is `kaichat::server`.

#[path = "kaichat-server/notify.rs"]
mod notify;
#[path = "kaichat-server/settings.rs"]
mod settings;

use std::ffi::OsString;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use kaichat::cluster::url::RedisUrl;
use kaichat::fd_limit::RESERVED_FDS;
use kaichat::server::{ClusterSettings, Config, Server, Shutdown};
use kaichat::store::Opened;
use kaichat::tls;
use log::LevelFilter;
use notify::Notifier;
use settings::{Setting, Settings, DEFAULT_PORT, MAX_SECONDS};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main` (the `_rjem_` prefix is tikv-jemalloc-sys's, on
/// by default). jemalloc returns freed pages to the system only as it "decays" them, and by
/// default only while the program allocates, over 10 s: a server idle after a burst of
/// connections kept the burst's memory for good (17 MiB after 10,000 idle connections).
/// A background thread now purges what has been unused for about a second; it sleeps
/// while there is nothing to purge, and takes the `madvise` calls off the reactor's
/// thread. Muzzy decay (MADV_FREE) is off: such pages still count in RSS until the
/// kernel is short of memory. `_RJEM_MALLOC_CONF` in the environment overrides these.
#[export_name = "_rjem_malloc_conf"]
#[allow(non_upper_case_globals)]
pub static malloc_conf: Option<&'static std::ffi::c_char> = Some(
    // SAFETY: the first byte of a C string literal, which lives as long as the program.
    unsafe {
        &*c"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0"
            .as_ptr()
    },
);

/// Flags that are not settings: they say where settings come from, or what to do instead of
/// serving.
const CONFIG: &str = "--config";
const PRINT_CONFIG: &str = "--print-config";

/// The help text, with the defaults the server actually uses.
fn help() -> String {
    format!(
        "\
kaichat-server {version}: the KaiChat chat server, protocol versions 1 and 2 (TLS on TCP port {DEFAULT_PORT})

USAGE:
  kaichat-server [OPTIONS]

OPTIONS:
{options}  {CONFIG} FILE             read settings from a TOML file first: one key per option
                            above, named as the flag without its dashes (history = 50);
                            the flags given override the file
  {PRINT_CONFIG}            print the settings in effect (defaults, file, flags) as TOML
                            that {CONFIG} reads back, and exit
  -h, --help                print this help
  -V, --version             print the version

Durations are whole seconds, at most {MAX_SECONDS} (a year). The bundled certificate in
certs/ is for development only. SIGINT or SIGTERM closes every client with a TLS
close_notify, logs a final statistics line and exits 0. Started by systemd as a
Type=notify service, it reports READY=1 once listening and STOPPING=1 on shutdown.

Logs go to stderr, one line each: UTC time (RFC 3339), level, what happened. At info, a
line per connection accepted, set up and closed (with its reason and duration); warnings
for TLS, socket and accept errors. No message a client sends is ever logged.

With --store, the history is kept in SQLite, loaded before the server listens, and
written by a thread of its own: the event loop never waits for the disk. Durability
(--sync): always = a message is on disk before any client is sent it (readers see it one
commit later); batch = a crash (SIGKILL, OOM) loses at most the entries of the last
~100 ms, a power loss possibly the last commits too; off = as batch, without syncs. A
clean stop (SIGINT, SIGTERM) writes everything before exiting. If the disk fills or
fails, the server keeps serving from memory, warns once a minute, counts what is not
persisted (store_not_persisted in the statistics line), and resumes when it can.
",
        version = kaichat::version(),
        options = settings::options_help(),
    )
}

/// Why the server will not start: a line for stderr, and whether `--help` can help.
enum Refusal {
    /// A flag is wrong.
    Flag(String),
    /// The configuration file is: its error names the file (and the line and key).
    File(String),
}

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal::Flag(message)
    }
}

/// What the command line asks for.
enum Request {
    Run(Settings),
    /// `--print-config`, with where the settings came from.
    PrintConfig(Settings, String),
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

/// Why an argument was left over once every flag took its own.
fn leftover(extra: &str) -> String {
    let value_flags: Vec<&str> = Setting::ALL
        .into_iter()
        .filter(|s| s.takes_value())
        .map(Setting::flag)
        .chain([CONFIG])
        .collect();
    let switches: Vec<&str> = Setting::ALL
        .into_iter()
        .filter(|s| !s.takes_value())
        .map(Setting::flag)
        .chain([PRINT_CONFIG])
        .collect();
    let before_equals = extra.split('=').next().unwrap_or_default();
    if value_flags.contains(&extra) || switches.contains(&extra) {
        format!("{extra}: given more than once")
    } else if extra.contains('=') && value_flags.contains(&before_equals) {
        format!("{before_equals}: put the value after a space, not '='")
    } else if extra.starts_with('-') {
        format!("unknown flag '{extra}'")
    } else {
        format!("unexpected argument '{extra}'")
    }
}

/// The settings: built-in defaults, then the `--config` file, then the flags.
fn parse_args() -> Result<Request, Refusal> {
    let mut args = pico_args::Arguments::from_env();
    if args.contains(["-h", "--help"]) {
        return Ok(Request::Help);
    }
    if args.contains(["-V", "--version"]) {
        return Ok(Request::Version);
    }
    let config = value(&mut args, CONFIG, "a TOML configuration file")?.map(PathBuf::from);
    let print = args.contains(PRINT_CONFIG);
    let mut flags = Vec::new();
    for setting in Setting::ALL {
        let given = if setting.takes_value() {
            value(&mut args, setting.flag(), setting.what())?.map(Some)
        } else {
            args.contains(setting.flag()).then_some(None)
        };
        if let Some(given) = given {
            flags.push((setting, settings::from_flag(setting, given)?));
        }
    }
    if let Some(extra) = args.finish().first() {
        return Err(leftover(&extra.to_string_lossy()).into());
    }
    let mut settings = Settings::default();
    let mut origin = "the built-in defaults".to_string();
    if let Some(path) = &config {
        for (setting, value) in settings::read_file(path).map_err(Refusal::File)? {
            settings.set(setting, value);
        }
        origin.push_str(&format!(", then {}", path.display()));
    }
    if !flags.is_empty() {
        origin.push_str(", then the command line");
    }
    for (setting, value) in flags {
        settings.set(setting, value);
    }
    Ok(if print {
        Request::PrintConfig(settings, origin)
    } else {
        Request::Run(settings)
    })
}

/// Raises the open-file limit and returns how many clients it leaves room for: the default
/// of `max-clients`.
fn fd_clients() -> usize {
    // Without a readable limit, assume the common default of 1024.
    let fd_limit = kaichat::fd_limit::raise().unwrap_or(1024);
    usize::try_from(fd_limit.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX)
}

/// Calls `bind` on each of `candidates` in turn (the addresses of one `--listen` or
/// `--metrics-listen`) and returns what the first that binds gives. The error names every
/// address tried, with why it failed.
fn first_that_binds<T>(
    candidates: &[SocketAddr],
    mut bind: impl FnMut(SocketAddr) -> std::io::Result<T>,
) -> Result<T, String> {
    let mut failures = Vec::new();
    for &addr in candidates {
        match bind(addr) {
            Ok(bound) => return Ok(bound),
            Err(e) => failures.push(format!("{addr} ({e})")),
        }
    }
    Err(format!("cannot listen on {}", failures.join(", nor on ")))
}

/// Binds the first of `candidates` that can be bound; returns the server and the address it
/// listens on.
fn bind_first(config: Config, candidates: &[SocketAddr]) -> Result<(Server, SocketAddr), String> {
    first_that_binds(candidates, |listen| {
        let server = Server::bind(Config {
            listen,
            ..config.clone()
        })?;
        let addr = server.local_addr().unwrap_or(listen);
        Ok((server, addr))
    })
}

/// The process owns its signals: a thread waits for SIGINT or SIGTERM and stops the
/// server, which then closes every client cleanly.
fn stop_on_signals(shutdown: Shutdown, notifier: Option<Arc<Notifier>>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            if signals.forever().next().is_some() {
                if let Some(notifier) = &notifier {
                    tell(notifier, "STOPPING=1");
                }
                shutdown.trigger();
            }
        })?;
    Ok(())
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

/// Binds the metrics endpoint on the first of `--metrics-listen`'s addresses that binds.
fn serve_metrics(server: &mut Server, candidates: &[SocketAddr]) -> Result<SocketAddr, String> {
    first_that_binds(candidates, |addr| server.serve_metrics(addr))
        .map_err(|e| format!("--metrics-listen: {e}"))
}

/// Tells systemd a change of state; a failure is said on stderr and changes nothing else.
fn tell(notifier: &Notifier, state: &str) {
    if let Err(e) = notifier.send(state) {
        eprintln!("kaichat-server: {e}");
    }
}

/// This machine's host name, for the default `--node-id`.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..len]) {
        Ok(name) if ok && !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) => {
            name.to_string()
        }
        _ => "kaichat".to_string(),
    }
}

/// TLS to Redis (`rediss://`): the system's trust store.
fn redis_tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        log::warn!("rediss://: a system certificate could not be loaded: {error}");
    }
    roots.add_parsable_certificates(found.certs);
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(Request::Run(settings)) => settings,
        Ok(Request::PrintConfig(settings, origin)) => {
            return match settings.to_toml(&origin, fd_clients()) {
                Ok(toml) => {
                    print!("{toml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("kaichat-server: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Ok(Request::Help) => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Ok(Request::Version) => {
            println!("kaichat-server {}", kaichat::version());
            return ExitCode::SUCCESS;
        }
        Err(Refusal::Flag(e)) => {
            eprintln!("kaichat-server: {e} (see --help)");
            return ExitCode::from(2);
        }
        Err(Refusal::File(e)) => {
            eprintln!("kaichat-server: {e}");
            return ExitCode::from(2);
        }
    };
    install_logger(settings.log);
    // Raised whether or not max-clients is set: the clients need the descriptors.
    let fd_clients = fd_clients();
    let max_clients = settings.max_clients.unwrap_or(fd_clients);
    let limits = settings.address_limits();

    let dev_pair = settings.cert.is_none() && settings.key.is_none();
    let rules = settings.rules();
    let cert = settings
        .cert
        .unwrap_or_else(|| tls::dev_file(tls::DEV_CERT));
    let key = settings.key.unwrap_or_else(|| tls::dev_file(tls::DEV_KEY));
    let tls_config = if settings.plaintext {
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
    if settings.redis.is_some() && settings.store.is_some() {
        eprintln!(
            "kaichat-server: --store and --redis cannot be used together: in cluster mode a \
             channel's history lives in Redis, shared by every server (see docs/CLUSTER.md)"
        );
        return ExitCode::from(2);
    }
    // The store is opened, checked and loaded before the listener opens: a client is never
    // served from a history that is still loading, and a bad store is a start-up error.
    let store = match &settings.store {
        Some(path) => {
            // A write past RLIMIT_FSIZE must fail with EFBIG (a full disk, to the writer)
            // rather than kill the server.
            // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            let opened = Opened::open(path, settings.history, settings.sync).and_then(|opened| {
                let loaded = opened.load()?;
                let bans = opened.load_bans()?;
                Ok((opened, loaded, bans))
            });
            match opened {
                Ok(store) => Some(store),
                Err(e) => {
                    eprintln!("kaichat-server: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        None => None,
    };
    let oper_hash = match &settings.oper_password_file {
        Some(path) => match kaichat::server::oper::load_hash(path) {
            Ok(phc) => Some(phc),
            Err(e) => {
                eprintln!("kaichat-server: --oper-password-file: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let oper_unusable = oper_hash.is_some() && rules.max_version < 2;
    let candidates = settings.listen.addrs;
    let config = Config {
        listen: candidates[0], // bind_first sets each candidate in turn
        tls: tls_config,
        deadlines: settings.deadlines,
        history: settings.history,
        replay: settings.replay,
        max_clients,
        stats_interval: settings.stats_interval,
        limits,
        rules,
        oper_hash,
    };
    let (mut server, addr) = match bind_first(config, &candidates) {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("kaichat-server: {e}");
            return ExitCode::from(2);
        }
    };
    let mut history = "history in memory".to_string();
    if let (Some((opened, loaded, bans)), Some(path)) = (store, &settings.store) {
        let entries: usize = loaded.iter().map(|c| c.entries.len()).sum();
        let count =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        history = format!(
            "history in {} ({}, {} loaded; sync {})",
            path.display(),
            count(loaded.len(), "channel", "channels"),
            count(entries, "entry", "entries"),
            settings.sync.name()
        );
        if let Err(e) = server.use_store(opened, loaded, bans) {
            eprintln!("kaichat-server: cannot start the store's writer: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(text) = &settings.redis {
        let node_id = settings
            .node_id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", host_name(), addr.port()));
        let url = match RedisUrl::parse(text) {
            Ok(url) => url,
            Err(e) => {
                eprintln!("kaichat-server: --redis: {e}");
                return ExitCode::from(2);
            }
        };
        let tls = url.tls.then(redis_tls_config);
        history = format!(
            "cluster mode: node {node_id}, Redis at {url}, lease {} ms",
            settings.lease_ms
        );
        let cluster = ClusterSettings {
            url,
            node_id,
            lease_ms: settings.lease_ms as u64,
            tls,
        };
        if let Err(e) = server.use_cluster(cluster) {
            eprintln!("kaichat-server: --redis: {e}");
            return ExitCode::from(2);
        }
    }
    let security = if settings.plaintext {
        "PLAINTEXT, no TLS: for debugging and benchmarks only".to_string()
    } else if dev_pair {
        format!(
            "TLS, certificate {}: WARNING: bundled development certificate, do not use in production",
            cert.display()
        )
    } else {
        format!("TLS, certificate {}", cert.display())
    };
    let metrics = match settings
        .metrics_listen
        .as_ref()
        .map(|listen| serve_metrics(&mut server, &listen.addrs))
        .transpose()
    {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("kaichat-server: {e}");
            return ExitCode::from(2);
        }
    };
    let notifier = Notifier::from_env().map(|n| n.map(Arc::new));
    let stopping = notifier.as_ref().ok().and_then(Option::clone);
    // Before READY=1: systemd may send SIGTERM as soon as it hears it.
    if let Err(e) = stop_on_signals(server.shutdown_handle(), stopping) {
        log::error!("cannot install the SIGINT/SIGTERM handlers: {e}");
        return ExitCode::FAILURE;
    }
    // The first line on stderr, which scripts and tests read for the address.
    log::info!("listening on {addr} ({security}; max {max_clients} clients; {history})");
    if settings.redis.is_none() && settings.node_id.is_some() {
        log::warn!("--node-id has no use without --redis: this server is not part of a network");
    }
    if oper_unusable {
        log::warn!(
            "--oper-password-file has no use with --max-version 1: OPER is a version-2 \
             command, unknown to version-1 clients"
        );
    }
    if let Some(metrics) = metrics {
        log::info!("metrics on http://{metrics}/metrics");
    }
    match &notifier {
        Ok(Some(notifier)) => tell(
            notifier,
            &format!("READY=1\nSTATUS=listening on {addr}, max {max_clients} clients"),
        ),
        Ok(None) => {}
        Err(e) => eprintln!("kaichat-server: {e}; systemd is not told that the server is ready"),
    }
    match server.run() {
        Ok(stats) => {
            log::info!("shut down: {stats}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
