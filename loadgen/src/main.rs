//! `loadgen`: simulates thousands of KaiChat clients from one single-threaded process and
//! measures the server (issue 4). This file parses the command line and wires the parts
//! together; the work is in `reactor`.

// serde_json's `json!` for the summary object nests deeper than the default limit.
#![recursion_limit = "256"]

mod alarm;
mod config;
mod conn;
mod fd_limit;
mod ledger;
mod message;
mod reactor;
mod report;
mod schedule;
mod sources;
mod stats;
mod transport;
mod trust;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use config::{parse_rate, parse_seconds, Config};

const HELP: &str = "\
loadgen: simulate many KaiChat clients from one process and measure the server

USAGE:
  loadgen [OPTIONS]

Each client connects (TLS unless --plaintext), runs the set-up (PING, version,
CLIENT_INFO), joins channel @load<i mod K>, then QUERYs every --interval seconds with a
random phase, and sends a message every --msg-every seconds during the steady window.
The run is: ramp (connect everyone), warm-up, steady window (--duration s), end (QUIT
everywhere). Figures of the steady window only are reported as steady.
Latency is measured from each action's scheduled time (free of coordinated omission).

OPTIONS:
  --server ADDR        server address                         [127.0.0.1:29200]
  --server-name NAME   name checked in the server certificate [localhost]
  --clients N          simulated clients                      [100]
  --channels K         channels, clients spread evenly        [10]
  --interval SECS      QUERY period per client; fractions allowed; 0 = flat out (next
                       QUERY as soon as the answer is complete)  [3]
  --warmup SECS        wait between ramp and steady window, so that every client's
                       first QUERY (which carries its channel's replay) is done
                                                       [one --interval, at most 10]
  --duration SECS      steady window after the warm-up          [30]
  --ramp PER_SEC       new connections per second; 0 = as fast as possible [1000]
  --max-setup N        most connections in set-up at once      [1000]
  --msg-every SECS     message period per client in the steady window; 0 = none [0]
  --sources RANGE      source addresses, round-robin, e.g. 127.0.0.1-127.0.0.40 or a
                       comma list                               [127.0.0.1]
  --ca PEM             CA certificate to trust                  [certs/ca.pem]
  --plaintext          no TLS (the server must run with --plaintext)
  --no-verify          skip the client's certificate and handshake-signature checks
                       (handshake-rate benchmarks on loopback only: the server's work is
                       the same, loadgen's per-handshake CPU is lower)
  --out DIR            write summary.json, *.hgrm and timeline.csv into DIR
  --seed N             seed of the random phases                [1]
  --user-prefix STR    usernames are STR<number>                [lg]
  --first-id N         number of the first client (several processes side by side) [0]
  --timeout SECS       client-side deadline per set-up step and per answer [30]
  --quiet              no progress lines on stderr
  -h, --help           this text

Exit status: 0 when the run completed (read the summary for errors), 1 when it could not
run, 2 for a command-line mistake.
";

fn parse_args() -> Result<Option<Config>, String> {
    let mut args = pico_args::Arguments::from_env();
    if args.contains(["-h", "--help"]) {
        return Ok(None);
    }
    let text = |e: pico_args::Error| e.to_string();
    let server: SocketAddr = args
        .opt_value_from_str("--server")
        .map_err(text)?
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 29200)));
    let server_name: String = args
        .opt_value_from_str("--server-name")
        .map_err(text)?
        .unwrap_or_else(|| "localhost".into());
    let clients: u32 = args
        .opt_value_from_str("--clients")
        .map_err(text)?
        .unwrap_or(100);
    let channels: u32 = args
        .opt_value_from_str("--channels")
        .map_err(text)?
        .unwrap_or(10);
    let seconds = |args: &mut pico_args::Arguments, name: &'static str, default: Duration| {
        args.opt_value_from_fn(name, parse_seconds)
            .map_err(|e| e.to_string())
            .map(|v| v.unwrap_or(default))
    };
    let interval = seconds(&mut args, "--interval", Duration::from_secs(3))?;
    let warmup = seconds(&mut args, "--warmup", interval.min(Duration::from_secs(10)))?;
    let duration = seconds(&mut args, "--duration", Duration::from_secs(30))?;
    let msg_every = seconds(&mut args, "--msg-every", Duration::ZERO)?;
    let timeout = seconds(&mut args, "--timeout", Duration::from_secs(30))?;
    let ramp = args
        .opt_value_from_fn("--ramp", parse_rate)
        .map_err(text)?
        .unwrap_or(1000.0);
    let max_setup: u32 = args
        .opt_value_from_str("--max-setup")
        .map_err(text)?
        .unwrap_or(1000);
    let sources = args
        .opt_value_from_fn("--sources", sources::parse_sources)
        .map_err(text)?
        .unwrap_or_else(|| vec![std::net::Ipv4Addr::LOCALHOST]);
    let ca: PathBuf = args
        .opt_value_from_str("--ca")
        .map_err(text)?
        .unwrap_or_else(|| kaichat::tls::DEV_CA.into());
    let plaintext = args.contains("--plaintext");
    let no_verify = args.contains("--no-verify");
    let quiet = args.contains("--quiet");
    let out: Option<PathBuf> = args.opt_value_from_str("--out").map_err(text)?;
    let seed: u64 = args
        .opt_value_from_str("--seed")
        .map_err(text)?
        .unwrap_or(1);
    let user_prefix: String = args
        .opt_value_from_str("--user-prefix")
        .map_err(text)?
        .unwrap_or_else(|| "lg".into());
    let first_id: u32 = args
        .opt_value_from_str("--first-id")
        .map_err(text)?
        .unwrap_or(0);
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!("unexpected argument {:?}", rest[0]));
    }
    let config = Config {
        server,
        server_name,
        clients,
        channels,
        interval,
        warmup,
        duration,
        ramp,
        max_setup,
        msg_every,
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
    };
    config.validate()?;
    Ok(Some(config))
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("loadgen: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    let fd_limit = match kaichat::fd_limit::raise() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("loadgen: cannot read the open-file limit: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = fd_limit::check_fit(
        u64::from(config.clients),
        fd_limit,
        config.sources.len() as u64,
        u64::from(sources::ephemeral_ports()),
    ) {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    let tls = if config.plaintext {
        None
    } else {
        let trust = kaichat::tls::Trust {
            ca: Some(config.ca.clone()),
            roots: Vec::new(),
        };
        match kaichat::tls::client_config(&trust) {
            Ok(base) => Some(trust::client_config(&base, config.no_verify)),
            Err(e) => {
                eprintln!("loadgen: {e}");
                return ExitCode::from(2);
            }
        }
    };
    if !config.quiet {
        eprintln!(
            "loadgen: {} clients → {} ({}), {} channels, interval {} s, ramp {}/s, steady {} s, \
             {} source address(es), fd limit {fd_limit}",
            config.clients,
            config.server,
            if config.plaintext { "plaintext" } else { "TLS" },
            config.channels,
            config.interval.as_secs_f64(),
            config.ramp,
            config.duration.as_secs_f64(),
            config.sources.len(),
        );
    }
    let outcome = match reactor::run(&config, tls) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    };
    print!("{}", report::summary_table(&config, &outcome));
    if let Some(dir) = &config.out {
        if let Err(e) = report::write_out(dir, &config, &outcome) {
            eprintln!("loadgen: cannot write {}: {e}", dir.display());
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
