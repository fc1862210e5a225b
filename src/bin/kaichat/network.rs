//! The network thread: it owns the [`Link`] and the sans-IO [`Client`], turns the person's
//! commands into PDUs, runs the client's clock (deadlines, automatic QUERY, keep-alive PING)
//! and shows every event on the [`Screen`]. The input thread learns what it waits for
//! (name accepted, channel joined, ...) through [`Status`] messages.
//!
//! It wakes at least every [`TICK`] (the socket's read timeout) to look at commands and
//! timers, so a command waits at most that long before it goes out.

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use kaichat_proto::client::{Client, ClientError, Event, Request, ERROR_PREFIX};
use kaichat_proto::names::{ChannelName, Username};
use kaichat_proto::pdu::Pdu;

use crate::link::{Link, Received};
use crate::screen::{sanitize, Line, Screen};

/// The longest the network thread sleeps in a read.
pub const TICK: Duration = Duration::from_millis(20);
/// How long to wait for the server to close after our QUIT.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What the input thread asks for.
#[derive(Debug)]
pub enum Command {
    /// Another username, after the server refused one.
    Name(Username),
    Join(Vec<u8>),
    Leave,
    Say(Vec<u8>),
    /// Send one more QUERY and report [`Status::Drained`] when every answer is in.
    Drain,
    Quit,
}

/// What the input thread may be waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Established,
    NameWanted,
    Joined(String),
    Left(String),
    Refused(Request),
    /// A command could not be sent (the reason was shown).
    NotSent,
    Drained,
    /// After [`Command::Quit`]: the connection is closed.
    Closed,
}

/// Called when the connection is lost or a deadline passes: shows the message and ends the
/// process (the input thread may be blocked in a read that cannot be interrupted).
pub type Fatal = fn(&str) -> !;

struct Network {
    link: Link,
    client: Client,
    commands: Receiver<Command>,
    status: Sender<Status>,
    screen: Screen,
    fatal: Fatal,
    /// PDUs to send, back to back.
    out: Vec<u8>,
    draining: bool,
    /// Only for the hint when a server closes during set-up.
    plaintext: bool,
}

/// Starts the network thread; set-up (PING) begins at once.
pub fn spawn(
    link: Link,
    client: Client,
    screen: Screen,
    fatal: Fatal,
    plaintext: bool,
) -> (Sender<Command>, Receiver<Status>, JoinHandle<()>) {
    let (command_tx, command_rx) = mpsc::channel();
    let (status_tx, status_rx) = mpsc::channel();
    let network = Network {
        link,
        client,
        commands: command_rx,
        status: status_tx,
        screen,
        fatal,
        out: Vec::with_capacity(4 * kaichat_proto::pdu::PDU_LEN),
        draining: false,
        plaintext,
    };
    let handle = thread::spawn(move || network.run());
    (command_tx, status_rx, handle)
}

impl Network {
    fn run(mut self) {
        if let Err(e) = self.link.set_read_timeout(TICK) {
            (self.fatal)(&format!("cannot set up the connection: {e}"));
        }
        self.client.start(Instant::now(), &mut self.out);
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Quit) | Err(TryRecvError::Disconnected) => return self.finish(),
                    Ok(command) => self.apply(command),
                    Err(TryRecvError::Empty) => break,
                }
            }
            if let Err(e) = self.client.poll(Instant::now(), &mut self.out) {
                self.fail(e);
            }
            self.flush();
            match self.link.receive() {
                Ok(Received::Pdu(pdu)) => self.on_pdu(&pdu),
                Ok(Received::Nothing) => {}
                Ok(Received::Closed) if self.plaintext && !self.client.is_established() => (self
                    .fatal)(
                    "the server closed the connection during set-up \
                         (if it serves TLS, leave out --plaintext)",
                ),
                Ok(Received::Closed) => (self.fatal)("the server closed the connection"),
                Err(e) => (self.fatal)(&format!("the connection to the server failed: {e}")),
            }
        }
    }

    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if let Err(e) = self.link.send(&self.out) {
            (self.fatal)(&format!("cannot send to the server: {e}"));
        }
        self.out.clear();
    }

    fn fail(&self, error: ClientError) -> ! {
        (self.fatal)(&match error {
            ClientError::Timeout(_) => format!("the server did not answer in time: {error}"),
            _ => error.to_string(),
        })
    }

    fn apply(&mut self, command: Command) {
        let now = Instant::now();
        let result = match command {
            Command::Name(name) => self.client.offer_name(name, now, &mut self.out),
            // The input thread asks only for channel names it has checked.
            Command::Join(channel) => match ChannelName::new(&channel) {
                Ok(channel) => self.client.join(&channel, now, &mut self.out),
                Err(e) => return self.not_sent(e),
            },
            Command::Leave => self.client.leave(now, &mut self.out),
            Command::Say(text) => self.client.send_message(&text, now, &mut self.out),
            Command::Drain => {
                self.draining = true;
                let sent = self.client.query(now, &mut self.out);
                if sent.is_err() {
                    self.draining = false;
                    let _ = self.status.send(Status::Drained);
                }
                sent
            }
            Command::Quit => Ok(()),
        };
        if let Err(e) = result {
            self.not_sent(e);
        }
    }

    fn not_sent(&mut self, why: impl std::fmt::Display) {
        self.screen.show(Line::Info(format!("not sent: {why}")));
        // Whoever waits for an answer must not wait for one that will not come.
        let _ = self.status.send(Status::NotSent);
    }

    fn on_pdu(&mut self, pdu: &Pdu) {
        let event = match self.client.handle(pdu, Instant::now(), &mut self.out) {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => self.fail(e),
        };
        let (line, status) = match event {
            Event::Pong | Event::VersionAgreed { .. } | Event::Unexpected(_) => return,
            Event::Established { username } => {
                (Line::Established(sanitize(username)), Status::Established)
            }
            Event::NameRejected { reason } => {
                (Line::NameRejected(sanitize(reason)), Status::NameWanted)
            }
            Event::Joined { channel } => {
                let channel = sanitize(channel.as_bytes());
                (Line::Joined(channel.clone()), Status::Joined(channel))
            }
            Event::Left { channel } => {
                let channel = sanitize(channel.as_bytes());
                (Line::Left(channel.clone()), Status::Left(channel))
            }
            Event::Refused { request, reason } => {
                let what = match request {
                    Request::Join => "join",
                    Request::Leave => "leave",
                };
                let line = Line::Refused {
                    what,
                    reason: sanitize(reason),
                };
                (line, Status::Refused(request))
            }
            Event::Message {
                sender,
                channel,
                text,
            } => {
                self.screen.show(Line::Message {
                    sender: sanitize(sender),
                    channel: sanitize(channel),
                    text: sanitize(text),
                });
                return;
            }
            Event::Notice {
                channel,
                text,
                is_error,
            } => {
                self.screen.show(if is_error {
                    Line::Error(sanitize(&text[ERROR_PREFIX.len()..]))
                } else {
                    Line::Notice {
                        channel: sanitize(channel),
                        text: sanitize(text),
                    }
                });
                return;
            }
            Event::UpToDate { .. } => {
                if self.draining && self.client.queries_in_flight() == 0 {
                    self.draining = false;
                    let _ = self.status.send(Status::Drained);
                }
                return;
            }
        };
        self.screen.show(line);
        let _ = self.status.send(status);
    }

    /// QUIT, close_notify, and a short wait for the server to close its side.
    fn finish(mut self) {
        self.client.quit(Instant::now(), &mut self.out);
        if !self.out.is_empty() && self.link.send(&self.out).is_ok() {
            self.link.close();
            let until = Instant::now() + CLOSE_WAIT;
            while Instant::now() < until {
                match self.link.receive() {
                    Ok(Received::Pdu(_)) | Ok(Received::Nothing) => {}
                    Ok(Received::Closed) | Err(_) => break,
                }
            }
        }
        let _ = self.status.send(Status::Closed);
    }
}
