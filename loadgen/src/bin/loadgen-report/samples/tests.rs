use super::*;

fn samples() -> Vec<Sample> {
    parse(
        "t_unix,rss_kib,cpu_ticks,cpu_ns\n\
         100.0,1000,0,0\n\
         101.0,1000,10,100000000\n\
         102.0,3000,20,300000000\n\
         bad,row\n\
         103.0,5000,30,600000000\n",
        100.0,
    )
}

#[test]
fn parses_and_prefers_nanoseconds() {
    let s = samples();
    assert_eq!(s.len(), 4);
    assert!((s[2].cpu_s - 0.3).abs() < 1e-9);
    // Ticks when there is no nanosecond column.
    let t = parse("h\n1,2,50\n", 100.0);
    assert!((t[0].cpu_s - 0.5).abs() < 1e-9);
}

#[test]
fn cpu_is_interpolated() {
    let s = samples();
    assert!((cpu_between(&s, 101.0, 103.0).unwrap() - 0.5).abs() < 1e-9);
    assert!((cpu_between(&s, 101.5, 102.5).unwrap() - 0.25).abs() < 1e-9);
    // Outside the samples: clamped.
    assert!((cpu_between(&s, 0.0, 1000.0).unwrap() - 0.6).abs() < 1e-9);
    assert_eq!(cpu_between(&[], 0.0, 1.0), None);
}

#[test]
fn rss_windows() {
    let s = samples();
    assert_eq!(rss_before(&s, 101.5), Some(1000.0));
    assert_eq!(rss_before(&s, 99.0), None);
    assert_eq!(rss_median(&s, 101.5, 103.0), Some(5000.0));
    assert_eq!(rss_median(&s, 100.0, 103.0), Some(3000.0));
    assert_eq!(rss_median(&s, 200.0, 300.0), None);
    let cpu = cpu_percent_series(&s);
    assert_eq!(cpu.len(), 3);
    assert!((cpu[2].1 - 30.0).abs() < 1e-6);
    assert_eq!(period(&s), Some(1.0));
    assert_eq!(period(&s[..1]), None);
}
