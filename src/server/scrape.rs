//! The metrics endpoint (`--metrics-listen`): a plaintext HTTP listener in the reactor's
//! own poll, and the few connections scraping it. Each connection reads one request
//! (parsed by httparse), gets one answer with `Connection: close`, and is closed the way a
//! client is (write side shut, then the peer's EOF awaited), all within a bound of time.
//!
//! It must never hold up the chat: sockets are non-blocking with readiness kept in user
//! space like a client's (`readiness.rs`); a request is at most [`REQUEST_LIMIT`] bytes, a
//! connection lives at most [`SCRAPE_TIMEOUT_MS`], at most [`MAX_SCRAPES`] are open (more
//! are closed as soon as accepted), and a turn reads a bounded amount. The metrics text is
//! asked of the reactor only for a complete `GET /metrics`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::exposition::CONTENT_TYPE;
use super::readiness::Readiness;

/// Metrics connections open at once; more are closed as soon as they are accepted.
pub const MAX_SCRAPES: usize = 16;
/// The most a request may take, request line and headers (a GET has no body).
pub const REQUEST_LIMIT: usize = 8 * 1024;
/// How long a metrics connection may stay open, from its accept to its close. A scrape
/// from the same machine or network takes milliseconds.
pub const SCRAPE_TIMEOUT_MS: u64 = 2000;

/// The listener's token, below the reactor's own (`mod.rs`), and below it one per slot.
pub const LISTENER: Token = Token(usize::MAX - 3);
const FIRST_SLOT: usize = usize::MAX - 4 - MAX_SCRAPES;
const _: () = assert!(FIRST_SLOT + MAX_SCRAPES < LISTENER.0);

/// Bytes read at a time, and most read per turn, from a metrics connection.
const READ_CHUNK: usize = 1024;
const READS_PER_TURN: usize = 16;

/// Whether `token` is one of a metrics connection.
pub fn owns(token: Token) -> bool {
    (FIRST_SLOT..FIRST_SLOT + MAX_SCRAPES).contains(&token.0)
}

/// The metrics listener and its connections.
pub struct Endpoint {
    listener: TcpListener,
    /// The listener may have connections waiting (its edge will not fire again).
    ready: bool,
    scrapes: Slab<Scrape>,
}

struct Scrape {
    socket: TcpStream,
    peer: SocketAddr,
    readiness: Readiness,
    /// The reactor's millisecond at which the connection is closed, whatever its state.
    deadline: u64,
    stage: Stage,
}

enum Stage {
    /// Reading the request, up to [`REQUEST_LIMIT`] bytes.
    Reading(Vec<u8>),
    /// Writing the answer: `written` bytes of it are out.
    Answering {
        answer: Vec<u8>,
        written: usize,
    },
    /// The answer is out and the write side shut: reading what the client still sends,
    /// until its EOF, so that closing does not reset the connection under the answer.
    Draining,
    Done,
}

impl Endpoint {
    /// Listens on `addr` and registers the listener with the reactor's poll.
    pub fn bind(addr: SocketAddr, registry: &Registry) -> io::Result<Endpoint> {
        let mut listener = super::listener::bind(addr)?;
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Endpoint {
            listener,
            ready: false,
            scrapes: Slab::with_capacity(MAX_SCRAPES),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The listener reported connections waiting.
    pub fn listener_ready(&mut self) {
        self.ready = true;
    }

    /// An event for a metrics connection's socket; returns its slot if it exists.
    pub fn on_event(&mut self, token: Token, event: &Event) -> Option<usize> {
        let key = token.0 - FIRST_SLOT;
        let scrape = self.scrapes.get_mut(key)?;
        scrape.readiness.on_event(event);
        Some(key)
    }

    /// Accepts waiting connections: into a free slot, or closed at once when none is free.
    pub fn accept(&mut self, now: u64, registry: &Registry) {
        while self.ready {
            let (mut socket, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready = false;
                    return;
                }
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    // Out of descriptors, most likely: the next connection's edge retries.
                    log::warn!("metrics: accept failed: {e}");
                    self.ready = false;
                    return;
                }
            };
            if self.scrapes.len() >= MAX_SCRAPES {
                log::debug!("metrics: {peer} turned away, {MAX_SCRAPES} connections open");
                continue; // dropped: closed
            }
            let entry = self.scrapes.vacant_entry();
            let token = Token(FIRST_SLOT + entry.key());
            if let Err(e) =
                registry.register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)
            {
                log::warn!("metrics: cannot register a connection with the poll: {e}");
                continue;
            }
            entry.insert(Scrape {
                socket,
                peer,
                readiness: Readiness::new(),
                deadline: now.saturating_add(SCRAPE_TIMEOUT_MS),
                stage: Stage::Reading(Vec::new()),
            });
        }
    }

    /// Gives metrics connection `key` a turn: read its request, answer it (asking
    /// `metrics` for the text only for a `GET /metrics`), write, drain; frees its slot once
    /// done.
    pub fn serve(&mut self, key: usize, registry: &Registry, metrics: impl FnOnce() -> String) {
        let Some(scrape) = self.scrapes.get_mut(key) else {
            return;
        };
        scrape.turn(metrics);
        if matches!(scrape.stage, Stage::Done) {
            self.close(key, registry);
        }
    }

    /// Closes the connections whose time is up at `now`.
    pub fn expire(&mut self, now: u64, registry: &Registry) {
        self.scrapes.retain(|_, scrape| {
            if scrape.deadline > now {
                return true;
            }
            log::debug!(
                "metrics: {} closed after {SCRAPE_TIMEOUT_MS} ms",
                scrape.peer
            );
            let _ = registry.deregister(&mut scrape.socket);
            false
        });
    }

    /// The earliest deadline of an open metrics connection, for the poll's timeout.
    pub fn next_deadline(&self) -> Option<u64> {
        self.scrapes.iter().map(|(_, scrape)| scrape.deadline).min()
    }

    /// Stops listening and closes every metrics connection (the server is shutting down).
    pub fn shut(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.listener);
        self.ready = false;
        for mut scrape in self.scrapes.drain() {
            let _ = registry.deregister(&mut scrape.socket);
        }
    }

    fn close(&mut self, key: usize, registry: &Registry) {
        if let Some(mut scrape) = self.scrapes.try_remove(key) {
            let _ = registry.deregister(&mut scrape.socket);
        }
    }
}

impl Scrape {
    fn turn(&mut self, metrics: impl FnOnce() -> String) {
        let mut metrics = Some(metrics);
        let mut reads = 0;
        loop {
            match &mut self.stage {
                Stage::Reading(request) => {
                    if !self.readiness.can_read() || reads == READS_PER_TURN {
                        return;
                    }
                    reads += 1;
                    let mut chunk = [0u8; READ_CHUNK];
                    let room = (REQUEST_LIMIT - request.len()).min(READ_CHUNK);
                    match self.socket.read(&mut chunk[..room]) {
                        // The client gave up before its request was complete.
                        Ok(0) => self.stage = Stage::Done,
                        Ok(n) => {
                            request.extend_from_slice(&chunk[..n]);
                            if let Some(answer) = answer(request, &self.peer, &mut metrics) {
                                self.stage = Stage::Answering { answer, written: 0 };
                            }
                        }
                        Err(e) => self.failed(e, Readiness::read_drained),
                    }
                }
                Stage::Answering { answer, written } => {
                    if !self.readiness.can_write() {
                        return;
                    }
                    match self.socket.write(&answer[*written..]) {
                        Ok(n) => {
                            *written += n;
                            if *written == answer.len() {
                                // Connection: close. The client reads the answer, then EOF.
                                self.stage = match self.socket.shutdown(std::net::Shutdown::Write) {
                                    Ok(()) => Stage::Draining,
                                    Err(_) => Stage::Done,
                                };
                            }
                        }
                        Err(e) => self.failed(e, Readiness::write_blocked),
                    }
                }
                Stage::Draining => {
                    if !self.readiness.can_read() || reads == READS_PER_TURN {
                        return;
                    }
                    reads += 1;
                    let mut discard = [0u8; READ_CHUNK];
                    match self.socket.read(&mut discard) {
                        Ok(0) => self.stage = Stage::Done,
                        Ok(_) => {}
                        Err(e) => self.failed(e, Readiness::read_drained),
                    }
                }
                Stage::Done => return,
            }
        }
    }

    /// A read or write error: `WouldBlock` clears the readiness bit (`blocked`), anything
    /// else but an interruption ends the connection.
    fn failed(&mut self, e: io::Error, blocked: fn(&mut Readiness)) {
        match e.kind() {
            io::ErrorKind::WouldBlock => blocked(&mut self.readiness),
            io::ErrorKind::Interrupted => {}
            _ => self.stage = Stage::Done,
        }
    }
}

/// Errors of one connection that failed before it was accepted: accept the next.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The answer to `request` if it is complete, too large or malformed; None while more of
/// it may come.
fn answer(
    request: &[u8],
    peer: &SocketAddr,
    metrics: &mut Option<impl FnOnce() -> String>,
) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    let (status, body) = match parsed.parse(request) {
        Ok(httparse::Status::Partial) if request.len() < REQUEST_LIMIT => return None,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => (
            "431 Request Header Fields Too Large",
            "request too large\n".to_string(),
        ),
        Err(_) => ("400 Bad Request", "malformed request\n".to_string()),
        Ok(httparse::Status::Complete(_)) => {
            let method = parsed.method.unwrap_or_default();
            let path = parsed.path.unwrap_or_default();
            let resource = path.split('?').next().unwrap_or_default();
            if resource != "/metrics" {
                (
                    "404 Not Found",
                    "only /metrics is served here\n".to_string(),
                )
            } else if method != "GET" {
                (
                    "405 Method Not Allowed",
                    "only GET is allowed\n".to_string(),
                )
            } else {
                let text = metrics.take().map(|f| f()).unwrap_or_default();
                ("200 OK", text)
            }
        }
    };
    log::debug!("metrics: {peer}: {status}");
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let allow = if status.starts_with("405") {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}\
         Connection: close\r\n\r\n",
        body.len()
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(body.as_bytes());
    Some(answer)
}

#[cfg(test)]
mod tests;
