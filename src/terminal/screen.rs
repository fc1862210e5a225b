//! What the person sees: every event as one line, either decorated for a terminal (printed
//! above the line being typed through rustyline's external printer) or in the plain,
//! documented format for pipes (see the top of `terminal/mod.rs`).
//!
//! A line that carries a server time stamp (version 2) shows that time, the moment the
//! entry was stored (the real time a replayed line was said); other lines show the time
//! they arrived.
//!
//! Text from the server is never printed raw: control characters are escaped so that a
//! peer cannot move the cursor or garble the line being typed.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// One thing to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Established(String),
    /// The server refused the name; another is asked for.
    NameRejected(String),
    Joined(String),
    Left(String),
    Refused {
        what: &'static str,
        reason: String,
    },
    Message {
        sender: String,
        channel: String,
        text: String,
    },
    Notice {
        channel: String,
        text: String,
    },
    /// An operator removed us from the channel (KICK or BAN); the notice saying who and
    /// why follows.
    Removed(String),
    /// One channel of a `!list` answer.
    Channel {
        channel: String,
        members: u32,
        history: u32,
    },
    /// The end of a `!list` answer: how many channels are open.
    Channels(u32),
    /// A `!names` answer, whole: the channel's operators first, then its other members in
    /// the order they joined.
    Names {
        channel: String,
        operators: Vec<String>,
        members: Vec<String>,
    },
    /// A `!kick`, `!ban` or `!unban` was done (`what` is `kick`, `ban` or `unban`;
    /// `channel` is `*` for the whole server).
    Done {
        what: &'static str,
        channel: String,
        target: String,
    },
    /// `!oper` was accepted: a server operator until the connection ends.
    Operator,
    /// An error notice that is not a refused JOIN/LEAVE or name (text after `error: `).
    Error(String),
    /// A remark of the client itself (a message was cut, an unknown command, ...).
    Info(String),
    /// The client's help text.
    Help(&'static str),
    /// The connection was lost (why, and when the client connects again).
    Disconnected(String),
    /// Set up again after a loss, with this name.
    Reconnected(String),
    Bye,
}

/// Where lines go. Cloned into the network thread; the lock keeps lines whole.
#[derive(Clone)]
pub struct Screen {
    inner: Arc<Mutex<Output>>,
    colour: bool,
}

enum Output {
    Terminal(Box<dyn rustyline::ExternalPrinter + Send>),
    Plain(io::Stdout),
}

impl Screen {
    /// Plain lines on stdout.
    pub fn plain() -> Screen {
        Screen {
            inner: Arc::new(Mutex::new(Output::Plain(io::stdout()))),
            colour: false,
        }
    }

    /// Decorated lines above the prompt.
    pub fn terminal(printer: Box<dyn rustyline::ExternalPrinter + Send>) -> Screen {
        Screen {
            inner: Arc::new(Mutex::new(Output::Terminal(printer))),
            colour: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// Shows one line, at the time it arrives.
    pub fn show(&self, line: Line) {
        self.show_at(line, 0);
    }

    /// Shows one line stamped with `ms` since the Unix epoch (a v2 server's time stamp;
    /// 0: now).
    pub fn show_at(&self, line: Line, ms: u64) {
        let time = clock_at(ms);
        let mut out = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *out {
            Output::Plain(stdout) => {
                let mut text = plain(&line, &time);
                text.push('\n');
                // A closed stdout (the reader went away) is not a reason to stop chatting.
                let _ = stdout.write_all(text.as_bytes());
                let _ = stdout.flush();
            }
            Output::Terminal(printer) => {
                let mut text = decorated(&line, &time, self.colour);
                text.push('\n');
                let _ = printer.print(text);
            }
        }
    }
}

/// Escapes control characters and replaces bytes that are not UTF-8.
pub fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if !text.chars().any(char::is_control) {
        return text.into_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `1 member`, `12 members`.
fn count(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Operators marked `@op`, then the other members, separated by spaces.
fn name_list(operators: &[String], members: &[String]) -> String {
    let marked = operators.iter().map(|op| format!("@{op}"));
    marked
        .chain(members.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `@rust`, or the whole server for `*`.
fn scope(channel: &str) -> &str {
    if channel == "*" {
        "the server"
    } else {
        channel
    }
}

fn or_dash(channel: &str) -> &str {
    if channel.is_empty() {
        "-"
    } else {
        channel
    }
}

/// The plain format, documented at the top of `terminal/mod.rs`.
pub fn plain(line: &Line, time: &str) -> String {
    match line {
        Line::Established(name) => format!("established {name}"),
        Line::NameRejected(reason) => format!("name-rejected {reason}"),
        Line::Joined(channel) => format!("joined {channel}"),
        Line::Left(channel) => format!("left {channel}"),
        Line::Refused { what, reason } => format!("refused {what} {reason}"),
        Line::Message {
            sender,
            channel,
            text,
        } => format!("message {time} {sender} {} {text}", or_dash(channel)),
        Line::Notice { channel, text } => format!("notice {time} {} {text}", or_dash(channel)),
        Line::Removed(channel) => format!("removed {channel}"),
        Line::Channel {
            channel,
            members,
            history,
        } => format!("channel {channel} {members} {history}"),
        Line::Channels(n) => format!("channels {n}"),
        Line::Names {
            channel,
            operators,
            members,
        } => {
            let n = operators.len() + members.len();
            let names = name_list(operators, members);
            format!("names {} {n} {names}", or_dash(channel))
                .trim_end()
                .to_string()
        }
        Line::Done {
            what,
            channel,
            target,
        } => format!("done {what} {} {target}", or_dash(channel)),
        Line::Operator => "operator".to_string(),
        Line::Error(text) => format!("error {time} {text}"),
        Line::Info(text) => format!("info {text}"),
        Line::Help(text) => text
            .lines()
            .map(|l| format!("info {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        Line::Disconnected(why) => format!("disconnected {why}"),
        Line::Reconnected(name) => format!("reconnected {name}"),
        Line::Bye => "bye".to_string(),
    }
}

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// The terminal format: time, channel, sender, text; notices and errors set apart.
pub fn decorated(line: &Line, time: &str, colour: bool) -> String {
    let c = |code: &'static str| if colour { code } else { "" };
    let (dim, bold, reset) = (c(DIM), c(BOLD), c(RESET));
    match line {
        Line::Established(name) => format!("{}-- connected as {name}{reset}", c(GREEN)),
        Line::NameRejected(reason) => {
            format!("{}!! name refused: {reason}{reset}", c(RED))
        }
        Line::Joined(channel) => format!(
            "{}-- joined {channel}; type to chat, !help for commands{reset}",
            c(GREEN)
        ),
        Line::Left(channel) => format!("{}-- left {channel}{reset}", c(GREEN)),
        Line::Refused { what, reason } => {
            format!("{}!! {what} refused: {reason}{reset}", c(RED))
        }
        Line::Message {
            sender,
            channel,
            text,
        } => format!(
            "{dim}{time} {channel}{reset} {bold}{}<{sender}>{reset} {text}",
            c(CYAN)
        ),
        Line::Notice { channel, text } => format!(
            "{dim}{time} {}{reset} {}*** {text}{reset}",
            or_dash(channel),
            c(YELLOW)
        ),
        Line::Removed(channel) => format!("{}!! removed from {channel}{reset}", c(RED)),
        Line::Channel {
            channel,
            members,
            history,
        } => format!(
            "{dim}--{reset} {bold}{channel}{reset}  {}, {}",
            count(*members, "member"),
            count(*history, "message")
        ),
        Line::Channels(0) => format!("{dim}-- no channel is open{reset}"),
        Line::Channels(n) => format!("{dim}-- {} open{reset}", count(*n, "channel")),
        Line::Names {
            channel,
            operators,
            members,
        } => {
            let n = (operators.len() + members.len()) as u32;
            format!(
                "{dim}--{reset} {bold}{channel}{reset} ({}): {}",
                count(n, "name"),
                name_list(operators, members)
            )
        }
        Line::Done {
            what,
            channel,
            target,
        } => {
            let done = match *what {
                "kick" => "kicked from",
                "ban" => "banned from",
                _ => "unbanned in",
            };
            let channel = scope(or_dash(channel));
            format!("{}-- {target} {done} {channel}{reset}", c(GREEN))
        }
        Line::Operator => format!("{}-- you are now a server operator{reset}", c(GREEN)),
        Line::Error(text) => format!("{dim}{time}{reset} {}!! error: {text}{reset}", c(RED)),
        Line::Info(text) => format!("{dim}-- {text}{reset}"),
        Line::Help(text) => text.trim_end().to_string(),
        Line::Disconnected(why) => format!("{}!! disconnected: {why}{reset}", c(RED)),
        Line::Reconnected(name) => format!("{}-- reconnected as {name}{reset}", c(GREEN)),
        Line::Bye => format!("{dim}-- bye{reset}"),
    }
}

/// The local time of day of `ms` since the Unix epoch (0: now), `HH:MM:SS`.
pub fn clock_at(ms: u64) -> String {
    let secs = if ms == 0 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    } else {
        ms / 1000
    };
    let t = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` is plain old data; localtime_r only writes into it and is re-entrant.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let local = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if local {
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    } else {
        let day = secs % 86_400;
        format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60)
    }
}

#[cfg(test)]
mod tests;
