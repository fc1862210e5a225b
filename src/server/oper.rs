//! OPER passwords (protocol v2 section 4), checked away from the reactor.
//!
//! The server operator password is configured as an argon2id hash in PHC string form
//! (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), read from `--oper-password-file`.
//! Verifying a password against it is slow on purpose (tens of milliseconds, and
//! memory-hard): done on the loop, it would stall every other client that long. So the
//! session hands the password over ([`Session::take_oper_request`]), the reactor queues
//! it here, one thread verifies requests in turn and wakes the loop with each verdict. A
//! refusal then waits in the session until a second after the request, so a client
//! learns nothing faster by failing.
//!
//! [`Session::take_oper_request`]: kaichat_proto::session::Session::take_oper_request

use std::io;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use mio::Waker;

/// Requests waiting for the verifier at most; past it, an OPER is refused (after the
/// usual delay) rather than queued without bound.
const QUEUE: usize = 64;

/// Reads and checks the PHC string of an argon2id hash from `path`: one line, surrounding
/// white space ignored. The error is one line naming the file and what is wrong.
pub fn load_hash(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the operator password file {}: {e}",
            path.display()
        )
    })?;
    let phc = text.trim();
    let hash = PasswordHash::new(phc).map_err(|e| {
        format!(
            "the operator password file {} does not hold an argon2id PHC string \
             ($argon2id$v=19$m=...,t=...,p=...$SALT$HASH): {e}",
            path.display()
        )
    })?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "the operator password file {} holds a {} hash: an argon2id one is needed",
            path.display(),
            hash.algorithm
        ));
    }
    Ok(phc.to_string())
}

/// A password to check for connection `key` of generation `generation`.
struct Request {
    key: usize,
    generation: u32,
    password: Box<[u8]>,
}

/// The outcome of one check, for the connection that asked, if it is still there.
pub struct Verdict {
    pub key: usize,
    pub generation: u32,
    pub accepted: bool,
}

/// The verifier thread's ends, as the reactor holds them.
pub struct Verifier {
    requests: SyncSender<Request>,
    verdicts: Receiver<Verdict>,
}

impl Verifier {
    /// Starts the thread that checks passwords against `phc` (from [`load_hash`]), waking
    /// `waker` after each verdict. The thread ends when the verifier is dropped.
    pub fn start(phc: String, waker: Arc<Waker>) -> io::Result<Verifier> {
        let (requests, inbox) = mpsc::sync_channel::<Request>(QUEUE);
        let (outbox, verdicts) = mpsc::channel();
        std::thread::Builder::new()
            .name("oper-verifier".into())
            .spawn(move || {
                // Checked at start-up by `load_hash`; a hash that no longer parses refuses.
                let hash = PasswordHash::new(&phc).ok();
                for request in inbox {
                    let accepted = hash.as_ref().is_some_and(|hash| {
                        Argon2::default()
                            .verify_password(&request.password, hash)
                            .is_ok()
                    });
                    let verdict = Verdict {
                        key: request.key,
                        generation: request.generation,
                        accepted,
                    };
                    if outbox.send(verdict).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                }
            })?;
        Ok(Verifier { requests, verdicts })
    }

    /// Queues a check; false when the queue is full (the caller refuses the OPER).
    pub fn submit(&self, key: usize, generation: u32, password: Box<[u8]>) -> bool {
        let request = Request {
            key,
            generation,
            password,
        };
        !matches!(
            self.requests.try_send(request),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
        )
    }

    /// The verdicts that arrived, without waiting.
    pub fn verdicts(&self) -> impl Iterator<Item = Verdict> + '_ {
        self.verdicts.try_iter()
    }
}

#[cfg(test)]
mod tests;
