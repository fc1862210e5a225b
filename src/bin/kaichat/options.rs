//! The command line of `kaichat`: what the flags mean and what a mistake looks like (one
//! line on stderr, exit status 2, decided by the caller).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use kaichat_proto::names::{ChannelName, Username};

/// The contract's default port (section 1).
pub const DEFAULT_PORT: u16 = 29200;

pub const HELP: &str = "\
kaichat: the KaiChat v1 terminal client

USAGE:
  kaichat [OPTIONS]

OPTIONS:
  --server HOST[:PORT]     server to connect to [default: localhost:29200]
  --ca PEM                 trust this CA certificate [default: certs/ca.pem when it
                           exists, plus the system's roots]
  --user NAME              username (1-10 printable ASCII bytes) [default: asked]
  --channel @NAME          join this channel right after connecting [default: asked]
  --query-interval SECS    fetch new messages this often while in a channel [default: 3]
  --plaintext              no TLS, for a server started with --plaintext
  -h, --help               print this help

While chatting, a line is a message; these commands work at any prompt:
  !join @name   switch to another channel
  !leave        leave the channel
  !quit         leave and exit (Ctrl-C and Ctrl-D too)
  !help         list the commands

When standard input is not a terminal, kaichat reads it line by line and prints one plain
line per event (see the documentation at the top of src/bin/kaichat.rs); at the end of
input it fetches what is new once more, quits and exits 0.
";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub ca: Option<PathBuf>,
    pub user: Option<Username>,
    pub channel: Option<String>,
    pub query_interval: Duration,
    pub plaintext: bool,
}

/// The outcome of parsing: run, or print the help.
#[derive(Debug)]
pub enum Parsed {
    Run(Options),
    Help,
}

/// Parses the arguments (without the program name).
pub fn parse(args: Vec<OsString>) -> Result<Parsed, String> {
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains(["-h", "--help"]) {
        return Ok(Parsed::Help);
    }
    let plaintext = args.contains("--plaintext");
    let server: Option<String> = args.opt_value_from_str("--server").map_err(flag_error)?;
    let ca: Option<PathBuf> = args
        .opt_value_from_os_str("--ca", |s| Ok::<_, String>(PathBuf::from(s)))
        .map_err(flag_error)?;
    let user: Option<String> = args.opt_value_from_str("--user").map_err(flag_error)?;
    let channel: Option<String> = args.opt_value_from_str("--channel").map_err(flag_error)?;
    let interval: Option<String> = args
        .opt_value_from_str("--query-interval")
        .map_err(flag_error)?;
    let rest = args.finish();
    if let Some(first) = rest.first() {
        return Err(format!(
            "unexpected argument '{}' (see --help)",
            first.to_string_lossy()
        ));
    }

    let (host, port) = match &server {
        Some(s) => split_server(s)?,
        None => ("localhost".to_string(), DEFAULT_PORT),
    };
    let user = match user {
        Some(name) => {
            Some(Username::new(name.as_bytes()).map_err(|e| format!("--user {name}: {e}"))?)
        }
        None => None,
    };
    if let Some(name) = &channel {
        ChannelName::new(name.as_bytes()).map_err(|e| format!("--channel {name}: {e}"))?;
    }
    let query_interval = match interval {
        Some(text) => parse_seconds(&text)
            .ok_or_else(|| format!("--query-interval {text}: expected a number of seconds > 0"))?,
        None => Duration::from_secs(3),
    };
    Ok(Parsed::Run(Options {
        host,
        port,
        ca,
        user,
        channel,
        query_interval,
        plaintext,
    }))
}

fn flag_error(e: pico_args::Error) -> String {
    format!("{e} (see --help)")
}

fn parse_seconds(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs > 0.0 && secs < 1e9).then(|| Duration::from_secs_f64(secs))
}

/// `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 address.
pub fn split_server(text: &str) -> Result<(String, u16), String> {
    let bad = || format!("--server {text}: expected HOST or HOST:PORT");
    let port_of = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("--server {text}: bad port '{p}'"))
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => DEFAULT_PORT,
            _ => port_of(after.strip_prefix(':').ok_or_else(bad)?)?,
        };
        if host.is_empty() {
            return Err(bad());
        }
        return Ok((host.to_string(), port));
    }
    let (host, port) = match text.matches(':').count() {
        0 => (text, DEFAULT_PORT),
        1 => {
            let (host, port) = text.split_once(':').ok_or_else(bad)?;
            (host, port_of(port)?)
        }
        _ => (text, DEFAULT_PORT), // a bare IPv6 address
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(OsString::from).collect())? {
            Parsed::Run(o) => Ok(o),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn defaults() {
        let o = run(&[]).unwrap();
        assert_eq!((o.host.as_str(), o.port), ("localhost", 29200));
        assert_eq!(o.query_interval, Duration::from_secs(3));
        assert!(!o.plaintext && o.user.is_none() && o.channel.is_none() && o.ca.is_none());
    }

    #[test]
    fn all_flags() {
        let o = run(&[
            "--server",
            "example.org:4000",
            "--ca",
            "x.pem",
            "--user",
            "amy",
            "--channel",
            "@rust",
            "--query-interval",
            "0.2",
            "--plaintext",
        ])
        .unwrap();
        assert_eq!((o.host.as_str(), o.port), ("example.org", 4000));
        assert_eq!(o.ca, Some(PathBuf::from("x.pem")));
        assert_eq!(o.user.map(|u| u.to_string()), Some("amy".to_string()));
        assert_eq!(o.channel.as_deref(), Some("@rust"));
        assert_eq!(o.query_interval, Duration::from_millis(200));
        assert!(o.plaintext);
    }

    #[test]
    fn mistakes() {
        assert!(run(&["--bogus"]).unwrap_err().contains("--bogus"));
        assert!(run(&["--server"]).is_err());
        assert!(run(&["--server", "h:0"]).is_err());
        assert!(run(&["--server", "h:x"]).is_err());
        assert!(run(&["--user", "abcdefghijk"]).is_err());
        assert!(run(&["--user", "SERVER"]).is_err());
        assert!(run(&["--channel", "rust"]).is_err());
        assert!(run(&["--query-interval", "0"]).is_err());
        assert!(run(&["--query-interval", "-1"]).is_err());
        assert!(run(&["--query-interval", "nan"]).is_err());
        assert_eq!(run(&["--help"]).unwrap_err(), "help");
    }

    #[test]
    fn servers() {
        assert_eq!(split_server("h").unwrap(), ("h".into(), 29200));
        assert_eq!(split_server("h:1").unwrap(), ("h".into(), 1));
        assert_eq!(split_server("[::1]:7").unwrap(), ("::1".into(), 7));
        assert_eq!(split_server("[::1]").unwrap(), ("::1".into(), 29200));
        assert_eq!(split_server("::1").unwrap(), ("::1".into(), 29200));
        assert!(split_server("").is_err());
        assert!(split_server(":5").is_err());
        assert!(split_server("[::1]x").is_err());
    }
}
