use super::*;
use std::net::Ipv4Addr;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::from([a, b, c, d])
}

fn limits(max_per_address: u32, accept_rate: u32, accept_burst: u32) -> AddressLimits {
    AddressLimits {
        max_per_address,
        accept_rate,
        accept_burst,
        limit_loopback: false,
    }
}

#[test]
fn an_address_holds_at_most_max_per_address_and_others_are_not_affected() {
    let mut admission = Admission::new(limits(3, 0, 1), 1000);
    let a = v4(192, 0, 2, 1);
    let claims: Vec<Claim> = (0..3)
        .map(|_| admission.admit(a, 0).unwrap().expect("counted"))
        .collect();
    assert_eq!(admission.admit(a, 0), Err(Refusal::MaxPerAddress));
    assert!(admission.admit(v4(192, 0, 2, 2), 0).is_ok());
    // One closes: one more is admitted, and no more.
    admission.release(claims[0], 5);
    assert!(admission.admit(a, 5).is_ok());
    assert_eq!(admission.admit(a, 5), Err(Refusal::MaxPerAddress));
}

#[test]
fn the_bucket_takes_a_burst_then_refills_at_the_rate() {
    // 2 connections a second, bursts of 4.
    let mut admission = Admission::new(limits(0, 2, 4), 1000);
    let a = v4(198, 51, 100, 7);
    for _ in 0..4 {
        assert!(admission.admit(a, 1000).is_ok());
    }
    assert_eq!(admission.admit(a, 1000), Err(Refusal::AcceptRate));
    // Half a second earns one token: not a millisecond earlier.
    assert_eq!(admission.admit(a, 1499), Err(Refusal::AcceptRate));
    assert!(admission.admit(a, 1500).is_ok());
    assert_eq!(admission.admit(a, 1500), Err(Refusal::AcceptRate));
    // Another address has its own bucket.
    assert!(admission.admit(v4(198, 51, 100, 8), 1500).is_ok());
    // A long pause fills the bucket, never beyond the burst.
    for _ in 0..4 {
        assert!(admission.admit(a, 60_000).is_ok());
    }
    assert_eq!(admission.admit(a, 60_000), Err(Refusal::AcceptRate));
}

#[test]
fn a_connection_refused_for_the_count_takes_no_token() {
    let mut admission = Admission::new(limits(1, 1, 2), 1000);
    let a = v4(203, 0, 113, 9);
    let claim = admission.admit(a, 0).unwrap().unwrap();
    for _ in 0..10 {
        assert_eq!(admission.admit(a, 0), Err(Refusal::MaxPerAddress));
    }
    admission.release(claim, 0);
    // The second token of the burst is still there.
    assert!(admission.admit(a, 0).is_ok());
}

#[test]
fn loopback_is_exempt_unless_limited() {
    let loopbacks = [
        v4(127, 0, 0, 1),
        v4(127, 0, 0, 2),
        IpAddr::from(Ipv6Addr::LOCALHOST),
        IpAddr::from(Ipv4Addr::new(127, 0, 0, 3).to_ipv6_mapped()),
    ];
    let mut exempt = Admission::new(limits(1, 1, 1), 1000);
    for ip in loopbacks {
        for _ in 0..5 {
            assert_eq!(exempt.admit(ip, 0), Ok(None), "{ip}");
        }
    }
    assert_eq!(exempt.addresses(), 0);
    let mut limited = Admission::new(
        AddressLimits {
            limit_loopback: true,
            ..limits(1, 0, 1)
        },
        1000,
    );
    for ip in loopbacks {
        assert!(limited.admit(ip, 0).is_ok(), "{ip}");
    }
    // 127.0.0.3 and its IPv4-mapped form are one address, counted once already.
    assert_eq!(
        limited.admit(v4(127, 0, 0, 3), 0),
        Err(Refusal::MaxPerAddress)
    );
    assert_eq!(
        limited.admit(v4(127, 0, 0, 1), 0),
        Err(Refusal::MaxPerAddress)
    );
}

#[test]
fn an_ipv4_mapped_ipv6_address_counts_as_its_ipv4_address() {
    let mut admission = Admission::new(limits(2, 0, 1), 1000);
    let ipv4 = Ipv4Addr::new(192, 0, 2, 33);
    let mapped = IpAddr::from(ipv4.to_ipv6_mapped());
    let first = admission.admit(IpAddr::from(ipv4), 0).unwrap().unwrap();
    let second = admission.admit(mapped, 0).unwrap().unwrap();
    assert_eq!(first, second);
    assert_eq!(
        admission.admit(IpAddr::from(ipv4), 0),
        Err(Refusal::MaxPerAddress)
    );
    assert_eq!(admission.admit(mapped, 0), Err(Refusal::MaxPerAddress));
    assert_eq!(admission.addresses(), 1);
    // A real IPv6 address is another address.
    assert!(admission.admit("2001:db8::1".parse().unwrap(), 0).is_ok());
}

#[test]
fn with_both_limits_off_nothing_is_remembered() {
    let mut admission = Admission::new(AddressLimits::OFF, 1000);
    for i in 0..100 {
        assert_eq!(admission.admit(v4(10, 0, 0, i), 0), Ok(None));
    }
    assert_eq!(admission.addresses(), 0);
}

#[test]
fn an_address_is_forgotten_once_it_holds_nothing_and_its_bucket_is_full() {
    let mut admission = Admission::new(limits(10, 10, 20), 1000);
    let a = v4(192, 0, 2, 50);
    let claims: Vec<Claim> = (0..3)
        .map(|_| admission.admit(a, 0).unwrap().unwrap())
        .collect();
    for claim in claims {
        admission.release(claim, 100);
    }
    // 3 tokens taken, 1 earned in 100 ms: still refilling, so still remembered.
    assert_eq!(admission.addresses(), 1);
    admission.sweep(199);
    assert_eq!(admission.addresses(), 1);
    admission.sweep(300);
    assert_eq!(admission.addresses(), 0);
    // Released with the bucket full already: forgotten at once.
    let claim = admission.admit(a, 1000).unwrap().unwrap();
    admission.release(claim, 2000);
    assert_eq!(admission.addresses(), 0);
    // Without a rate limit, an address is forgotten with its last connection.
    let mut count_only = Admission::new(limits(10, 0, 1), 1000);
    let claim = count_only.admit(a, 0).unwrap().unwrap();
    count_only.release(claim, 0);
    assert_eq!(count_only.addresses(), 0);
}

#[test]
fn a_flood_from_many_addresses_stays_within_the_hard_size() {
    // 100,000 addresses, each connecting once and leaving at once (buckets refilling):
    // the map never holds more than its hard size, and one address that holds
    // connections throughout keeps its count.
    let mut admission = Admission::new(limits(2, 20, 40), 1000);
    let holder = v4(192, 0, 2, 1);
    let held: Vec<Claim> = (0..2)
        .map(|_| admission.admit(holder, 0).unwrap().unwrap())
        .collect();
    for i in 0..100_000u32 {
        let [_, b, c, d] = i.to_be_bytes();
        let ip = v4(10, b, c, d);
        let now = u64::from(i / 100);
        let claim = admission.admit(ip, now).unwrap().unwrap();
        admission.release(claim, now);
        assert!(admission.addresses() <= 1000);
        if i % 1000 == 0 {
            admission.sweep(now);
        }
    }
    assert_eq!(admission.admit(holder, 1000), Err(Refusal::MaxPerAddress));
    admission.release(held[0], 1000);
    assert!(admission.admit(holder, 1000).is_ok());
    // Once the flood is over and the buckets refilled, the map forgets it and gives its
    // room back.
    admission.sweep(10_000);
    assert_eq!(admission.addresses(), 1);
    assert!(
        admission.peers.capacity() < 1000,
        "{}",
        admission.peers.capacity()
    );
}
