use super::*;

#[test]
fn a_buffer_given_back_is_lent_again_with_its_capacity_and_empty() {
    let mut buf = take();
    buf.extend_from_slice(&[7u8; 3000]);
    let capacity = buf.capacity();
    let before = kept();
    give(buf);
    assert_eq!(kept(), before + 1);
    let again = take();
    assert!(again.is_empty());
    assert_eq!(again.capacity(), capacity);
    assert_eq!(kept(), before);
}

#[test]
fn big_buffers_and_buffers_beyond_the_bound_are_freed() {
    let before = kept();
    give(Vec::with_capacity(KEPT_CAPACITY + 1));
    give(Vec::new());
    assert_eq!(kept(), before);
    for _ in 0..KEPT + 10 {
        give(Vec::with_capacity(16));
    }
    assert_eq!(kept(), KEPT);
}
