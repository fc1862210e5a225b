//! `kaichat`: the KaiChat v1 terminal client. Argument parsing and wiring only: the chat
//! application is `kaichat::terminal`, the client side of the contract
//! `kaichat_proto::client`.

// A binary's root lives in src/bin/, so its modules are named by path.
#[path = "kaichat/options.rs"]
mod options;

use std::ffi::OsString;
use std::process::ExitCode;

use kaichat::terminal::{self, Config};
use kaichat::tls::{self, Trust};

use options::{Options, Parsed, HELP};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let options = match options::parse(args) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kaichat: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = if options.plaintext {
        None
    } else {
        match tls::client_config(&trust(&options)) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("kaichat: {e}");
                return ExitCode::from(2);
            }
        }
    };
    terminal::run(Config {
        host: options.host,
        port: options.port,
        tls,
        user: options.user,
        channel: options.channel,
        query_interval: options.query_interval,
    })
}

/// `--ca` alone when given; otherwise the development CA when it is there, plus the
/// system's roots.
fn trust(options: &Options) -> Trust {
    match &options.ca {
        Some(ca) => Trust {
            ca: Some(ca.clone()),
            roots: Vec::new(),
        },
        None => Trust {
            ca: Some(tls::dev_file(tls::DEV_CA)).filter(|ca| ca.is_file()),
            // Unreadable system certificates are skipped by the loader itself.
            roots: rustls_native_certs::load_native_certs().certs,
        },
    }
}
