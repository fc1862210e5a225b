//! The terminal chat application behind `kaichat` (issues 3 and 9): what the person types,
//! what they see, and the connection that carries it. It offers protocol version 2 (the
//! server pushes every entry, the person's own messages included, each with its time
//! stamp) and falls back to version 1 (polling with QUERY) against a v1 server, or when
//! `--protocol 1` forces it. The client side of the contract is
//! `kaichat_proto::client`; `src/bin/kaichat.rs` only parses the command line and calls
//! [`run`].
//!
//! Two threads: the input thread (the caller's, `chat`) reads what the person types and
//! decides what it means; the network thread (`network`) owns the connection and the
//! client state machine, and shows every event on the screen. On a terminal, incoming
//! lines are printed above the line being typed (rustyline's external printer), so typing
//! is never garbled, and a reconnection leaves the line being typed alone.
//!
//! | module | holds | sockets? |
//! |---|---|---|
//! | `chat` | the input side: typed lines to commands, the waits they imply | no |
//! | `typed` | what a typed line means (pure) | no |
//! | `network` | the network thread: `mio::Poll` + `Waker`, the client state machine, reconnection | through `connection` |
//! | `connection` | one connection: non-blocking connect, TLS over `kaichat::transport`, why it ended, in words | yes |
//! | `console` | where lines come from: rustyline, or standard input line by line | no |
//! | `screen` | what the person sees: decorated lines, or the plain format below | no |
//!
//! # Plain mode (standard input is not a terminal)
//! Every input line is a message or a command (`!quit`, `!leave`, `!join @name`, `!list`,
//! `!names [@name]`, `!kick NAME [reason]`, `!ban NAME [reason]`, `!unban NAME`, `!oper`,
//! `!help`; `!!` at the start sends one `!`). After `!oper`, the next input line is the
//! password (on a terminal it is read without echo).
//! When a username is needed (no `--user`, or the server refused it) the next input line is
//! the name; when not in a channel (no `--channel`, or after `!leave`) a line that is not a
//! command is the channel to join (`@` is added when missing). At the end of input,
//! `kaichat` sends one last QUERY, prints its answer, sends QUIT and exits 0.
//!
//! Output is one line per event on standard output, fields separated by one space, with no
//! escape codes. Text from the server has control characters escaped (`\n`, `\u{1b}`) and
//! bytes that are not UTF-8 replaced, so it never spans lines. `TIME` is local `HH:MM:SS`:
//! on version 2 the time the server stored the entry (a replayed line shows when it was
//! said), on version 1 the time it arrived. `CHANNEL` is `-` when the server gave none.
//!
//! ```text
//! established NAME                    the server accepted NAME
//! name-rejected REASON                the name was refused (by the server, or locally
//!                                     when invalid); the next input line is another name
//! joined CHANNEL                      JOIN acknowledged: now in CHANNEL
//! left CHANNEL                        LEAVE acknowledged
//! refused join|leave REASON           the server refused a JOIN or LEAVE
//! refused list|names|kick|ban|unban|oper REASON
//!                                     the server refused a version-2 request
//! message TIME SENDER CHANNEL TEXT    a chat message; on version 2 the person's own
//!                                     messages too (the server's echo)
//! notice TIME CHANNEL TEXT            a notice from SERVER (e.g. "bob joined")
//! error TIME TEXT                     an error notice from SERVER, without "error: "
//! channel CHANNEL MEMBERS HISTORY     one open channel, in a !list answer: its members
//!                                     and the history entries it keeps
//! channels COUNT                      the end of a !list answer
//! names CHANNEL COUNT NAME...         a !names answer: operators first, marked @, then
//!                                     the other members in the order they joined
//! done kick|ban|unban CHANNEL NAME    the server did it (CHANNEL `*`: the whole server)
//! removed CHANNEL                     an operator kicked or banned the person from
//!                                     CHANNEL; a notice saying who and why follows
//! operator                            !oper accepted: a server operator until the
//!                                     connection ends
//! info TEXT                           a remark of the client (message cut, help, a
//!                                     failed attempt to reconnect, ...)
//! disconnected REASON                 the connection was lost after set-up; kaichat
//!                                     connects again with backoff (lines typed meanwhile
//!                                     are sent once it is back)
//! reconnected NAME                    set up again as NAME; `joined CHANNEL` follows when
//!                                     the channel is rejoined
//! bye                                 QUIT sent and the connection closed; the process
//!                                     exits (0 unless set-up failed)
//! ```
//! Fatal problems (server unreachable at start, certificate not trusted or not valid for
//! the name, a connection lost before a name was accepted) are one line on standard error
//! starting with `kaichat: `, and the exit status is 1. So is the end of input while the
//! connection is still being restored. Command-line mistakes are one such line and exit
//! status 2.
//!
//! # Connecting
//! `kaichat` connects first, so that a server that cannot be reached is said before
//! anything is asked, then asks for the name when none was given. The server's set-up
//! deadline is not restarted by a refused name (contract section 7): when the person takes
//! longer than that to type a name, the connection is made again when the name is there,
//! without a word. See `network` for what happens when a connection is lost later.

mod chat;
mod connection;
mod console;
mod network;
mod pace;
mod screen;
mod typed;

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use kaichat_proto::names::{ChannelName, Username};

pub use connection::{CaFile, Target};
pub use typed::channel_name;

use chat::Chat;
use console::Console;

/// What the person asked for on the command line.
#[derive(Clone)]
pub struct Config {
    pub target: Target,
    pub user: Option<Username>,
    pub channel: Option<ChannelName>,
    pub query_interval: Duration,
    /// PING when nothing was sent for this long; `None`: [`KEEPALIVE`] (with
    /// `max_version` 1: the query interval, at most [`KEEPALIVE`]).
    pub keepalive: Option<Duration>,
    /// The highest protocol version to offer: 2, or 1 to force version 1 (polling).
    pub max_version: u16,
}

/// Runs the chat until the person quits or the connection fails; the exit status to use.
pub fn run(config: Config) -> ExitCode {
    let interactive = io::stdin().is_terminal() && io::stdout().is_terminal();
    let (console, screen) = if interactive {
        match Console::terminal() {
            Ok(pair) => pair,
            Err(_) => Console::plain(),
        }
    } else {
        Console::plain()
    };
    Chat::new(console, screen, interactive).run(config)
}

/// The longest default keep-alive: a quarter of the server's default 120-s idle deadline
/// (v1 contract section 7, v2 section 2), whatever the query interval.
pub const KEEPALIVE: Duration = kaichat_proto::client::KEEPALIVE;

/// Ends the process on a fatal error from any thread, leaving the terminal usable.
fn fatal(message: &str) -> ! {
    console::restore_terminal();
    eprintln!("\nkaichat: {message}");
    std::process::exit(1)
}
