//! The command line: flags in, a checked [`Config`] (or help, or the version) out.
//!
//! Every mistake is one line that starts with the flag it is about (`--clients: '-5' is
//! not a number`), so that `main` can print it and exit with status 2. Nothing here opens
//! a socket; the only outside lookup is resolving `--server`'s host name.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::config::{parse_protocol, parse_rate, parse_seconds, parse_share, Config, Protocol};
use crate::sources;

// The port `--server` means when it names none is the contract's, defined once.
use kaichat::DEFAULT_PORT;

/// What `loadgen --help` prints.
pub const HELP: &str = "\
loadgen: simulate many KaiChat clients from one process and measure the server

USAGE:
  loadgen [OPTIONS]

Each client connects (TLS unless --plaintext), runs the set-up (PING, version,
CLIENT_INFO), joins channel @load<i mod K> and, during the steady window, sends a
message every --msg-every seconds with a random phase. How it reads depends on its
protocol version (--protocol):
  1      it QUERYs every --interval seconds (random phase) and reads what the answer
         carries;
  2      it never polls: the server pushes every entry of its channel as it is appended,
         its own messages included (the echo, counted apart); it PINGs every
         --keepalive seconds. Against a server that offers only version 1 such a
         client stops with an error (it does not fall back to polling);
  mixed  both in the same channels: --v2-share percent of each channel's members speak
         version 2, the others version 1, interleaved in joining order.
The run is: ramp (connect everyone), warm-up, steady window (--duration s), end (QUIT
everywhere). Figures of the steady window only are reported as steady.
Latency is measured from each action's scheduled time (free of coordinated omission).
Delivery latency runs from the due time written inside a message to its arrival at
another member: with version 2 the end-to-end push latency; with version 1 it includes
the wait for the reader's next QUERY (up to --interval). Where both versions run, it is
also reported per reader's version (delivery_v1, delivery_v2). Loss is accounted per
member: every message sent to its channel while it was a member must arrive once (or be
declared by a skip notice); a version-2 sender must also get the echo of each of its
own messages; anything received twice is an error.

OPTIONS:
  --server HOST:PORT[,HOST:PORT...]
                       the server: an IPv4 address or a host name, and a port; :PORT
                       alone means 127.0.0.1:PORT, a host alone port 29200
                                                               [127.0.0.1:29200]
                       Several, comma-separated: the nodes of one network (cluster
                       mode). Clients are spread round robin so that each channel's
                       members sit on every node (member j of channel c goes to node
                       (c + j) mod N); loss is accounted network-wide (a message is
                       owed to every member of its channel, whatever its node); the
                       summary counts clients per node.
  --server-pid PID     the server's process id, when it runs on this machine: its CPU
                       time is read at the edges of the connect and steady windows
                       and written to summary.json
  --server-name NAME   name checked in the server certificate (every server's)
                           [the first --server host that is a name, else localhost]
  --clients N          simulated clients                      [100]
  --channels K         channels, clients spread evenly        [10]
  --protocol 1|2|mixed protocol version of the clients (see above)   [1]
  --v2-share PERCENT   with --protocol mixed: percent of each channel's members that
                       speak version 2, 1-99                     [50]
  --interval SECS      QUERY period per version-1 client; fractions allowed; 0 = flat
                       out (next QUERY as soon as the answer is complete)  [3]
  --keepalive SECS     PING period per version-2 client in its channel (the server's
                       idle deadline is 120 s; clients must PING within a quarter of
                       it); 0 = no PING                          [30]
  --warmup SECS        wait between ramp and steady window, so that every client's
                       first QUERY (which carries its channel's replay) is done
                                                       [one --interval, at most 10]
  --duration SECS      steady window after the warm-up          [30]
  --ramp PER_SEC       new connections per second; 0 = as fast as possible [1000]
  --max-setup N        most connections in set-up at once      [1000]
  --msg-every SECS     message period per client in the steady window; 0 = none [0]
  --settle SECS        pause between the end-of-run fence and drain: with several
                       servers a fence answer proves the sender's node took its
                       messages, not yet that every node has them
                                             [0 with one server, 1 with several]
  --sources RANGE      source addresses, round-robin, e.g. 127.0.0.1-127.0.0.40 or a
                       comma list                               [127.0.0.1]
  --ca PEM             CA certificate to trust                  [certs/ca.pem]
  --plaintext          no TLS (the server must run with --plaintext)
  --no-verify          skip the client's certificate and handshake-signature checks
                       (handshake-rate benchmarks on loopback only: the server's work is
                       the same, loadgen's per-handshake CPU is lower)
  --out DIR            write summary.json, *.hgrm and timeline.csv into DIR (checked
                       for writing before the run starts)
  --seed N             seed of the random phases                [1]
  --user-prefix STR    usernames are STR<number>                [lg]
  --first-id N         number of the first client (several processes side by side) [0]
  --timeout SECS       client-side deadline per set-up step and per answer [30]
  --quiet              no progress lines on stderr
  -h, --help           this text
  -V, --version        print the version

Exit status: 0 when the run completed (read the summary for errors), 1 when it could not
run, 2 for a command-line mistake.
";

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

/// The flags still to read; every read names its flag in its error.
struct Flags(pico_args::Arguments);

impl Flags {
    fn value<T>(
        &mut self,
        name: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        self.0
            .opt_value_from_fn(name, parse)
            .map_err(|e| flag_error(name, e))
    }
}

fn flag_error(name: &str, e: pico_args::Error) -> String {
    match e {
        pico_args::Error::OptionWithoutAValue(_) => format!("{name}: a value is required"),
        pico_args::Error::Utf8ArgumentParsingFailed { cause, .. } => format!("{name}: {cause}"),
        pico_args::Error::NonUtf8Argument => format!("{name}: the value is not UTF-8"),
        other => format!("{name}: {other}"),
    }
}

fn number<T: FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))
}

fn text(text: &str) -> Result<String, String> {
    Ok(text.to_string())
}

fn path(text: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(text))
}

fn sources_list(text: &str) -> Result<Vec<Ipv4Addr>, String> {
    sources::parse_sources(text).map_err(|e| e.to_string())
}

/// Where `--server` points, and the host name it gave (if it gave a name rather than an
/// address), which is the default name to check in the server's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub addr: SocketAddr,
    pub name: Option<String>,
}

/// Parses `--server`: `HOST:PORT`, `HOST`, `:PORT`, with HOST an IPv4 address or a name
/// (resolved here, to an IPv4 address: the sources are IPv4).
pub fn parse_server(text: &str) -> Result<Server, String> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("'{port}' is not a port number (1-65535)"))?;
            (host, port)
        }
        None => (text, DEFAULT_PORT),
    };
    if host.contains(':') || host.starts_with('[') {
        return Err(format!(
            "'{text}': IPv6 is not supported (the source addresses are IPv4)"
        ));
    }
    if host.is_empty() {
        return Ok(Server {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            name: None,
        });
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Server {
            addr: SocketAddr::from((ip, port)),
            name: None,
        });
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // The resolver would read "29201" as the address 0.0.114.209.
        return Err(format!(
            "'{text}' is not an address (for a port on this machine write :{host})"
        ));
    }
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?;
    let addr = addrs
        .into_iter()
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("'{host}' has no IPv4 address"))?;
    Ok(Server {
        addr,
        name: Some(host.to_string()),
    })
}

/// Parses `--server`: one server, or several separated by commas (each as
/// [`parse_server`] reads it).
pub fn parse_servers(text: &str) -> Result<Vec<Server>, String> {
    text.split(',')
        .map(|one| {
            let one = one.trim();
            if one.is_empty() {
                return Err(format!("'{text}' has an empty server in its list"));
            }
            parse_server(one)
        })
        .collect()
}

/// Reads the command line (without the program name).
pub fn parse(args: Vec<OsString>) -> Result<Command, String> {
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains(["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if args.contains(["-V", "--version"]) {
        return Ok(Command::Version);
    }
    let mut flags = Flags(args);
    let f = &mut flags;
    let servers = f.value("--server", parse_servers)?.unwrap_or_else(|| {
        vec![Server {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            name: None,
        }]
    });
    let server_name = f
        .value("--server-name", text)?
        .or_else(|| servers.iter().find_map(|s| s.name.clone()))
        .unwrap_or_else(|| "localhost".into());
    let clients = f.value("--clients", number::<u32>)?.unwrap_or(100);
    let channels = f.value("--channels", number::<u32>)?.unwrap_or(10);
    let interval = f
        .value("--interval", parse_seconds)?
        .unwrap_or(Duration::from_secs(3));
    let warmup = f
        .value("--warmup", parse_seconds)?
        .unwrap_or_else(|| interval.min(Duration::from_secs(10)));
    let duration = f
        .value("--duration", parse_seconds)?
        .unwrap_or(Duration::from_secs(30));
    let msg_every = f
        .value("--msg-every", parse_seconds)?
        .unwrap_or(Duration::ZERO);
    let settle = f
        .value("--settle", parse_seconds)?
        .unwrap_or(if servers.len() > 1 {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        });
    let timeout = f
        .value("--timeout", parse_seconds)?
        .unwrap_or(Duration::from_secs(30));
    let ramp = f.value("--ramp", parse_rate)?.unwrap_or(1000.0);
    let max_setup = f.value("--max-setup", number::<u32>)?.unwrap_or(1000);
    let sources = f
        .value("--sources", sources_list)?
        .unwrap_or_else(|| vec![Ipv4Addr::LOCALHOST]);
    let ca = f
        .value("--ca", path)?
        .unwrap_or_else(|| kaichat::tls::DEV_CA.into());
    let out = f.value("--out", path)?;
    let seed = f.value("--seed", number::<u64>)?.unwrap_or(1);
    let user_prefix = f
        .value("--user-prefix", text)?
        .unwrap_or_else(|| "lg".into());
    let first_id = f.value("--first-id", number::<u32>)?.unwrap_or(0);
    let server_pid = f.value("--server-pid", number::<u32>)?;
    let mut protocol = f
        .value("--protocol", parse_protocol)?
        .unwrap_or(Protocol::V1);
    match (f.value("--v2-share", parse_share)?, &mut protocol) {
        (None, _) => {}
        (Some(share), Protocol::Mixed { v2_percent }) => *v2_percent = share,
        (Some(_), _) => return Err("--v2-share: only with --protocol mixed".into()),
    }
    let keepalive = f
        .value("--keepalive", parse_seconds)?
        .unwrap_or(Duration::from_secs(30));
    let mut args = flags.0;
    let plaintext = args.contains("--plaintext");
    let no_verify = args.contains("--no-verify");
    let quiet = args.contains("--quiet");
    let rest = args.finish();
    if let Some(first) = rest.first() {
        return Err(format!("unexpected argument {}", first.to_string_lossy()));
    }
    let config = Config {
        servers: servers.iter().map(|s| s.addr).collect(),
        server_name,
        clients,
        channels,
        interval,
        warmup,
        duration,
        ramp,
        max_setup,
        msg_every,
        settle,
        sources,
        ca,
        plaintext,
        no_verify,
        out,
        seed,
        user_prefix,
        first_id,
        timeout,
        quiet,
        server_pid,
        protocol,
        keepalive,
    };
    config.validate()?;
    Ok(Command::Run(Box::new(config)))
}

#[cfg(test)]
mod tests;
