//! The input side of a session: what the person types, what it means, and the waits it
//! implies (set-up, JOIN, LEAVE, the last fetch at the end of input). Everything on the
//! wire is the network thread's; this side asks it, and asks the client state machine
//! where the conversation is.

use std::process::ExitCode;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use kaichat_proto::client::{cut_message, Settings};
use kaichat_proto::names::{ChannelName, Username};
use kaichat_proto::pdu::{ByteOrder, MAX_MESSAGE};

use super::console::{Console, Input};
use super::network::{self, Command, Remote, Shared, Status};
use super::screen::{Line, Screen};
use super::typed::{channel_name, parse_typed, Typed};
use super::{fatal, Config, KEEPALIVE};

/// Longest wait for an answer the input thread needs before going on (set-up, JOIN).
const ANSWER_WAIT: Duration = Duration::from_secs(35);
const COMMANDS: &str = "\
commands:
  !join @name          switch to channel @name (the @ may be left out)
  !leave               leave the current channel
  !list                the open channels, with members and messages kept
  !names [@name]       who is in this channel (or @name); operators are shown @op
  !kick NAME [reason]  remove NAME from this channel (channel operators)
  !ban NAME [reason]   remove NAME and keep them out of this channel (operators)
  !unban NAME          let NAME join this channel again (operators)
  !oper                become a server operator: asks for the password, not shown
  !quit                leave and exit (Ctrl-C and Ctrl-D too)
  !help                this list
  !!text               send a line that starts with ! (here: !text)
any other line is sent as a message to the current channel
(!list, !names, !kick, !ban, !unban and !oper need a server that speaks version 2)";

/// The input side's ends of the network thread.
struct Wire {
    remote: Remote,
    status: Receiver<Status>,
    client: Shared,
}

/// The input side of a session: what the person types, and the waits it implies.
pub struct Chat {
    console: Console,
    screen: Screen,
    interactive: bool,
    link: Option<Wire>,
    /// Messages handed to the network thread, which paces them (`pace.rs`).
    said: u32,
}

/// How set-up ended.
enum SetUp {
    Established,
    NoName,
    Failed,
}

impl Chat {
    pub fn new(console: Console, screen: Screen, interactive: bool) -> Chat {
        Chat {
            console,
            screen,
            interactive,
            link: None,
            said: 0,
        }
    }

    /// Connects, sets up, and chats until the person quits; the exit status to use.
    pub fn run(&mut self, config: Config) -> ExitCode {
        // Version 2 PINGs every KEEPALIVE (a quarter of the default idle deadline). Forced
        // to version 1, a person who asks for frequent queries may be talking to a server
        // with a short idle deadline: out of a channel, PING as often.
        let keepalive = match config.max_version {
            1 => config.query_interval.min(KEEPALIVE),
            _ => KEEPALIVE,
        };
        let settings = Settings {
            order: ByteOrder::Little,
            // Used on version 1 only: on version 2 the server pushes.
            query_interval: Some(config.query_interval),
            keepalive_interval: Some(config.keepalive.unwrap_or(keepalive)),
            max_version: config.max_version,
            ..Settings::default()
        };
        let security = if config.target.tls.is_some() {
            "TLS"
        } else {
            "plaintext"
        };
        if self.interactive {
            let server = config.target.display();
            self.screen
                .show(Line::Info(format!("connecting to {server} ({security})")));
        }
        // Connect first: a server that cannot be reached is said before anything is asked.
        // The name, when not given, is asked once connected; if the person takes longer
        // than the server's set-up deadline, the network thread connects again.
        let spawned = network::spawn(
            config.target,
            settings,
            config.user,
            self.screen.clone(),
            fatal,
        );
        let (remote, status, client, _thread) = match spawned {
            Ok(parts) => parts,
            Err(e) => {
                eprintln!("kaichat: cannot start the network thread: {e}");
                return ExitCode::FAILURE;
            }
        };
        self.link = Some(Wire {
            remote,
            status,
            client,
        });

        match self.set_up() {
            SetUp::Established => {}
            SetUp::NoName => {
                let code = self.no_name();
                return self.quit(code);
            }
            SetUp::Failed => {
                eprintln!("kaichat: the connection ended before a name was accepted");
                return self.quit(ExitCode::FAILURE);
            }
        }
        let mut next_join = config.channel;
        loop {
            if let Some(channel) = next_join.take() {
                self.join(channel);
                continue;
            }
            let prompted_in = self.channel();
            let prompt = match &prompted_in {
                Some(channel) => format!("{channel}> "),
                None => "channel to join (@name)> ".to_string(),
            };
            let line = match self.console.read_line(&prompt) {
                Input::Line(line) => line,
                Input::Interrupted => return self.quit(ExitCode::SUCCESS),
                Input::End if self.interactive => return self.quit(ExitCode::SUCCESS),
                Input::End => {
                    self.send(Command::Drain);
                    // Lines may still wait for their turn (`pace.rs`): give them the time.
                    let paced = Duration::from_secs(u64::from(self.said / super::pace::PER_SEC));
                    let until = Instant::now() + ANSWER_WAIT + paced;
                    if self
                        .wait_until(|s| *s == Status::Drained, Some(until))
                        .is_none()
                    {
                        eprintln!(
                            "kaichat: the connection to the server was not restored by the end \
                             of input: the last messages were not fetched, and lines typed \
                             since it was lost were not sent"
                        );
                        return self.quit(ExitCode::FAILURE);
                    }
                    return self.quit(ExitCode::SUCCESS);
                }
            };
            match parse_typed(&line) {
                Typed::Empty => {}
                Typed::Quit => return self.quit(ExitCode::SUCCESS),
                Typed::Help => self.screen.show(Line::Help(COMMANDS)),
                Typed::Unknown(what) => self.screen.show(Line::Info(format!(
                    "unknown command {what} (!help lists the commands); to send a line \
                     that starts with !, type !! instead"
                ))),
                Typed::Join(channel) => match ChannelName::new(&channel) {
                    Ok(channel) => next_join = Some(channel),
                    Err(e) => self.screen.show(Line::Info(format!("cannot join: {e}"))),
                },
                Typed::Leave => self.leave(),
                Typed::List => self.send(Command::List),
                Typed::Names(None) => self.send(Command::Names(None)),
                Typed::Names(Some(channel)) => match ChannelName::new(&channel) {
                    Ok(channel) => self.send(Command::Names(Some(channel))),
                    Err(e) => self.screen.show(Line::Info(format!("cannot list: {e}"))),
                },
                Typed::Kick(name, reason) => {
                    self.moderate("kick", &name, |target| Command::Kick(target, reason))
                }
                Typed::Ban(name, reason) => {
                    self.moderate("ban", &name, |target| Command::Ban(target, reason))
                }
                Typed::Unban(name) => self.moderate("unban", &name, Command::Unban),
                Typed::Oper => self.oper(),
                Typed::Usage(usage) => self.screen.show(Line::Info(format!("usage: {usage}"))),
                // Removed from the channel (KICK, BAN) while the person typed at its prompt:
                // the line was meant as a message, not as a channel to join.
                Typed::Text(_)
                    if self.interactive && prompted_in.is_some() && self.channel().is_none() =>
                {
                    self.screen.show(Line::Info(format!(
                        "not sent: you are no longer in {}; !join @name to join a channel",
                        prompted_in.unwrap_or_default()
                    )));
                }
                Typed::Text(text) if self.channel().is_none() => {
                    let channel = channel_name(&text);
                    match ChannelName::new(&channel) {
                        Ok(channel) => next_join = Some(channel),
                        Err(e) => self.screen.show(Line::Info(format!(
                            "not in a channel, and that is no channel to join: {e}"
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
                Err(e) => self.screen.show(Line::NameRejected(e.to_string())),
            }
        }
    }

    /// Waits for the name to be accepted, asking for one when the server wants it (first,
    /// or after a refusal). The network thread's deadlines bound every wait.
    fn set_up(&mut self) -> SetUp {
        loop {
            let wanted = |s: &Status| matches!(s, Status::Established | Status::NameWanted);
            match self.wait_until(wanted, None) {
                Some(Status::Established) => return SetUp::Established,
                Some(Status::NameWanted) => match self.ask_name() {
                    Some(name) => self.send(Command::Name(name)),
                    None => return SetUp::NoName,
                },
                _ => return SetUp::Failed,
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

    fn join(&mut self, channel: ChannelName) {
        if self.request(Command::Join(channel)).is_none() {
            self.screen
                .show(Line::Info("no answer from the server to JOIN yet".into()));
        }
    }

    fn leave(&mut self) {
        if self.channel().is_none() {
            self.screen.show(Line::Info("not in a channel".into()));
            return;
        }
        self.request(Command::Leave);
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
        self.said = self.said.saturating_add(1);
    }

    /// `!kick`, `!ban`, `!unban`: the name is checked here, the rest by the server.
    fn moderate(&mut self, what: &str, name: &[u8], command: impl FnOnce(Username) -> Command) {
        match Username::new(name) {
            Ok(target) => self.send(command(target)),
            Err(e) => self.screen.show(Line::Info(format!("cannot {what}: {e}"))),
        }
    }

    /// `!oper`: the password is read without echo (on a terminal) and never kept.
    fn oper(&mut self) {
        // On a terminal, not worth typing a password that cannot be sent. (A script's next
        // line is the password whatever happens: it must never become a chat message.)
        let version = self.link.as_ref().map_or(0, |wire| wire.client.version());
        if version == 1 && self.interactive {
            let e = kaichat_proto::client::ClientError::NeedsVersion2 { agreed: 1 };
            self.screen.show(Line::Info(format!("not sent: {e}")));
            return;
        }
        let Some(password) = self.console.read_secret("operator password: ") else {
            self.screen.show(Line::Info("!oper cancelled".into()));
            return;
        };
        self.send(Command::Oper(password));
    }

    /// The current channel, as the client state machine knows it.
    fn channel(&self) -> Option<String> {
        self.link.as_ref().and_then(|wire| wire.client.channel())
    }

    /// Sends a command whose answer the person waits for, forgetting answers that came
    /// after an earlier wait gave up.
    fn request(&mut self, command: Command) -> Option<Status> {
        if let Some(wire) = &self.link {
            while wire.status.try_recv().is_ok() {}
        }
        self.send(command);
        self.wait_for(|s| *s == Status::Answered)
    }

    fn send(&self, command: Command) {
        if let Some(wire) = &self.link {
            if !wire.remote.send(command) {
                fatal("the connection thread stopped");
            }
        }
    }

    /// Waits until a status matches `done`, or [`ANSWER_WAIT`] passes.
    fn wait_for(&mut self, done: impl Fn(&Status) -> bool) -> Option<Status> {
        self.wait_until(done, Some(Instant::now() + ANSWER_WAIT))
    }

    /// Waits until a status matches `done` (`None` when `until` passes first).
    fn wait_until(
        &mut self,
        done: impl Fn(&Status) -> bool,
        until: Option<Instant>,
    ) -> Option<Status> {
        let wire = self.link.as_ref()?;
        loop {
            let received = match until {
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    wire.status.recv_timeout(left)
                }
                None => wire
                    .status
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            let status = match received {
                Ok(status) => status,
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => return Some(Status::Closed),
            };
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
