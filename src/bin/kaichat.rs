//! `kaichat`: the KaiChat v1 terminal client (issue 3). Argument parsing and wiring only;
//! the client side of the contract is `kaichat_proto::client`.
//!
//! Two threads: the input thread (this one) reads what the person types and decides what
//! it means; the network thread (`network`) owns the connection and the client state
//! machine, and shows every event on the screen. On a terminal, incoming lines are printed
//! above the line being typed (rustyline's external printer), so typing is never garbled.
//!
//! # Plain mode (standard input is not a terminal)
//! Every input line is a message or a command (`!quit`, `!leave`, `!join @name`, `!help`).
//! When a username is needed (no `--user`, or the server refused it) the next input line is
//! the name; when not in a channel (no `--channel`, or after `!leave`) a line that is not a
//! command is the channel to join (`@` is added when missing). At the end of input,
//! `kaichat` sends one last QUERY, prints its answer, sends QUIT and exits 0.
//!
//! Output is one line per event on standard output, fields separated by one space, with no
//! escape codes. Text from the server has control characters escaped (`\n`, `\u{1b}`) and
//! bytes that are not UTF-8 replaced, so it never spans lines. `TIME` is local `HH:MM:SS`;
//! `CHANNEL` is `-` when the server gave none.
//!
//! ```text
//! established NAME                    the server accepted NAME
//! name-rejected REASON                the name was refused (by the server, or locally
//!                                     when invalid); the next input line is another name
//! joined CHANNEL                      JOIN acknowledged: now in CHANNEL
//! left CHANNEL                        LEAVE acknowledged
//! refused join|leave REASON           the server refused a JOIN or LEAVE
//! message TIME SENDER CHANNEL TEXT    a chat message from another user
//! notice TIME CHANNEL TEXT            a notice from SERVER (e.g. "bob joined")
//! error TIME TEXT                     an error notice from SERVER, without "error: "
//! info TEXT                           a remark of the client (message cut, help, ...)
//! bye                                 QUIT sent and the connection closed; the process
//!                                     exits (0 unless set-up failed)
//! ```
//! Fatal problems (server unreachable, certificate not trusted, connection lost) are one
//! line on standard error starting with `kaichat: `, and the exit status is 1. Command-line
//! mistakes are one such line and exit status 2.

// A binary's root lives in src/bin/, so its modules are named by path.
#[path = "kaichat/console.rs"]
mod console;
#[path = "kaichat/link.rs"]
mod link;
#[path = "kaichat/network.rs"]
mod network;
#[path = "kaichat/options.rs"]
mod options;
#[path = "kaichat/screen.rs"]
mod screen;

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use kaichat::tls::{self, Trust};
use kaichat_proto::client::{cut_message, Client, Request, Settings};
use kaichat_proto::names::{ChannelName, Username};
use kaichat_proto::pdu::{ByteOrder, MAX_MESSAGE};

use console::{Console, Input};
use link::{display_server, Link};
use network::{Command, Status};
use options::{Options, Parsed, HELP};
use screen::{Line, Screen};

/// Longest wait for an answer the input thread needs before going on (set-up, JOIN).
const ANSWER_WAIT: Duration = Duration::from_secs(35);
/// Keep-alive when not in a channel: well inside the server's 120 s idle deadline.
const KEEPALIVE: Duration = Duration::from_secs(30);

const COMMANDS: &str = "\
commands:
  !join @name   switch to channel @name
  !leave        leave the current channel
  !quit         leave and exit (Ctrl-C and Ctrl-D too)
  !help         this list
any other line is sent as a message to the current channel";

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

    let interactive = io::stdin().is_terminal() && io::stdout().is_terminal();
    let (console, screen) = if interactive {
        match Console::terminal() {
            Ok(pair) => pair,
            Err(_) => Console::plain(),
        }
    } else {
        Console::plain()
    };
    let mut chat = Chat {
        console,
        screen,
        interactive,
        channel: None,
        link: None,
    };
    chat.run(options, tls)
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
            ca: Path::new(tls::DEV_CA)
                .is_file()
                .then(|| PathBuf::from(tls::DEV_CA)),
            // Unreadable system certificates are skipped by the loader itself.
            roots: rustls_native_certs::load_native_certs().certs,
        },
    }
}

/// Ends the process on a fatal error from any thread, leaving the terminal usable.
fn fatal(message: &str) -> ! {
    console::restore_terminal();
    eprintln!("\nkaichat: {message}");
    std::process::exit(1)
}

/// The channel to the network thread.
struct Wire {
    commands: Sender<Command>,
    status: Receiver<Status>,
}

/// The input side of a session: what the person types, and the waits it implies.
struct Chat {
    console: Console,
    screen: Screen,
    interactive: bool,
    /// The current channel, as the server acknowledged it.
    channel: Option<String>,
    link: Option<Wire>,
}

/// How set-up ended.
enum SetUp {
    Established,
    NoName,
    TimedOut,
}

/// What a typed line means.
#[derive(Debug, PartialEq, Eq)]
enum Typed {
    Empty,
    Quit,
    Help,
    Leave,
    Join(Vec<u8>),
    Unknown(String),
    Text(Vec<u8>),
}

fn parse_typed(line: &[u8]) -> Typed {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return Typed::Empty;
    }
    if trimmed.first() != Some(&b'!') {
        return Typed::Text(line.to_vec());
    }
    let mut words = trimmed
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let command = words.next().unwrap_or_default();
    let argument = words.next();
    match (command, argument) {
        (b"!quit", None) => Typed::Quit,
        (b"!help", None) => Typed::Help,
        (b"!leave", None) => Typed::Leave,
        (b"!join", Some(channel)) if words.next().is_none() => Typed::Join(channel.to_vec()),
        _ => Typed::Unknown(String::from_utf8_lossy(trimmed).into_owned()),
    }
}

/// A channel name as typed: `@` added when missing.
fn channel_name(typed: &[u8]) -> Vec<u8> {
    let typed = typed.trim_ascii();
    if typed.first() == Some(&b'@') {
        typed.to_vec()
    } else {
        [b"@", typed].concat()
    }
}

impl Chat {
    fn run(
        &mut self,
        options: Options,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> ExitCode {
        // The name is asked before connecting, so the server's set-up deadlines do not run
        // while the person types.
        let name = match options.user {
            Some(name) => name,
            None => match self.ask_name() {
                Some(name) => name,
                None => return self.no_name(),
            },
        };
        let server = display_server(&options.host, options.port);
        let link = match Link::connect(&options.host, options.port, tls) {
            Ok(link) => link,
            Err(e) => {
                eprintln!("kaichat: {e}");
                return ExitCode::FAILURE;
            }
        };
        if self.interactive {
            let security = if options.plaintext {
                "plaintext"
            } else {
                "TLS"
            };
            self.screen
                .show(Line::Info(format!("connected to {server} ({security})")));
        }
        let mut client = Client::new(Settings {
            order: ByteOrder::Little,
            query_interval: Some(options.query_interval),
            keepalive_interval: Some(KEEPALIVE),
            ..Settings::default()
        });
        // Kept until the version is agreed; nothing is sent here.
        let _ = client.offer_name(name, Instant::now(), &mut Vec::<u8>::new());
        let (commands, status, _thread) =
            network::spawn(link, client, self.screen.clone(), fatal, options.plaintext);
        self.link = Some(Wire { commands, status });

        match self.set_up() {
            SetUp::Established => {}
            SetUp::NoName => {
                let code = self.no_name();
                return self.quit(code);
            }
            SetUp::TimedOut => {
                eprintln!("kaichat: the server did not accept a name in time");
                return self.quit(ExitCode::FAILURE);
            }
        }
        let mut next_join = options.channel.map(String::into_bytes);
        loop {
            if let Some(channel) = next_join.take() {
                self.join(channel);
                continue;
            }
            let prompt = match &self.channel {
                Some(channel) => format!("{channel}> "),
                None => "channel to join (@name)> ".to_string(),
            };
            let line = match self.console.read_line(&prompt) {
                Input::Line(line) => line,
                Input::Interrupted => return self.quit(ExitCode::SUCCESS),
                Input::End if self.interactive => return self.quit(ExitCode::SUCCESS),
                Input::End => {
                    self.send(Command::Drain);
                    self.wait_for(|s| *s == Status::Drained);
                    return self.quit(ExitCode::SUCCESS);
                }
            };
            match parse_typed(&line) {
                Typed::Empty => {}
                Typed::Quit => return self.quit(ExitCode::SUCCESS),
                Typed::Help => self.screen.show(Line::Help(COMMANDS)),
                Typed::Unknown(what) => self.screen.show(Line::Info(format!(
                    "unknown command {what}; !help lists the commands"
                ))),
                Typed::Join(channel) => match ChannelName::new(&channel) {
                    Ok(_) => next_join = Some(channel),
                    Err(e) => self.screen.show(Line::Info(format!(
                        "cannot join {}: {e}",
                        String::from_utf8_lossy(&channel)
                    ))),
                },
                Typed::Leave => self.leave(),
                Typed::Text(text) if self.channel.is_none() => {
                    let channel = channel_name(&text);
                    match ChannelName::new(&channel) {
                        Ok(_) => next_join = Some(channel),
                        Err(e) => self.screen.show(Line::Info(format!(
                            "not in a channel, and {} is no channel name ({e}); \
                             type @name to join one",
                            String::from_utf8_lossy(&channel)
                        ))),
                    }
                }
                Typed::Text(text) => self.say(&text),
            }
        }
    }

    /// Asks for a username until a valid one is typed; `None` at the end of input.
    fn ask_name(&mut self) -> Option<Username> {
        loop {
            let line = match self.console.read_line("your name: ") {
                Input::Line(line) => line,
                Input::End | Input::Interrupted => return None,
            };
            let typed = line.trim_ascii();
            if typed == b"!quit" {
                return None;
            }
            match Username::new(typed) {
                Ok(name) => return Some(name),
                Err(e) => self.screen.show(Line::NameRejected(format!(
                    "{}: {e} (1 to 10 printable ASCII characters, no spaces)",
                    String::from_utf8_lossy(typed)
                ))),
            }
        }
    }

    /// Waits for the name to be accepted, asking for another after each refusal.
    fn set_up(&mut self) -> SetUp {
        loop {
            match self.wait_for(|s| matches!(s, Status::Established | Status::NameWanted)) {
                Some(Status::Established) => return SetUp::Established,
                Some(Status::NameWanted) => match self.ask_name() {
                    Some(name) => self.send(Command::Name(name)),
                    None => return SetUp::NoName,
                },
                _ => return SetUp::TimedOut,
            }
        }
    }

    /// The person gave up at the name prompt (fine, exit 0), or a script ran out of input
    /// before a name was accepted (an error).
    fn no_name(&self) -> ExitCode {
        if self.interactive {
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "kaichat: no username accepted before the end of input \
                 (pass --user NAME or write the name as an input line)"
            );
            ExitCode::FAILURE
        }
    }

    fn join(&mut self, channel: Vec<u8>) {
        self.send(Command::Join(channel));
        let done = self.wait_for(|s| {
            matches!(
                s,
                Status::Joined(_) | Status::Refused(Request::Join) | Status::NotSent
            )
        });
        if done.is_none() {
            self.screen
                .show(Line::Info("no answer from the server to JOIN yet".into()));
        }
    }

    fn leave(&mut self) {
        if self.channel.is_none() {
            self.screen.show(Line::Info("not in a channel".into()));
            return;
        }
        self.send(Command::Leave);
        self.wait_for(|s| {
            matches!(
                s,
                Status::Left(_) | Status::Refused(Request::Leave) | Status::NotSent
            )
        });
    }

    fn say(&mut self, text: &[u8]) {
        let (text, cut) = cut_message(text);
        if cut {
            self.screen.show(Line::Info(format!(
                "message too long: only its first {} bytes were sent (the limit is {MAX_MESSAGE})",
                text.len()
            )));
        }
        if text.contains(&0) {
            self.screen.show(Line::Info(
                "message not sent: it contains a NUL byte".into(),
            ));
            return;
        }
        self.send(Command::Say(text.to_vec()));
    }

    fn send(&self, command: Command) {
        if let Some(wire) = &self.link {
            if wire.commands.send(command).is_err() {
                fatal("the connection thread stopped");
            }
        }
    }

    /// Waits until a status matches `done` (or the wait is too long), keeping track of the
    /// channel from every status that passes by.
    fn wait_for(&mut self, done: impl Fn(&Status) -> bool) -> Option<Status> {
        let until = Instant::now() + ANSWER_WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let status = match self.link.as_ref().map(|w| w.status.recv_timeout(left)) {
                Some(Ok(status)) => status,
                Some(Err(RecvTimeoutError::Timeout)) | None => return None,
                Some(Err(RecvTimeoutError::Disconnected)) => return Some(Status::Closed),
            };
            match &status {
                Status::Joined(channel) => self.channel = Some(channel.clone()),
                Status::Left(_) => self.channel = None,
                _ => {}
            }
            if done(&status) || status == Status::Closed {
                return Some(status);
            }
        }
    }

    /// Sends QUIT, waits for the connection to close, says bye.
    fn quit(&mut self, code: ExitCode) -> ExitCode {
        if self.link.is_some() {
            self.send(Command::Quit);
            self.wait_for(|s| *s == Status::Closed);
        }
        self.screen.show(Line::Bye);
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lines() {
        assert_eq!(parse_typed(b""), Typed::Empty);
        assert_eq!(parse_typed(b"   "), Typed::Empty);
        assert_eq!(parse_typed(b"hello"), Typed::Text(b"hello".to_vec()));
        assert_eq!(parse_typed(b" hi "), Typed::Text(b" hi ".to_vec()));
        assert_eq!(parse_typed(b"!quit"), Typed::Quit);
        assert_eq!(parse_typed(b" !quit "), Typed::Quit);
        assert_eq!(parse_typed(b"!help"), Typed::Help);
        assert_eq!(parse_typed(b"!leave"), Typed::Leave);
        assert_eq!(parse_typed(b"!join @x"), Typed::Join(b"@x".to_vec()));
        assert_eq!(parse_typed(b"!join  @x "), Typed::Join(b"@x".to_vec()));
        assert!(matches!(parse_typed(b"!join"), Typed::Unknown(_)));
        assert!(matches!(parse_typed(b"!join @a @b"), Typed::Unknown(_)));
        assert!(matches!(parse_typed(b"!nope"), Typed::Unknown(_)));
    }

    #[test]
    fn channel_names_get_an_at() {
        assert_eq!(channel_name(b"rust"), b"@rust");
        assert_eq!(channel_name(b" @rust "), b"@rust");
    }
}
