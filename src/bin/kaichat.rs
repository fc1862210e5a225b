//! `kaichat`: the KaiChat terminal client (protocol versions 1 and 2). Argument parsing and wiring only: the chat
//! application is `kaichat::terminal`, the client side of the contract
//! `kaichat_proto::client`.

// A binary's root lives in src/bin/, so its modules are named by path.
#[path = "kaichat/options.rs"]
mod options;

use std::ffi::OsString;
use std::process::ExitCode;

use kaichat::terminal::{self, CaFile, Config, Target};
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
        Ok(Parsed::Version) => {
            println!("kaichat {}", kaichat::version());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kaichat: {e}");
            return ExitCode::from(2);
        }
    };
    let (trust, ca) = trust(&options);
    let tls = if options.plaintext {
        None
    } else {
        match tls::client_config(&trust) {
            Ok(config) => Some(config),
            Err(e) if options.ca.is_some() => {
                eprintln!("kaichat: --ca: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("kaichat: {e}");
                return ExitCode::from(2);
            }
        }
    };
    terminal::run(Config {
        target: Target {
            host: options.host,
            port: options.port,
            tls,
            ca,
        },
        user: options.user,
        channel: options.channel,
        query_interval: options.query_interval,
        keepalive: options.keepalive,
        max_version: options.protocol,
    })
}

/// `--ca` alone when given; otherwise the development CA when it is there, plus the
/// system's roots. The CA file is also named in the error when a certificate is not
/// trusted.
fn trust(options: &Options) -> (Trust, CaFile) {
    if let Some(ca) = &options.ca {
        let trust = Trust {
            ca: Some(ca.clone()),
            roots: Vec::new(),
        };
        return (trust, CaFile::Given(ca.clone()));
    }
    let dev = tls::dev_file(tls::DEV_CA);
    let found = dev.is_file();
    let trust = Trust {
        ca: found.then(|| dev.clone()),
        // Unreadable system certificates are skipped by the loader itself.
        roots: rustls_native_certs::load_native_certs().certs,
    };
    let ca = if found {
        CaFile::Development(dev)
    } else {
        CaFile::NotFound(dev)
    };
    (trust, ca)
}
