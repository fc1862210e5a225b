use super::*;

#[test]
fn rows_only() {
    let text = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n\
                \x20      0.100 0.000000000000          1           1.00\n\
                \x20      0.250 0.500000000000          5           2.00\n\
                \x20      9.000 1.000000000000         10\n\
                #[Mean    =        1.000, StdDeviation   =        0.100]\n";
    let points = parse(text);
    assert_eq!(points.len(), 3);
    assert_eq!(
        points[1],
        Point {
            value_ms: 0.25,
            percentile: 0.5
        }
    );
    assert_eq!(points[2].percentile, 1.0);
    assert!(parse("garbage\n1 2 3\n").is_empty());
}
