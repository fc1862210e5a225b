#[test]
fn raising_is_idempotent() {
    let first = super::raise().unwrap();
    assert!(first >= 64);
    assert_eq!(super::raise().unwrap(), first);
}
