//! The process's open-file limit and whether a run fits in it and in the ephemeral ports.
//!
//! Every simulated client holds one socket, so `--clients` is bounded by the descriptor
//! limit (minus a reserve for stdio, epoll and the output files) and by the ports that the
//! source addresses offer. A run that cannot fit is refused before it starts, rather than
//! failing half-way with `EMFILE` or `EADDRNOTAVAIL` and numbers that mean nothing.

use kaichat::fd_limit::RESERVED_FDS;

/// Checks that `clients` connections fit in `fd_limit` descriptors and in
/// `ports_per_source × sources` ephemeral ports. The error is the line shown to the user.
pub fn check_fit(
    clients: u64,
    fd_limit: u64,
    sources: u64,
    ports_per_source: u64,
) -> Result<(), String> {
    let fd_room = fd_limit.saturating_sub(RESERVED_FDS);
    if clients > fd_room {
        return Err(format!(
            "{clients} clients do not fit: the open-file limit is {fd_limit} and {RESERVED_FDS} \
             descriptors are kept in reserve, so at most {fd_room} clients fit in one process \
             (run several loadgen processes, or fewer clients)"
        ));
    }
    let port_room = sources.saturating_mul(ports_per_source);
    if clients > port_room {
        return Err(format!(
            "{clients} clients do not fit: {sources} source address(es) × {ports_per_source} \
             ephemeral ports = {port_room} connections at most (widen --sources)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
