//! The process's open-file limit. Every client connection is one descriptor, so the
//! server, loadgen and the tests with many clients raise the soft limit to the hard one,
//! and keep [`RESERVED_FDS`] of it for everything that is not a connection.

use std::io;

/// Descriptors a process keeps back from its open-file limit for everything that is not a
/// connection: standard streams, the poll instance and its waker, the listener and its
/// EMFILE spare (server), the CA file and the output files (loadgen). The server's default
/// `--max-clients` and loadgen's check of `--clients` are the limit minus this.
pub const RESERVED_FDS: u64 = 32;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit in force.
pub fn raise() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests;
