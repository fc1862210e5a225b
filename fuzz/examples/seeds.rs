//! Writes a seed corpus for the `session` fuzz target: a few well-formed conversations,
//! so that the fuzzer starts past the set-up instead of guessing command fields.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/corpus/session`

use std::path::PathBuf;

use kaichat_proto::names::ChannelName;
use kaichat_proto::pdu::{ByteOrder, Command, Pdu, CHANNEL, PREFIX_LEN, SEPARATOR};

/// A PDU for session `who`, after `seconds`, with answers pulled `budget` at a time: the
/// steering bytes the fuzz target reads from prefix[254] and prefix[255].
fn to(who: u8, budget: u8, seconds: u8, mut pdu: Pdu) -> Pdu {
    pdu.bytes_mut()[PREFIX_LEN - 1] = who | (budget << 4);
    pdu.bytes_mut()[PREFIX_LEN - 2] = seconds;
    pdu
}

/// JOIN_CHANNEL with any bytes in the channel field: `Pdu::join` takes only valid names,
/// and the seeds also hold a refused one.
fn join(order: ByteOrder, name: &[u8], channel: &[u8]) -> Pdu {
    match ChannelName::new(channel) {
        Ok(channel) => Pdu::join(order, name, &channel),
        Err(_) => {
            let mut pdu = Pdu::new(Command::JoinChannel, order);
            pdu.set_username(name);
            pdu.bytes_mut()[SEPARATOR] = b' ';
            pdu.bytes_mut()[CHANNEL][..channel.len()].copy_from_slice(channel);
            pdu
        }
    }
}

fn set_up(who: u8, order: ByteOrder, name: &[u8]) -> Vec<Pdu> {
    vec![
        to(who, 1, 0, Pdu::ping(order)),
        to(who, 1, 0, Pdu::client_version(order, 1)),
        to(who, 1, 0, Pdu::client_info(order, name)),
    ]
}

fn seeds() -> Vec<(&'static str, Vec<Pdu>)> {
    use ByteOrder::{Big, Little};
    let mut one = set_up(0, Little, b"amy");
    one.extend([
        to(0, 1, 1, join(Little, b"amy", b"@a")),
        to(0, 1, 1, Pdu::send_message(Little, b"hello")),
        to(0, 1, 1, Pdu::query(Little)),
        to(0, 1, 1, Pdu::ping(Little)),
        to(0, 1, 1, Pdu::leave(Little)),
        to(0, 1, 1, Pdu::quit(Little)),
    ]);

    let mut two = set_up(0, Little, b"amy");
    two.extend(set_up(1, Big, b"bob"));
    two.extend([
        to(0, 2, 1, join(Little, b"amy", b"@a")),
        to(1, 2, 1, join(Big, b"bob", b"@a")),
    ]);
    for i in 0..6u8 {
        two.push(to(1, 2, 1, Pdu::send_message(Big, &[b'm', b'0' + i])));
    }
    two.extend([
        to(0, 1, 1, Pdu::query(Little)),
        to(1, 1, 1, join(Big, b"bob", b"@b")),
        to(0, 1, 1, Pdu::query(Little)),
        to(2, 1, 1, Pdu::ping(Little)),
        to(0, 1, 40, Pdu::query(Little)),
    ]);

    let mut refused = vec![
        to(2, 1, 0, Pdu::ping(Big)),
        to(2, 1, 0, Pdu::client_version(Big, 1)),
        to(2, 1, 0, Pdu::client_info(Big, b"SERVER")),
        to(2, 1, 0, Pdu::client_info(Big, b"a b")),
        to(2, 1, 0, Pdu::client_info(Big, b"carl")),
        to(2, 1, 0, join(Big, b"carl", b"nochannel")),
        to(2, 1, 0, Pdu::send_message(Big, b"nowhere")),
        to(2, 1, 0, Pdu::client_version(Little, 1)),
        to(2, 1, 0, Pdu::leave(Big)),
    ];
    refused.push(to(1, 1, 0, Pdu::ping(Little)));
    refused.push(to(1, 1, 0, Pdu::client_version(Little, 2)));

    vec![
        ("one-client", one),
        ("two-clients", two),
        ("refusals", refused),
    ]
}

fn main() -> std::io::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(|| "fuzz/corpus/session".into(), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    for (name, pdus) in seeds() {
        let bytes: Vec<u8> = pdus.iter().flat_map(|p| p.as_bytes().to_vec()).collect();
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("wrote 3 seeds to {}", dir.display());
    Ok(())
}
