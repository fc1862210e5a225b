//! Byte buffers lent by the loop's thread to its connections: a connection takes one when
//! bytes must wait (a partial PDU, output the socket has not taken yet) and gives it back
//! once they are gone, so an idle connection holds no buffer and a busy loop allocates
//! none per request (issue 10). One pool per thread: the reactor's loop is one thread, and
//! loadgen's is another.
//!
//! The pool keeps at most [`KEPT`] buffers of at most [`KEPT_CAPACITY`] bytes each (2 MiB
//! at worst); a buffer beyond either bound is freed when given back.

use std::cell::RefCell;

/// Buffers kept for reuse per thread at most.
pub const KEPT: usize = 64;
/// Largest capacity (bytes) of a buffer kept for reuse.
pub const KEPT_CAPACITY: usize = 32 * 1024;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer: one given back earlier if there is one (its capacity kept), else a
/// new one without capacity.
pub fn take() -> Vec<u8> {
    let mut buf = kept_or_new();
    buf.clear();
    buf
}

/// A buffer of at least `len` bytes of whatever it held before (zeroes where it is new),
/// for callers that write into it and track their own data: a reused buffer is not zeroed
/// again.
pub fn lend(len: usize) -> Vec<u8> {
    let mut buf = kept_or_new();
    if buf.len() < len {
        buf.resize(len, 0);
    }
    buf
}

/// The buffer given back last, as it was given, or a new one without capacity.
fn kept_or_new() -> Vec<u8> {
    FREE.with(|free| free.borrow_mut().pop())
        .unwrap_or_default()
}

/// Gives `buf` back for reuse, or frees it if it is too big or the pool is full. Nothing
/// happens for a buffer that never allocated. Its bytes stay as they are (see [`lend`]).
pub fn give(buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > KEPT_CAPACITY {
        return;
    }
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEPT {
            free.push(buf);
        }
    });
}

/// Buffers now kept by this thread's pool.
pub fn kept() -> usize {
    FREE.with(|free| free.borrow().len())
}

#[cfg(test)]
mod tests;
