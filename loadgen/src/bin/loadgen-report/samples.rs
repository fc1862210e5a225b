//! The /proc samples `scripts/loadtest.sh` takes of a process once a second
//! (`t_unix,rss_kib,cpu_ticks,cpu_ns`), and what can be read from them: CPU time spent
//! between two instants (linear between samples) and RSS at a moment or over a window.

/// One sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Unix time, seconds.
    pub t: f64,
    pub rss_kib: f64,
    /// CPU time used so far, seconds.
    pub cpu_s: f64,
}

/// Parses the CSV; `clk_tck` converts ticks when the nanosecond column is missing or 0.
/// Rows that do not parse are skipped.
pub fn parse(text: &str, clk_tck: f64) -> Vec<Sample> {
    let mut out: Vec<Sample> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            let t: f64 = cols.first()?.parse().ok()?;
            let rss_kib: f64 = cols.get(1)?.parse().ok()?;
            let ticks: f64 = cols.get(2)?.parse().ok()?;
            let ns: f64 = cols.get(3).and_then(|c| c.parse().ok()).unwrap_or(0.0);
            let cpu_s = if ns > 0.0 { ns / 1e9 } else { ticks / clk_tck };
            Some(Sample { t, rss_kib, cpu_s })
        })
        .collect();
    out.sort_by(|a, b| a.t.total_cmp(&b.t));
    out
}

/// Linear interpolation of `field` at time `t`, clamped to the first and last samples.
fn at(samples: &[Sample], t: f64, field: impl Fn(&Sample) -> f64) -> Option<f64> {
    let first = samples.first()?;
    let last = samples.last()?;
    if t <= first.t {
        return Some(field(first));
    }
    if t >= last.t {
        return Some(field(last));
    }
    let i = samples.partition_point(|s| s.t <= t);
    let (a, b) = (&samples[i - 1], &samples[i]);
    let span = b.t - a.t;
    if span <= 0.0 {
        return Some(field(b));
    }
    Some(field(a) + (field(b) - field(a)) * (t - a.t) / span)
}

/// CPU seconds used between `t0` and `t1`.
pub fn cpu_between(samples: &[Sample], t0: f64, t1: f64) -> Option<f64> {
    Some(at(samples, t1, |s| s.cpu_s)? - at(samples, t0, |s| s.cpu_s)?)
}

/// The usual time between two samples (the median gap), seconds.
pub fn period(samples: &[Sample]) -> Option<f64> {
    let mut gaps: Vec<f64> = samples.windows(2).map(|w| w[1].t - w[0].t).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    Some(gaps[gaps.len() / 2])
}

/// RSS of the last sample taken at or before `t`.
pub fn rss_before(samples: &[Sample], t: f64) -> Option<f64> {
    samples
        .iter()
        .take_while(|s| s.t <= t)
        .last()
        .map(|s| s.rss_kib)
}

/// Median RSS of the samples inside `[t0, t1]`.
pub fn rss_median(samples: &[Sample], t0: f64, t1: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples
        .iter()
        .filter(|s| s.t >= t0 && s.t <= t1)
        .map(|s| s.rss_kib)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Per-interval CPU use in percent of one core, at the end time of each interval.
pub fn cpu_percent_series(samples: &[Sample]) -> Vec<(f64, f64)> {
    samples
        .windows(2)
        .filter(|w| w[1].t > w[0].t)
        .map(|w| {
            (
                w[1].t,
                (w[1].cpu_s - w[0].cpu_s) / (w[1].t - w[0].t) * 100.0,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
