use super::*;

#[test]
fn a_paused_direction_keeps_its_event_for_when_it_resumes() {
    let mut r = Readiness::new();
    assert!(!r.can_read() && !r.can_write());
    r.event = Ready::READABLE | Ready::WRITABLE;
    assert!(r.can_read() && r.can_write());
    assert!(r.pause_reading(), "a new pause");
    assert!(!r.pause_reading(), "paused already");
    assert!(!r.can_read());
    // No new edge comes while paused; the old one is still there on resume.
    r.resume_reading();
    assert!(r.can_read());
    r.read_drained();
    assert!(!r.can_read());
    r.write_blocked();
    assert!(!r.can_write());
    r.event = Ready::WRITABLE;
    r.stop_writing();
    assert!(!r.can_write());
}
