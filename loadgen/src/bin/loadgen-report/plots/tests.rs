use super::*;

#[test]
fn labels() {
    assert_eq!(percentile_label(1.0), "0%");
    assert_eq!(percentile_label(2.0), "50%");
    assert_eq!(percentile_label(10.0), "90%");
    assert_eq!(percentile_label(100.0), "99%");
    assert_eq!(percentile_label(1000.0), "99.9%");
    assert_eq!(percentile_label(10000.0), "99.99%");
}
