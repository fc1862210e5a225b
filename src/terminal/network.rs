//! The network thread: it owns the [`Connection`] and drives the sans-IO [`Client`]; it
//! turns the person's commands into PDUs, runs the client's clock (deadlines, automatic
//! QUERY, keep-alive PING) and shows every event on the [`Screen`]. The input thread
//! learns what it waits for (name accepted, channel joined, ...) through [`Status`]
//! messages, and reads the client state machine itself (the current channel) through
//! [`Shared`].
//!
//! It sleeps in `mio::Poll` until the socket is ready, the client's next deadline, or a
//! command: the input thread wakes it with a `mio::Waker`. Nothing runs on a tick.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use kaichat_proto::client::{Client, ClientError, Event, Request, ERROR_PREFIX};
use kaichat_proto::names::Username;
use kaichat_proto::pdu::Pdu;
use mio::{Events, Poll, Token, Waker};

use super::connection::{Cause, Connection, Explained, Progress, Target};
use super::screen::{sanitize, Line, Screen};

/// How long to wait for the server to close after our QUIT.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
const WAKER: Token = Token(0);
const SOCKET: Token = Token(1);

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Established,
    NameWanted,
    /// A JOIN or LEAVE of the person's was answered (acknowledged or refused), or could
    /// not be sent; what happened was shown.
    Answered,
    Drained,
    /// After [`Command::Quit`]: the connection is closed.
    Closed,
}

/// Called when the connection is lost or a deadline passes: shows the message and ends the
/// process (the input thread may be blocked in a read that cannot be interrupted).
pub type Fatal = fn(&str) -> !;

/// The client state machine, shared with the input thread so that it can ask where the
/// conversation is (the channel) instead of keeping its own copy.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Client>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Client> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current channel, as the server acknowledged it.
    pub fn channel(&self) -> Option<String> {
        self.lock().channel().map(sanitize)
    }
}

/// The input thread's end: commands go in, the network thread is woken.
pub struct Remote {
    commands: Sender<Command>,
    waker: Arc<Waker>,
}

impl Remote {
    /// Hands a command to the network thread; false when it is gone.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok() && self.waker.wake().is_ok()
    }
}

struct Network {
    poll: Poll,
    target: Target,
    connection: Connection,
    client: Shared,
    commands: Receiver<Command>,
    status: Sender<Status>,
    screen: Screen,
    fatal: Fatal,
    /// PDUs read and not yet handled.
    pdus: Vec<Pdu>,
    draining: bool,
    /// After QUIT: until when to wait for the server's close.
    closing: Option<Instant>,
}

/// Connects (the name in `client`, if any, is sent once the version is agreed) and starts
/// the network thread. A connection that cannot even start is fatal.
pub fn spawn(
    target: Target,
    mut client: Client,
    screen: Screen,
    fatal: Fatal,
) -> io::Result<(Remote, Receiver<Status>, Shared, JoinHandle<()>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let now = Instant::now();
    let mut connection = match Connection::open(&target, poll.registry(), SOCKET, now) {
        Ok(connection) => connection,
        Err(cause) => fatal(
            &Explained {
                cause: &cause,
                target: &target,
            }
            .to_string(),
        ),
    };
    // PING waits in the transport until the connection is up.
    client.start(now, connection.transport());
    let (command_tx, command_rx) = mpsc::channel();
    let (status_tx, status_rx) = mpsc::channel();
    let shared = Shared(Arc::new(Mutex::new(client)));
    let network = Network {
        poll,
        target,
        connection,
        client: shared.clone(),
        commands: command_rx,
        status: status_tx,
        screen,
        fatal,
        pdus: Vec::new(),
        draining: false,
        closing: None,
    };
    let handle = thread::Builder::new()
        .name("network".to_string())
        .spawn(move || network.run())?;
    let remote = Remote {
        commands: command_tx,
        waker,
    };
    Ok((remote, status_rx, shared, handle))
}

impl Network {
    fn run(mut self) {
        let mut events = Events::with_capacity(16);
        loop {
            let timeout = self
                .next_wakeup()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    (self.fatal)(&format!("waiting for the network failed: {e}"));
                }
            }
            for event in events.iter() {
                if event.token() == SOCKET {
                    self.connection.on_event(event);
                }
            }
            if self.closing.is_none() {
                loop {
                    match self.commands.try_recv() {
                        Ok(Command::Quit) | Err(TryRecvError::Disconnected) => {
                            self.quit();
                            break;
                        }
                        Ok(command) => self.apply(command),
                        Err(TryRecvError::Empty) => break,
                    }
                }
            }
            if self.step() {
                let _ = self.status.send(Status::Closed);
                return;
            }
        }
    }

    /// When the loop must run without an event.
    fn next_wakeup(&self) -> Option<Instant> {
        let client = self.client.lock().next_wakeup();
        [client, self.connection.deadline(), self.closing]
            .into_iter()
            .flatten()
            .min()
    }

    /// Reads, handles what arrived, runs the client's clock, writes, until the socket has
    /// nothing more to give or take. True when the connection is over after our QUIT.
    fn step(&mut self) -> bool {
        loop {
            let now = Instant::now();
            let result = self
                .connection
                .progress(self.poll.registry(), now, &mut self.pdus);
            if let Some(until) = self.closing {
                // After QUIT only the close matters.
                self.pdus.clear();
                if self.connection.is_flushed() {
                    self.connection.shut_write();
                }
                match result {
                    // The close may have come with these: look again.
                    Ok(Progress::Pdus) => continue,
                    Ok(Progress::Waiting) => return now >= until,
                    Err(_) => return true,
                }
            }
            let read = !self.pdus.is_empty();
            for pdu in std::mem::take(&mut self.pdus) {
                self.on_pdu(&pdu);
            }
            if let Err(cause) = result {
                self.lost(cause);
            }
            let polled = self.client.lock().poll(now, self.connection.transport());
            if let Err(e) = polled {
                self.fail(e);
            }
            if !read && !self.connection.can_write() {
                return false;
            }
        }
    }

    fn lost(&self, cause: Cause) -> ! {
        let established = self.client.lock().is_established();
        let explained = Explained {
            cause: &cause,
            target: &self.target,
        }
        .to_string();
        match cause {
            Cause::Closed { .. } if !established && self.target.tls.is_none() => (self.fatal)(
                &format!("{explained} during set-up (if it serves TLS, leave out --plaintext)"),
            ),
            _ => (self.fatal)(&explained),
        }
    }

    fn fail(&self, error: ClientError) -> ! {
        (self.fatal)(&match error {
            ClientError::Timeout(_) => format!("the server did not answer in time: {error}"),
            _ => error.to_string(),
        })
    }

    fn apply(&mut self, command: Command) {
        let now = Instant::now();
        let mut client = self.client.lock();
        let out = self.connection.transport();
        let result = match command {
            Command::Name(name) => client.offer_name(name, now, out),
            Command::Join(channel) => client.join(&channel, now, out),
            Command::Leave => client.leave(now, out),
            Command::Say(text) => client.send_message(&text, now, out),
            Command::Drain => {
                self.draining = true;
                let sent = client.query(now, out);
                if sent.is_err() {
                    self.draining = false;
                    let _ = self.status.send(Status::Drained);
                }
                sent
            }
            Command::Quit => Ok(()),
        };
        drop(client);
        if let Err(e) = result {
            self.screen.show(Line::Info(format!("not sent: {e}")));
            // Whoever waits for an answer must not wait for one that will not come.
            let _ = self.status.send(Status::Answered);
        }
    }

    fn on_pdu(&mut self, pdu: &Pdu) {
        let mut client = self.client.lock();
        let event = match client.handle(pdu, Instant::now(), self.connection.transport()) {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                drop(client);
                self.fail(e)
            }
        };
        let (line, status) = match event {
            Event::Pong | Event::VersionAgreed { .. } | Event::Unexpected(_) => return,
            Event::Established { username } => {
                (Line::Established(sanitize(username)), Status::Established)
            }
            Event::NameRejected { reason } => {
                (Line::NameRejected(sanitize(reason)), Status::NameWanted)
            }
            Event::Joined { channel } => (Line::Joined(sanitize(channel)), Status::Answered),
            Event::Left { channel } => (Line::Left(sanitize(channel)), Status::Answered),
            Event::Refused { request, reason } => {
                let what = match request {
                    Request::Join => "join",
                    Request::Leave => "leave",
                };
                let line = Line::Refused {
                    what,
                    reason: sanitize(reason),
                };
                (line, Status::Answered)
            }
            Event::Message {
                sender,
                channel,
                text,
            } => {
                let line = Line::Message {
                    sender: sanitize(sender),
                    channel: sanitize(channel),
                    text: sanitize(text),
                };
                drop(client);
                self.screen.show(line);
                return;
            }
            Event::Notice {
                channel,
                text,
                is_error,
            } => {
                let line = if is_error {
                    Line::Error(sanitize(&text[ERROR_PREFIX.len()..]))
                } else {
                    Line::Notice {
                        channel: sanitize(channel),
                        text: sanitize(text),
                    }
                };
                drop(client);
                self.screen.show(line);
                return;
            }
            Event::UpToDate { .. } => {
                if self.draining && client.queries_in_flight() == 0 {
                    self.draining = false;
                    let _ = self.status.send(Status::Drained);
                }
                return;
            }
        };
        drop(client);
        self.screen.show(line);
        let _ = self.status.send(status);
    }

    /// QUIT and close_notify go out; the loop then waits a little for the server's close.
    fn quit(&mut self) {
        let now = Instant::now();
        if !self.connection.is_connected() {
            // Nothing to say goodbye to.
            self.closing = Some(now);
            return;
        }
        self.client.lock().quit(now, self.connection.transport());
        self.connection.close_notify();
        self.closing = Some(now + CLOSE_WAIT);
    }
}
