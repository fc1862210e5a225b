use super::Connection;

/// The server's own state per connection stays small: rustls's session (boxed, about
/// 6 KB) is the real cost of an idle client, and this guard keeps ours from growing
/// unnoticed.
#[test]
fn connection_state_is_small() {
    let size = std::mem::size_of::<Connection>();
    // 192 bytes on x86_64 today: socket, boxed transport, session, readiness, timer, the
    // stage of a lingering close (8 bytes: its reason, flags and bound in seconds), for
    // the metrics and logs the accept's millisecond and a QUERY's microsecond (4), and
    // the claim on its address's count (4 bytes, a slab key: the address itself would
    // take 16), which took the struct from 184 to 192. Protocol v2 added 56 to the
    // session: the client's address (for server bans) and its handle in the hub, the
    // version, the rate limit's state, and pointers to the rare parts (a listing, an OPER,
    // a removal), each boxed when in use so that an idle session does not pay for them.
    assert!(size <= 248, "Connection grew to {size} bytes");
}
