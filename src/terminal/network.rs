//! The network thread: it owns the connection and drives the sans-IO [`Client`]; it turns
//! the person's commands into PDUs, runs the client's clock (deadlines, automatic QUERY,
//! keep-alive PING) and shows every event on the [`Screen`]. The input thread learns what
//! it waits for (name accepted, JOIN answered, ...) through [`Status`] messages, and asks
//! the client state machine itself where the conversation is, through [`Shared`].
//!
//! It sleeps in `mio::Poll` until the socket is ready, the client's next deadline, a
//! reconnection is due, or a command arrives: the input thread wakes it with a
//! `mio::Waker`. Nothing runs on a tick.
//!
//! # Connections come and go; the conversation stays
//! The person never has to start over because a connection ended:
//! - Set-up: the server's name deadline is not restarted by a refused name (contract 7).
//!   A person who types the next name after it passed finds the connection closed; it is
//!   made again, quietly, when the name is there.
//! - Once the name was accepted, a lost connection is said as precisely as can be known
//!   and made again with backoff; the client sets up with the same name, rejoins the
//!   channel it was in (or was heading for), then sends what was typed meanwhile.
//!
//! A failure that trying again cannot mend (a refused certificate, a server that speaks
//! no common version), and any failure before the first name was accepted other than the
//! set-up deadline, ends the process with one line that says why.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use kaichat_proto::client::{Client, ClientError, Event, Phase, Request, Settings, ERROR_PREFIX};
use kaichat_proto::names::{ChannelName, Username};
use kaichat_proto::network::UNAVAILABLE;
use kaichat_proto::pdu::Pdu;
use mio::{Events, Poll, Token, Waker};

use super::connection::{Cause, Connection, Explained, Progress, Target};
use super::pace::Pace;
use super::screen::{sanitize, Line, Screen};

/// How long to wait for the server to close after our QUIT.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The first wait before reconnecting; it doubles with every failed attempt...
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// ... up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// How often set-up is restarted at once when the server closes just as our name goes
/// out (its deadline passed meanwhile) before that is taken for a real failure.
const SETUP_RESTARTS: u32 = 2;
/// Messages typed while reconnecting that are kept to send afterwards.
const MAX_HELD: usize = 100;
/// An error notice this recent explains the close that follows it.
const LAST_WORDS: Duration = Duration::from_secs(2);
/// After a name was refused only because the server could not reach its network
/// (`error: network unavailable, try again`), how long before it is offered again.
const NAME_RETRY: Duration = Duration::from_secs(2);
const WAKER: Token = Token(0);

/// What the input thread asks for.
#[derive(Debug)]
pub enum Command {
    /// A username: the first one, or another after the server refused one.
    Name(Username),
    Join(ChannelName),
    Leave,
    Say(Vec<u8>),
    /// Version 2: LIST_CHANNELS, NAMES (of the current channel when `None`), KICK, BAN,
    /// UNBAN in the current channel, OPER. Their answers are shown when they come; nobody
    /// waits for them.
    List,
    Names(Option<ChannelName>),
    Kick(Username, Vec<u8>),
    Ban(Username, Vec<u8>),
    Unban(Username),
    Oper(Vec<u8>),
    /// Send one more QUERY and report [`Status::Drained`] when every answer is in.
    Drain,
    Quit,
}

/// What the input thread may be waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The first name was accepted.
    Established,
    /// A name is wanted: connected and no name given yet, or the server refused one (the
    /// reason was shown).
    NameWanted,
    /// A JOIN or LEAVE of the person's was answered (acknowledged or refused), or could
    /// not be sent; what happened was shown.
    Answered,
    Drained,
    /// After [`Command::Quit`]: the connection is closed.
    Closed,
}

/// Ends the process with a message (the input thread may be blocked in a read that
/// cannot be interrupted).
pub type Fatal = fn(&str) -> !;

/// Where the conversation is, as the input thread may ask it.
struct Conversation {
    /// The state machine of the current connection (a fresh one between connections).
    client: Client,
    /// While reconnecting: the channel to join again once set up.
    rejoin: Option<ChannelName>,
}

/// The client state machine, shared with the input thread so that it can ask where the
/// conversation is instead of keeping its own copy.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Conversation>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Conversation> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The protocol version of the current connection; 0 while none is agreed.
    pub fn version(&self) -> u16 {
        self.lock().client.version()
    }

    /// The current channel, as the server acknowledged it; while reconnecting, the channel
    /// that will be joined again.
    pub fn channel(&self) -> Option<String> {
        let conversation = self.lock();
        conversation
            .client
            .channel()
            .or(conversation.rejoin.as_ref())
            .map(|channel| sanitize(channel.as_bytes()))
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

/// Who sent a JOIN or LEAVE: the person waits for its answer, a rejoin does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Person,
    Rejoin,
}

enum Link {
    Up(Connection),
    /// No connection. `retry_at`: when to connect again; `None`: when a name is offered
    /// (the set-up deadline passed while the person typed it).
    Down {
        retry_at: Option<Instant>,
    },
}

struct Network {
    poll: Poll,
    target: Target,
    settings: Settings,
    link: Link,
    token: Token,
    shared: Shared,
    commands: Receiver<Command>,
    status: Sender<Status>,
    screen: Screen,
    fatal: Fatal,
    /// PDUs read and not yet handled.
    pdus: Vec<Pdu>,
    /// The name to set up with, for every new connection.
    name: Option<Username>,
    /// A name was accepted once: from now on a lost connection is made again.
    established_once: bool,
    /// Failed attempts to connect again since the last success (the backoff grows).
    attempts: u32,
    /// Set-up restarts since the last name was accepted.
    setup_restarts: u32,
    /// The channel of the last JOIN sent, `None` after a LEAVE: where to rejoin.
    heading: Option<ChannelName>,
    /// Who asked for each JOIN/LEAVE in flight, oldest first (answers come in order).
    origins: std::collections::VecDeque<Origin>,
    /// Messages typed while reconnecting, sent once set up again.
    held: Vec<Vec<u8>>,
    /// A [`Command::Drain`] waits for a QUERY answer.
    draining: bool,
    /// The last error notice and when it came, to explain a close that follows.
    last_error: Option<(Instant, String)>,
    /// After QUIT: until when to wait for the server's close.
    closing: Option<Instant>,
    /// A NAMES answer being gathered: operators, then the other members.
    names: (Vec<String>, Vec<String>),
    /// The pace of messages (`pace.rs`), and the commands waiting behind a message that
    /// waits for its turn, in the order they were given.
    pace: Pace,
    paced: std::collections::VecDeque<Command>,
    /// A server of a network that could not reach it refused the name for that reason
    /// alone: the same name is offered again at this time, without asking the person.
    name_retry_at: Option<Instant>,
}

/// Connects (`name`, if any, is sent once the version is agreed) and starts the network
/// thread. Failing to connect at all is fatal: nothing was said yet.
pub fn spawn(
    target: Target,
    settings: Settings,
    name: Option<Username>,
    screen: Screen,
    fatal: Fatal,
) -> io::Result<(Remote, Receiver<Status>, Shared, JoinHandle<()>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (command_tx, command_rx) = mpsc::channel();
    let (status_tx, status_rx) = mpsc::channel();
    let shared = Shared(Arc::new(Mutex::new(Conversation {
        client: Client::new(settings),
        rejoin: None,
    })));
    let mut network = Network {
        poll,
        target,
        settings,
        link: Link::Down { retry_at: None },
        token: WAKER,
        shared: shared.clone(),
        commands: command_rx,
        status: status_tx,
        screen,
        fatal,
        pdus: Vec::new(),
        name,
        established_once: false,
        attempts: 0,
        setup_restarts: 0,
        heading: None,
        origins: Default::default(),
        held: Vec::new(),
        draining: false,
        last_error: None,
        closing: None,
        names: Default::default(),
        pace: Pace::new(Instant::now()),
        paced: Default::default(),
        name_retry_at: None,
    };
    if let Err(cause) = network.connect(Instant::now()) {
        network.fail(&cause);
    }
    let handle = thread::Builder::new()
        .name("network".to_string())
        .spawn(move || network.run())?;
    let remote = Remote {
        commands: command_tx,
        waker,
    };
    Ok((remote, status_rx, shared, handle))
}

/// The wait before reconnection attempt `attempt` (0 for the first).
fn backoff(attempt: u32) -> Duration {
    BACKOFF_FIRST
        .saturating_mul(1 << attempt.min(16))
        .min(BACKOFF_MAX)
}

/// `1.5 s`, `15 s`: a wait as a person reads it.
fn seconds(wait: Duration) -> String {
    let secs = wait.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0} s")
    } else {
        format!("{secs:.1} s")
    }
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
            if let Link::Up(connection) = &mut self.link {
                for event in events.iter().filter(|e| e.token() == self.token) {
                    connection.on_event(event);
                }
            }
            while self.closing.is_none() {
                match self.commands.try_recv() {
                    Err(TryRecvError::Disconnected) => self.quit(),
                    Ok(command) => self.submit(command),
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.release_paced();
            self.retry_name();
            if self.step() {
                let _ = self.status.send(Status::Closed);
                return;
            }
        }
    }

    /// When the loop must run without an event.
    fn next_wakeup(&self) -> Option<Instant> {
        let client = self.shared.lock().client.next_wakeup();
        let link = match &self.link {
            Link::Up(connection) => connection.deadline(),
            Link::Down { retry_at } => *retry_at,
        };
        let paced = (!self.paced.is_empty()).then(|| self.pace.next_token());
        [client, link, self.closing, paced, self.name_retry_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// A command from the person: a message goes now if the pace allows and nothing waits
    /// before it; anything else given after a waiting message waits behind it.
    fn submit(&mut self, command: Command) {
        let now = Instant::now();
        let waits =
            !self.paced.is_empty() || (matches!(command, Command::Say(_)) && !self.pace.take(now));
        if waits {
            self.paced.push_back(command);
        } else {
            self.run_command(command);
        }
    }

    /// Offers the name again once its retry is due (see `name_retry_at`).
    fn retry_name(&mut self) {
        if self.name_retry_at.is_some_and(|at| at <= Instant::now()) {
            self.name_retry_at = None;
            if let Some(name) = self.name {
                self.apply(Command::Name(name));
            }
        }
    }

    /// Sends the waiting commands whose turn has come, in order.
    fn release_paced(&mut self) {
        while self.closing.is_none() {
            let Some(front) = self.paced.front() else {
                return;
            };
            if matches!(front, Command::Say(_)) && !self.pace.take(Instant::now()) {
                return;
            }
            if let Some(command) = self.paced.pop_front() {
                self.run_command(command);
            }
        }
    }

    fn run_command(&mut self, command: Command) {
        match command {
            Command::Quit => self.quit(),
            command => self.apply(command),
        }
    }

    /// Reads, handles what arrived, runs the client's clock, writes, until the socket has
    /// nothing more to give or take; connects again when that is due. True when the
    /// conversation is over after our QUIT.
    fn step(&mut self) -> bool {
        loop {
            let now = Instant::now();
            let connection = match &mut self.link {
                Link::Up(connection) => connection,
                Link::Down { .. } if self.closing.is_some() => return true,
                Link::Down { retry_at } => {
                    if retry_at.is_some_and(|at| now >= at) {
                        if let Err(cause) = self.connect(now) {
                            self.lost(cause, now);
                        }
                        continue;
                    }
                    return false;
                }
            };
            let result = connection.progress(self.poll.registry(), now, &mut self.pdus);
            if let Some(until) = self.closing {
                // After QUIT only the close matters.
                self.pdus.clear();
                if connection.is_flushed() {
                    connection.shut_write();
                }
                match result {
                    // The close may have come with these: look again.
                    Ok(Progress::Pdus) => continue,
                    Ok(Progress::Waiting) if now < until => return false,
                    _ => {
                        self.disconnect(false);
                        return true;
                    }
                }
            }
            let read = !self.pdus.is_empty();
            for pdu in std::mem::take(&mut self.pdus) {
                self.on_pdu(&pdu, now);
                if !matches!(self.link, Link::Up(_)) {
                    break;
                }
            }
            let Link::Up(connection) = &mut self.link else {
                continue;
            };
            if let Err(cause) = result {
                self.lost(cause, now);
                continue;
            }
            let polled = self.shared.lock().client.poll(now, connection.transport());
            match polled {
                Ok(()) => {}
                Err(ClientError::Timeout(waiting)) => {
                    self.lost(Cause::Deadline(waiting), now);
                    continue;
                }
                Err(other) => (self.fatal)(&other.to_string()),
            }
            if !read && !connection.can_write() {
                return false;
            }
        }
    }

    /// A new connection, with a new client state machine that will set up with the name.
    fn connect(&mut self, now: Instant) -> Result<(), Cause> {
        let mut client = Client::new(self.settings);
        if let Some(name) = self.name {
            // Kept until the version is agreed; nothing is sent here.
            let _ = client.offer_name(name, now, &mut Vec::<u8>::new());
        }
        self.token = Token(self.token.0 + 1);
        let mut connection = Connection::open(&self.target, self.poll.registry(), self.token, now)?;
        // PING waits in the transport until the connection is up.
        client.start(now, connection.transport());
        self.shared.lock().client = client;
        self.link = Link::Up(connection);
        // A NAMES answer cut short by the loss of the last connection is not finished.
        self.names = Default::default();
        Ok(())
    }

    /// Drops the connection; `politely` with QUIT and close_notify first (as far as the
    /// socket takes them at once). The client state machine is replaced by a fresh one.
    fn disconnect(&mut self, politely: bool) {
        let Link::Up(mut connection) =
            std::mem::replace(&mut self.link, Link::Down { retry_at: None })
        else {
            return;
        };
        let mut shared = self.shared.lock();
        if politely && connection.is_connected() {
            shared.client.quit(Instant::now(), connection.transport());
            connection.close_notify();
            let mut ignored = Vec::new();
            let _ = connection.progress(self.poll.registry(), Instant::now(), &mut ignored);
            connection.shut_write();
        }
        connection.deregister(self.poll.registry());
        shared.client = Client::new(self.settings);
    }

    /// The connection ended (or could not be made): set up again quietly, reconnect with
    /// backoff, or give up, depending on where the conversation was.
    fn lost(&mut self, cause: Cause, now: Instant) {
        let phase = self.shared.lock().client.phase();
        let closed = matches!(cause, Cause::Closed { .. });
        self.disconnect(!closed);
        if !self.established_once {
            match phase {
                // The person is typing a name and the set-up deadline passed (ours or the
                // server's): connect again when the name is there.
                Phase::AwaitName => return,
                // The deadline passed just as the name went out: set up again at once.
                Phase::AwaitNameAck if closed && self.setup_restarts < SETUP_RESTARTS => {
                    self.setup_restarts += 1;
                    self.link = Link::Down {
                        retry_at: Some(now),
                    };
                    return;
                }
                _ => self.fail_in_set_up(&cause),
            }
        }
        if !cause.is_transient() || self.name_taken_over(&cause, now) {
            self.fail(&cause);
        }
        let wait = backoff(self.attempts);
        let explained = match &cause {
            // Said in full at the first attempt; the hint would only repeat itself.
            Cause::Unreachable(e) if self.attempts > 0 => {
                format!("cannot reach the server at {}: {e}", self.target.display())
            }
            _ => self.explain(&cause, now),
        };
        if self.attempts == 0 {
            self.screen.show(Line::Disconnected(format!(
                "{explained}; reconnecting in {}",
                seconds(wait)
            )));
        } else {
            self.screen.show(Line::Info(format!(
                "{explained}; next attempt in {}",
                seconds(wait)
            )));
        }
        self.attempts += 1;
        self.link = Link::Down {
            retry_at: Some(now + wait),
        };
        self.after_loss();
    }

    /// What a loss leaves behind: the channel to rejoin, and the person not waiting for
    /// answers that will not come.
    fn after_loss(&mut self) {
        {
            let mut shared = self.shared.lock();
            if shared.rejoin.is_none() {
                shared.rejoin = self.heading;
            }
        }
        let waiting = self.origins.iter().any(|o| *o == Origin::Person);
        self.origins.clear();
        if waiting {
            self.screen.show(Line::Info(
                "the connection was lost before the server answered; the channel will be \
                 joined again once reconnected"
                    .into(),
            ));
            let _ = self.status.send(Status::Answered);
        }
    }

    /// Whether the server closed the connection right after saying that the name is
    /// another client's now (a server of a network, cut off for longer than its lease,
    /// found another server's client holding it): connecting again to take it back would
    /// only fight the new owner, so `kaichat` stops and says why.
    fn name_taken_over(&self, cause: &Cause, now: Instant) -> bool {
        matches!(cause, Cause::Closed { .. })
            && self.last_error.as_ref().is_some_and(|(at, text)| {
                now.saturating_duration_since(*at) <= LAST_WORDS
                    && text.contains("is another client's now")
            })
    }

    /// The cause in words, with the server's last error notice when it came just before.
    fn explain(&self, cause: &Cause, now: Instant) -> String {
        let told = Explained {
            cause,
            target: &self.target,
        }
        .to_string();
        match (cause, &self.last_error) {
            (Cause::Closed { .. }, Some((at, text)))
                if now.saturating_duration_since(*at) <= LAST_WORDS =>
            {
                format!("{told} after saying: {text}")
            }
            (Cause::Closed { cleanly: true }, _) if self.established_once => format!(
                "{told} (it was shut down or restarted, or it ended the session, e.g. on its \
                 idle deadline)"
            ),
            _ => told,
        }
    }

    fn fail(&self, cause: &Cause) -> ! {
        (self.fatal)(&self.explain(cause, Instant::now()))
    }

    fn fail_in_set_up(&self, cause: &Cause) -> ! {
        let explained = self.explain(cause, Instant::now());
        match cause {
            Cause::Closed { .. } if self.target.tls.is_none() => (self.fatal)(&format!(
                "{explained} during set-up (if it serves TLS, leave out --plaintext)"
            )),
            Cause::Closed { .. } => (self.fatal)(&format!("{explained} during set-up")),
            _ => (self.fatal)(&explained),
        }
    }

    fn apply(&mut self, command: Command) {
        let now = Instant::now();
        if let Command::Name(name) = command {
            self.name = Some(name);
        }
        let Link::Up(connection) = &mut self.link else {
            return self.apply_while_down(command, now);
        };
        let mut shared = self.shared.lock();
        if self.established_once && !shared.client.is_established() {
            drop(shared);
            return self.apply_while_down(command, now);
        }
        let client = &mut shared.client;
        let out = connection.transport();
        let awaited = matches!(command, Command::Join(_) | Command::Leave);
        let result = match command {
            Command::Name(name) => client.offer_name(name, now, out),
            Command::Join(channel) => client.join(&channel, now, out).map(|()| {
                self.origins.push_back(Origin::Person);
                self.heading = Some(channel);
            }),
            Command::Leave => client.leave(now, out).map(|()| {
                self.origins.push_back(Origin::Person);
                self.heading = None;
            }),
            Command::Say(text) => client.send_message(&text, now, out),
            Command::List => client.list_channels(now, out),
            Command::Names(channel) => client.names(channel.as_ref(), now, out),
            Command::Kick(target, reason) => client.kick(None, &target, &reason, now, out),
            Command::Ban(target, reason) => client.ban(None, &target, &reason, now, out),
            Command::Unban(target) => client.unban(None, &target, now, out),
            Command::Oper(password) => client.oper(&password, now, out),
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
        drop(shared);
        if let Err(e) = result {
            self.screen.show(Line::Info(format!("not sent: {e}")));
            if awaited {
                // The person waits for an answer that will not come.
                let _ = self.status.send(Status::Answered);
            }
        }
    }

    /// A command between connections: a name connects; channel changes and messages wait
    /// for the next connection.
    fn apply_while_down(&mut self, command: Command, now: Instant) {
        match command {
            Command::Name(_) => {
                if matches!(self.link, Link::Down { retry_at: None }) {
                    if let Err(cause) = self.connect(now) {
                        self.lost(cause, now);
                    }
                }
            }
            Command::Join(channel) => {
                self.screen.show(Line::Info(format!(
                    "not connected: {} will be joined once reconnected",
                    sanitize(channel.as_bytes())
                )));
                self.heading = Some(channel);
                self.shared.lock().rejoin = Some(channel);
                let _ = self.status.send(Status::Answered);
            }
            Command::Leave => {
                let left = self.shared.lock().rejoin.take();
                self.heading = None;
                if !self.held.is_empty() {
                    self.screen.show(Line::Info(format!(
                        "{} messages typed while disconnected will not be sent",
                        self.held.len()
                    )));
                    self.held.clear();
                }
                if let Some(channel) = left {
                    self.screen.show(Line::Left(sanitize(channel.as_bytes())));
                }
                let _ = self.status.send(Status::Answered);
            }
            Command::Say(text) => {
                if self.shared.lock().rejoin.is_none() {
                    self.screen
                        .show(Line::Info("not sent: not in a channel".into()));
                } else if self.held.len() >= MAX_HELD {
                    self.screen.show(Line::Info(format!(
                        "not sent: {MAX_HELD} messages already wait for the connection"
                    )));
                } else {
                    if self.held.is_empty() {
                        self.screen.show(Line::Info(
                            "not connected: the message will be sent once reconnected".into(),
                        ));
                    }
                    self.held.push(text);
                }
            }
            Command::List
            | Command::Names(_)
            | Command::Kick(..)
            | Command::Ban(..)
            | Command::Unban(_)
            | Command::Oper(_) => self.screen.show(Line::Info(
                "not sent: not connected; try again once reconnected".into(),
            )),
            // Answered once set up again (see `set_up_again`).
            Command::Drain => self.draining = true,
            Command::Quit => {}
        }
    }

    fn on_pdu(&mut self, pdu: &Pdu, now: Instant) {
        let Link::Up(connection) = &mut self.link else {
            return;
        };
        let mut shared = self.shared.lock();
        let event = match shared.client.handle(pdu, now, connection.transport()) {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                drop(shared);
                (self.fatal)(&e.to_string())
            }
        };
        let mut status = None;
        // The server's time stamp of the entry (version 2), else the time it arrived.
        let mut time = 0;
        let line = match event {
            Event::Pong | Event::Unexpected(_) => return,
            Event::Removed { channel } => {
                // Not in a channel any more, and not to be rejoined after a loss.
                self.heading = None;
                shared.rejoin = None;
                Line::Removed(sanitize(channel.as_bytes()))
            }
            Event::Channel {
                channel,
                members,
                history,
            } => Line::Channel {
                channel: sanitize(channel),
                members,
                history,
            },
            Event::ChannelsEnd { count } => Line::Channels(count),
            Event::Names {
                operators, names, ..
            } => {
                let list = if operators {
                    &mut self.names.0
                } else {
                    &mut self.names.1
                };
                list.extend(
                    names
                        .split(|b| *b == b' ')
                        .filter(|n| !n.is_empty())
                        .map(sanitize),
                );
                return;
            }
            Event::NamesEnd { channel, .. } => {
                let (operators, members) = std::mem::take(&mut self.names);
                Line::Names {
                    channel: sanitize(channel),
                    operators,
                    members,
                }
            }
            Event::Moderated {
                request,
                channel,
                target,
            } => {
                // An empty channel field means our own channel.
                let channel = match (channel.is_empty(), shared.client.channel()) {
                    (true, Some(own)) => sanitize(own.as_bytes()),
                    _ => sanitize(channel),
                };
                Line::Done {
                    what: match request {
                        Request::Kick => "kick",
                        Request::Ban => "ban",
                        _ => "unban",
                    },
                    channel,
                    target: sanitize(target),
                }
            }
            Event::Operator => Line::Operator,
            Event::VersionAgreed { .. } => {
                if shared.client.phase() != Phase::AwaitName {
                    return;
                }
                // Connected, and no name yet: now is the time to ask for one.
                drop(shared);
                let _ = self.status.send(Status::NameWanted);
                return;
            }
            Event::Established { username } => {
                let name = sanitize(username);
                drop(shared);
                self.setup_restarts = 0;
                if self.established_once {
                    self.set_up_again(now);
                    Line::Reconnected(name)
                } else {
                    self.established_once = true;
                    status = Some(Status::Established);
                    Line::Established(name)
                }
            }
            Event::NameRejected { reason } => {
                let reason = sanitize(reason);
                drop(shared);
                if self.established_once {
                    // Most likely our lost connection, not yet timed out on the server.
                    let name = self.name.map(|n| n.to_string()).unwrap_or_default();
                    return self.lost(Cause::NameRefused { name, reason }, now);
                }
                if UNAVAILABLE.strip_prefix(ERROR_PREFIX) == Some(reason.as_bytes()) {
                    // Not the name's fault: a server of a network that cannot reach it
                    // (docs/CLUSTER.md). The same name goes again shortly.
                    self.name_retry_at = Some(now + NAME_RETRY);
                    Line::Info(format!(
                        "{reason}: the name is offered again in {}",
                        seconds(NAME_RETRY)
                    ))
                } else {
                    status = Some(Status::NameWanted);
                    Line::NameRejected(reason)
                }
            }
            Event::Joined { channel } => {
                let origin = self.origins.pop_front();
                if origin == Some(Origin::Person) {
                    status = Some(Status::Answered);
                }
                if origin == Some(Origin::Rejoin) || shared.rejoin == Some(channel) {
                    shared.rejoin = None;
                }
                self.heading = Some(channel);
                Line::Joined(sanitize(channel.as_bytes()))
            }
            Event::Left { channel } => {
                self.heading = None;
                if self.origins.pop_front() == Some(Origin::Person) {
                    status = Some(Status::Answered);
                }
                Line::Left(sanitize(channel.as_bytes()))
            }
            Event::Refused { request, reason } => {
                // Only JOIN and LEAVE are tracked by origin (and waited for).
                let origin = match request {
                    Request::Join | Request::Leave => self.origins.pop_front(),
                    _ => None,
                };
                if origin == Some(Origin::Person) {
                    status = Some(Status::Answered);
                }
                if request == Request::Names {
                    self.names = Default::default();
                }
                let what = match request {
                    Request::Join => {
                        self.heading = shared.client.channel().copied();
                        if origin == Some(Origin::Rejoin) {
                            shared.rejoin = None;
                            "rejoin"
                        } else {
                            "join"
                        }
                    }
                    Request::Leave => "leave",
                    Request::ListChannels => "list",
                    Request::Names => "names",
                    Request::Kick => "kick",
                    Request::Ban => "ban",
                    Request::Unban => "unban",
                    Request::Oper => "oper",
                };
                Line::Refused {
                    what,
                    reason: sanitize(reason),
                }
            }
            // On version 2 our own messages come back too (the echo): shown like the others.
            Event::Message {
                sender,
                channel,
                text,
                time: stamp,
                ..
            } => {
                time = stamp;
                Line::Message {
                    sender: sanitize(sender),
                    channel: sanitize(channel),
                    text: sanitize(text),
                }
            }
            Event::Notice {
                channel,
                text,
                is_error,
                time: stamp,
            } => {
                time = stamp;
                if is_error {
                    let text = sanitize(&text[ERROR_PREFIX.len()..]);
                    self.last_error = Some((now, text.clone()));
                    Line::Error(text)
                } else {
                    Line::Notice {
                        channel: sanitize(channel),
                        text: sanitize(text),
                    }
                }
            }
            Event::UpToDate { .. } => {
                if self.draining && shared.client.queries_in_flight() == 0 {
                    self.draining = false;
                    let _ = self.status.send(Status::Drained);
                }
                return;
            }
        };
        self.screen.show_at(line, time);
        if let Some(status) = status {
            let _ = self.status.send(status);
        }
    }

    /// Set up again after a loss: rejoin, send what was typed meanwhile, finish a drain.
    fn set_up_again(&mut self, now: Instant) {
        self.attempts = 0;
        let Link::Up(connection) = &mut self.link else {
            return;
        };
        let mut shared = self.shared.lock();
        let out = connection.transport();
        if let Some(channel) = shared.rejoin {
            if shared.client.join(&channel, now, out).is_ok() {
                self.origins.push_back(Origin::Rejoin);
            }
        }
        // The server handles PDUs in order: these go to the channel joined just before.
        for text in self.held.drain(..) {
            let _ = shared.client.send_message(&text, now, out);
        }
        if self.draining && shared.client.query(now, out).is_err() {
            self.draining = false;
            let _ = self.status.send(Status::Drained);
        }
    }

    /// QUIT and close_notify go out; the loop then waits a little for the server's close.
    fn quit(&mut self) {
        let now = Instant::now();
        let Link::Up(connection) = &mut self.link else {
            self.closing = Some(now);
            return;
        };
        if !connection.is_connected() {
            // Nothing to say goodbye to.
            self.disconnect(false);
            self.closing = Some(now);
            return;
        }
        self.shared.lock().client.quit(now, connection.transport());
        connection.close_notify();
        self.closing = Some(now + CLOSE_WAIT);
    }
}

#[cfg(test)]
mod tests;
