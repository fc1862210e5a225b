//! `loadgen`: simulates thousands of KaiChat clients from one single-threaded process and
//! measures the server. This file wires the parts together: `args` reads the command
//! line, `reactor` runs the load, `report` writes what it measured. Unit tests follow the
//! workspace's rule (see the `kaichat` crate's doc): `<module>/tests.rs`.

// serde_json's `json!` for the summary object nests deeper than the default limit.
#![recursion_limit = "256"]

mod alarm;
mod args;
mod clock;
mod config;
mod conn;
mod cpu;
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

use std::process::ExitCode;

use args::Command;

fn main() -> ExitCode {
    let config = match args::parse(std::env::args_os().skip(1).collect()) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("loadgen {}", kaichat::version());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("loadgen: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    // Found out now rather than after a run of many minutes.
    if let Some(dir) = &config.out {
        if let Err(e) = report::check_writable(dir) {
            eprintln!("loadgen: --out {}: cannot write there: {e}", dir.display());
            return ExitCode::from(2);
        }
    }
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
            config.servers_text(),
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
