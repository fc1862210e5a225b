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
mod tests;
