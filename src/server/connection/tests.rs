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
    // take 16), which took the struct from 184 to 192.
    assert!(size <= 192, "Connection grew to {size} bytes");
}
