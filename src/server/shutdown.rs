//! How whoever owns the process stops the server: a flag and a wake of the reactor's poll,
//! from any thread. The server installs no signal handler itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::Waker;

/// Stops a running [`Server`](super::Server): sets a flag and wakes the reactor's poll. Cheap to clone and
/// safe to trigger from any thread, any number of times.
#[derive(Clone)]
pub struct Shutdown {
    pub(super) requested: Arc<AtomicBool>,
    pub(super) waker: Arc<Waker>,
}

impl Shutdown {
    /// Asks the server to close every client and return from `run`.
    pub fn trigger(&self) {
        self.requested.store(true, Ordering::Release);
        // A failed wake can only mean the poll is gone, and then the server is too.
        let _ = self.waker.wake();
    }
}

impl Shutdown {
    /// A handle that wakes `waker` (registered in the server's poll).
    pub(super) fn new(waker: Waker) -> Shutdown {
        Shutdown {
            requested: Arc::new(AtomicBool::new(false)),
            waker: Arc::new(waker),
        }
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub(super) fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}
