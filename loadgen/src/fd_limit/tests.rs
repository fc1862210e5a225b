use super::*;

#[test]
fn fits() {
    assert!(check_fit(19_000, 20_000, 40, 28_232).is_ok());
    assert!(check_fit(20_000 - RESERVED_FDS, 20_000, 1, 28_232).is_ok());
}

#[test]
fn too_many_for_descriptors() {
    let e = check_fit(20_000, 20_000, 40, 28_232).unwrap_err();
    assert!(e.contains("open-file limit is 20000"), "{e}");
}

#[test]
fn too_many_for_ports() {
    let e = check_fit(30_000, 100_000, 1, 28_232).unwrap_err();
    assert!(e.contains("widen --sources"), "{e}");
    assert!(check_fit(30_000, 100_000, 2, 28_232).is_ok());
}
