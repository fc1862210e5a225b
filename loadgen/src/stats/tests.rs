use super::*;

#[test]
fn percentiles_of_a_known_set() {
    let mut h = Latency::new();
    for v in 1..=1000 {
        h.record(Duration::from_micros(v));
    }
    let p = h.summary();
    assert_eq!(p.count, 1000);
    assert_eq!(p.p50, 500);
    assert_eq!(p.p90, 900);
    assert_eq!(p.p99, 990);
    assert_eq!(p.max, 1000);
    assert_eq!(Latency::new().summary(), Percentiles::default());
}

#[test]
fn out_of_range_values_are_clamped_not_lost() {
    let mut h = Latency::new();
    h.record(Duration::ZERO);
    h.record(Duration::MAX);
    assert_eq!(h.count(), 2);
    assert!(h.summary().max >= HIGHEST_US);
}

#[test]
fn hgrm_format() {
    let mut h = Latency::new();
    for v in [1_000, 2_000, 3_000, 50_000] {
        h.record(Duration::from_micros(v));
    }
    let text = h.percentile_distribution();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert_eq!(lines.next(), Some(""));
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(|w| w.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() >= 4);
    let first = &rows[0];
    assert!((first[0] - 1.0).abs() < 0.01, "ms: {first:?}");
    let last = rows.last().unwrap();
    assert_eq!(last.len(), 3, "the 100% row has no 1/(1-p)");
    assert!((last[0] - 50.0).abs() < 0.1);
    assert_eq!(last[1], 1.0);
    assert_eq!(last[2], 4.0);
    assert!(text.contains("#[Max     =       50.015") || text.contains("#[Max     ="));
    assert!(text.contains("Total count    =            4"));
    // Empty histograms still give a readable file.
    assert!(Latency::new()
        .percentile_distribution()
        .contains("Total count    =            0"));
}

#[test]
fn causes_count() {
    let mut c = Causes::default();
    c.add("tls");
    c.add("tls");
    c.add("connect: refused");
    assert_eq!(c.total(), 3);
    assert_eq!(
        c.iter().collect::<Vec<_>>(),
        [("connect: refused", 1), ("tls", 2)]
    );
}

#[test]
fn delivery_is_both_versions_together() {
    let mut m = Metrics::default();
    m.delivery_v1.record(Duration::from_millis(1_500));
    m.delivery_v1.record(Duration::from_millis(900));
    m.delivery_v2.record(Duration::from_micros(800));
    let m = m.with_delivery();
    assert_eq!(m.delivery.count(), 3);
    assert_eq!(m.delivery.quantile(0.0), m.delivery_v2.quantile(0.0));
    assert_eq!(m.delivery.quantile(1.0), m.delivery_v1.quantile(1.0));
}
