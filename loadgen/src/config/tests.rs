use super::*;

fn config() -> Config {
    Config::example()
}

#[test]
fn seconds() {
    assert_eq!(parse_seconds("3").unwrap(), Duration::from_secs(3));
    assert_eq!(parse_seconds("0.25").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_seconds("0").unwrap(), Duration::ZERO);
    assert!(parse_seconds("-1").is_err());
    assert!(parse_seconds("abc").is_err());
    assert!(parse_seconds("inf").is_err());
    assert!(parse_seconds("NaN").is_err());
    assert_eq!(parse_rate("2500").unwrap(), 2500.0);
    assert!(parse_rate("-3").is_err());
}

#[test]
fn names_and_channels() {
    let c = config();
    assert_eq!(c.username(42), "lg42");
    assert_eq!(c.channel(0), "@load0");
    assert_eq!(c.channel(15), "@load1");
    assert!(c.validate().is_ok());
}

#[test]
fn invalid_runs() {
    let mut c = config();
    c.user_prefix = "toolongname".into();
    assert!(c.validate().unwrap_err().contains("--user-prefix"));
    let mut c = config();
    c.clients = 0;
    assert!(c.validate().is_err());
    let mut c = config();
    c.channels = 0;
    assert!(c.validate().is_err());
    let mut c = config();
    c.user_prefix = "a b".into();
    assert!(c.validate().is_err());
}

#[test]
fn usernames_map_back_to_their_client() {
    let mut c = config();
    c.first_id = 1000;
    assert_eq!(c.client_of(b"lg1000"), Some(0));
    assert_eq!(c.client_of(b"lg1099"), Some(99));
    for other in [
        &b"lg1100"[..], // past --clients: another process's
        b"lg999",       // before --first-id
        b"lg01000",
        b"lg",
        b"xx1000",
        b"lg+1000",
        b"lg1000x",
        b"SERVER",
        b"lg99999999999999999999",
    ] {
        assert_eq!(c.client_of(other), None, "{other:?}");
    }
    for i in [0, 42, 99] {
        assert_eq!(c.client_of(c.username(i).as_bytes()), Some(i));
    }
    assert_eq!(c.channel_size(), 15); // 100 clients in 7 channels
}

#[test]
fn protocols() {
    assert_eq!(parse_protocol("1"), Ok(Protocol::V1));
    assert_eq!(parse_protocol("2"), Ok(Protocol::V2));
    assert_eq!(
        parse_protocol("mixed"),
        Ok(Protocol::Mixed { v2_percent: 50 })
    );
    for bad in ["0", "3", "v2", "", "Mixed"] {
        assert!(parse_protocol(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_share("25"), Ok(25));
    assert_eq!(parse_share("25%"), Ok(25));
    for bad in ["0", "100", "-5", "half", "50.5"] {
        assert!(parse_share(bad).is_err(), "{bad}");
    }
    let mut c = config();
    assert!((0..c.clients).all(|i| c.version(i) == 1));
    c.protocol = Protocol::V2;
    assert!((0..c.clients).all(|i| c.version(i) == 2));
    assert_eq!(c.clients_by_version(), [0, 100]);
}

#[test]
fn a_mixed_run_splits_every_channel_not_the_channels() {
    // With an even number of channels, a split on the client number's parity would put
    // all of one version in every other channel.
    for (channels, percent) in [(10, 50), (200, 50), (7, 50), (10, 25), (4, 90)] {
        let c = Config {
            clients: 1000,
            channels,
            protocol: Protocol::Mixed {
                v2_percent: percent,
            },
            ..config()
        };
        for channel in 0..channels {
            let members: Vec<u16> = (0..c.clients)
                .filter(|i| i % channels == channel)
                .map(|i| c.version(i))
                .collect();
            let v2 = members.iter().filter(|&&v| v == 2).count();
            let want = members.len() * usize::from(percent) / 100;
            assert_eq!(v2, want, "{channels} channels, {percent} %: {members:?}");
        }
        let [v1, v2] = c.clients_by_version();
        assert_eq!(v1 + v2, 1000);
    }
    // At 50 %, members alternate: v1, v2, v1, v2 ...
    let c = Config {
        clients: 40,
        channels: 10,
        protocol: Protocol::Mixed { v2_percent: 50 },
        ..config()
    };
    let channel0: Vec<u16> = [0, 10, 20, 30].iter().map(|&i| c.version(i)).collect();
    assert_eq!(channel0, [1, 2, 1, 2]);
}

/// A run of `clients` clients in `channels` channels over `servers` servers.
fn spread(clients: u32, channels: u32, servers: u16) -> Config {
    Config {
        clients,
        channels,
        servers: (0..servers)
            .map(|n| SocketAddr::from((Ipv4Addr::LOCALHOST, 29200 + n)))
            .collect(),
        ..config()
    }
}

/// The servers of channel `c`'s members, in joining order.
fn channel_servers(c: &Config, channel: u32) -> Vec<usize> {
    (channel..c.clients)
        .step_by(c.channels as usize)
        .map(|i| c.server_of(i))
        .collect()
}

#[test]
fn one_server_takes_every_client() {
    let c = spread(50, 7, 1);
    assert!((0..50).all(|i| c.server_of(i) == 0));
    assert_eq!(c.clients_by_server(), [50]);
}

#[test]
fn consecutive_members_of_a_channel_sit_on_different_servers() {
    // K a multiple of S too (6 channels, 3 servers), where a split on the client number
    // alone would put each channel on one server.
    for (clients, channels, servers) in [(600, 200, 3), (60, 6, 3), (40, 4, 2), (70, 7, 5)] {
        let c = spread(clients, channels, servers);
        for channel in 0..channels {
            let on = channel_servers(&c, channel);
            for pair in on.windows(2) {
                assert_eq!(
                    pair[1],
                    (pair[0] + 1) % usize::from(servers),
                    "channel {channel} of {channels} over {servers} servers: {on:?}"
                );
            }
            // So every channel of at least S members has members on every server.
            if on.len() >= usize::from(servers) {
                let mut seen = on.clone();
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(seen.len(), usize::from(servers), "{on:?}");
            }
        }
    }
}

#[test]
fn consecutive_clients_go_round_robin_and_the_servers_share_them_evenly() {
    let c = spread(18_000, 200, 3);
    // Within one round of channels (clients j·K .. j·K + K − 1).
    for i in (1..c.clients).filter(|i| i % c.channels != 0) {
        assert_ne!(
            c.server_of(i),
            c.server_of(i - 1),
            "clients {} and {i}",
            i - 1
        );
    }
    // The cluster-3x scenario: 6,000 clients per node.
    assert_eq!(c.clients_by_server(), [6000, 6000, 6000]);
    // Any run: no server gets more than one channel's worth above another.
    for (clients, channels, servers) in [(1000, 7, 3), (999, 10, 4), (300, 200, 3), (5, 10, 3)] {
        let counts = spread(clients, channels, servers).clients_by_server();
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(
            max - min <= channels,
            "{clients}/{channels}/{servers}: {counts:?}"
        );
        assert_eq!(counts.iter().sum::<u32>(), clients);
    }
}

#[test]
fn with_mixed_protocols_every_server_has_both_versions_in_every_channel() {
    // The cluster-3x scenario: half v2, half v1, 200 channels, 3 nodes.
    let c = Config {
        protocol: Protocol::Mixed { v2_percent: 50 },
        ..spread(18_000, 200, 3)
    };
    for channel in 0..c.channels {
        let mut kinds = std::collections::BTreeSet::new();
        for i in (channel..c.clients).step_by(c.channels as usize) {
            kinds.insert((c.server_of(i), c.version(i)));
        }
        assert_eq!(kinds.len(), 6, "channel {channel}: {kinds:?}");
    }
}

#[test]
fn a_run_without_servers_is_refused() {
    let mut c = config();
    c.servers.clear();
    assert!(c.validate().unwrap_err().contains("--server"));
}
