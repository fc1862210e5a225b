//! Reading the HdrHistogram percentile-distribution text that loadgen writes (`*.hgrm`).
//! Lines that are not data rows are skipped; a damaged file gives fewer points, never a
//! panic.

/// One row: the value (milliseconds) at a percentile (0..=1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub value_ms: f64,
    pub percentile: f64,
}

/// Parses the data rows of a percentile distribution.
pub fn parse(text: &str) -> Vec<Point> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let value_ms = words.next()?.parse().ok()?;
            let percentile: f64 = words.next()?.parse().ok()?;
            (0.0..=1.0).contains(&percentile).then_some(Point {
                value_ms,
                percentile,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
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
}
