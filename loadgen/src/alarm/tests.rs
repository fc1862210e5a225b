use super::*;
use mio::{Events, Poll};
use std::time::Instant;

#[test]
fn wakes_the_poll_with_sub_millisecond_precision() {
    let mut poll = Poll::new().unwrap();
    let mut alarm = Alarm::new(poll.registry(), Token(7)).unwrap();
    let mut events = Events::with_capacity(4);
    let start = Instant::now();
    alarm.arm(Duration::from_micros(300)).unwrap();
    poll.poll(&mut events, Some(Duration::from_secs(2)))
        .unwrap();
    let waited = start.elapsed();
    assert!(events.iter().any(|e| e.token() == Token(7)));
    assert!(waited >= Duration::from_micros(300), "{waited:?}");
    assert!(waited < Duration::from_secs(1), "{waited:?}");
    alarm.clear();
}
