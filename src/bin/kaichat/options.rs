//! The command line of `kaichat`: what the flags mean and what a mistake looks like (one
//! line on stderr, exit status 2, decided by the caller).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use kaichat::terminal::channel_name;
use kaichat_proto::names::{ChannelName, Username};

pub use kaichat::DEFAULT_PORT;

pub const HELP: &str = "\
kaichat: the KaiChat terminal client (protocol version 2, or 1 with a v1 server)

USAGE:
  kaichat [OPTIONS]

OPTIONS:
  --server HOST[:PORT]     server to connect to: a host name or address, with an
                           optional port; :PORT alone is localhost [default:
                           localhost:29200]
  --ca PEM                 trust this CA certificate [default: the development CA
                           certs/ca.pem, looked for in the working directory and then
                           in the source tree kaichat was built from, plus the
                           system's roots]
  --user NAME              username (1-10 printable ASCII bytes) [default: asked once
                           connected]
  --channel @NAME          join this channel right after connecting; the @ may be
                           left out [default: asked]
  --protocol 1|2           the highest protocol version to offer: 2 gets messages
                           the moment they are sent, your own included, each with
                           the time it was said; 1 forces version 1 (polling) even
                           with a version-2 server [default: 2; a version-1 server
                           gets version 1]
  --query-interval SECS    on version 1, fetch new messages this often while in a
                           channel [default: 3]
  --keepalive SECS         send PING when nothing was sent for this long, so that the
                           server's idle deadline never passes; keep it below a
                           quarter of that deadline [default: 30; with --protocol 1:
                           the query interval, at most 30]
  --plaintext              no TLS, for a server started with --plaintext
  -h, --help               print this help
  -V, --version            print the version

While chatting, a line is a message; these commands work at any prompt:
  !join @name          switch to another channel (the @ may be left out)
  !leave               leave the channel
  !list                the open channels, with members and messages kept
  !names [@name]       who is in this channel (or @name); operators shown @op
  !kick NAME [reason]  remove NAME from this channel (channel operators)
  !ban NAME [reason]   remove NAME and keep them out of this channel
  !unban NAME          let NAME join this channel again
  !oper                become a server operator: asks for the password without
                       showing it
  !quit                leave and exit (Ctrl-C and Ctrl-D too)
  !help                list the commands
  !!text               send a line that starts with ! (here: !text)
!list, !names, !kick, !ban, !unban and !oper need version 2.

If the connection is lost, kaichat says why and connects again (waiting longer after
each failed attempt), rejoins the channel and sends what was typed meanwhile.

When standard input is not a terminal, kaichat reads it line by line and prints one plain
line per event (see the documentation at the top of src/terminal/mod.rs); at the end of
input it fetches what is new once more, quits and exits 0.
";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub ca: Option<PathBuf>,
    pub user: Option<Username>,
    pub channel: Option<ChannelName>,
    pub query_interval: Duration,
    /// `None`: the terminal's default (30 s; with version 1 forced, the query interval,
    /// at most 30 s).
    pub keepalive: Option<Duration>,
    /// `--protocol`: the highest version to offer, 1 or 2.
    pub protocol: u16,
    pub plaintext: bool,
}

/// The outcome of parsing: run, or print the help or the version.
#[derive(Debug)]
pub enum Parsed {
    Run(Options),
    Help,
    Version,
}

/// Parses the arguments (without the program name). Every mistake names its flag.
pub fn parse(args: Vec<OsString>) -> Result<Parsed, String> {
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains(["-h", "--help"]) {
        return Ok(Parsed::Help);
    }
    if args.contains(["-V", "--version"]) {
        return Ok(Parsed::Version);
    }
    let plaintext = args.contains("--plaintext");
    let server = value(&mut args, "--server")?;
    let ca: Option<PathBuf> = args
        .opt_value_from_os_str("--ca", |s| Ok::<_, String>(PathBuf::from(s)))
        .map_err(|e| flag_error("--ca", e))?;
    let user = value(&mut args, "--user")?;
    let channel = value(&mut args, "--channel")?;
    let interval = value(&mut args, "--query-interval")?;
    let keepalive = value(&mut args, "--keepalive")?;
    let protocol = value(&mut args, "--protocol")?;
    let rest = args.finish();
    if let Some(first) = rest.first() {
        return Err(format!(
            "unexpected argument '{}' (see --help)",
            first.to_string_lossy()
        ));
    }

    let (host, port) = match &server {
        Some(s) => split_server(s).map_err(|e| format!("--server: '{s}' {e}"))?,
        None => ("localhost".to_string(), DEFAULT_PORT),
    };
    let user = match user {
        Some(name) => Some(Username::new(name.as_bytes()).map_err(|e| format!("--user: {e}"))?),
        None => None,
    };
    let channel = match channel {
        Some(typed) => Some(
            ChannelName::new(&channel_name(typed.as_bytes()))
                .map_err(|e| format!("--channel: {e}"))?,
        ),
        None => None,
    };
    let query_interval = match interval {
        Some(text) => seconds("--query-interval", &text)?,
        None => Duration::from_secs(3),
    };
    let keepalive = match keepalive {
        Some(text) => Some(seconds("--keepalive", &text)?),
        None => None,
    };
    let protocol = match protocol.as_deref().map(str::trim) {
        None => kaichat_proto::pdu::PROTOCOL_VERSION,
        Some("1") => 1,
        Some("2") => 2,
        Some(other) => return Err(format!("--protocol: '{other}' is not a version (1 or 2)")),
    };
    Ok(Parsed::Run(Options {
        host,
        port,
        ca,
        user,
        channel,
        query_interval,
        keepalive,
        protocol,
        plaintext,
    }))
}

/// A flag's value as text.
fn value(args: &mut pico_args::Arguments, flag: &'static str) -> Result<Option<String>, String> {
    args.opt_value_from_str(flag)
        .map_err(|e| flag_error(flag, e))
}

fn flag_error(flag: &str, e: pico_args::Error) -> String {
    match e {
        pico_args::Error::OptionWithoutAValue(_) => {
            format!("{flag}: a value is needed (see --help)")
        }
        pico_args::Error::NonUtf8Argument | pico_args::Error::Utf8ArgumentParsingFailed { .. } => {
            format!("{flag}: the value is not valid UTF-8")
        }
        other => format!("{flag}: {other} (see --help)"),
    }
}

/// A positive number of seconds, fractions allowed.
fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs > 0.0 && *secs < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag}: '{text}' is not a number of seconds greater than 0"))
}

/// `HOST`, `HOST:PORT`, `:PORT` (localhost), `[V6]`, `[V6]:PORT` or a bare IPv6 address.
/// The error completes "--server: 'TEXT' ".
pub fn split_server(text: &str) -> Result<(String, u16), String> {
    const FORMS: &str = "HOST, HOST:PORT or :PORT";
    let bad = || format!("is not a server address (expected {FORMS})");
    let port_of = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("has a bad port '{p}' (a number from 1 to 65535)"))
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
            let host = if host.is_empty() { "localhost" } else { host };
            (host, port_of(port)?)
        }
        _ => (text, DEFAULT_PORT), // a bare IPv6 address
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
#[path = "options/tests.rs"]
mod tests;
