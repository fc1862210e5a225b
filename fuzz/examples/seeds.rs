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
    set_up_version(who, order, 1, name)
}

/// PING, VERSION_NEGOTIATION selecting `version`, CLIENT_INFO.
fn set_up_version(who: u8, order: ByteOrder, version: u16, name: &[u8]) -> Vec<Pdu> {
    vec![
        to(who, 1, 0, Pdu::ping(order)),
        to(who, 1, 0, Pdu::client_version(order, version)),
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

    // Version 2: pushes, listings, moderation and OPER, with a v1 client in the channel.
    let mut v2 = set_up_version(0, Little, 2, b"amy");
    v2.extend(set_up_version(1, Big, 2, b"bob"));
    v2.extend(set_up(2, Little, b"carl"));
    let moderation = |who, order, command, channel: &[u8], target: &[u8], reason: &[u8]| {
        to(who, 3, 0, Pdu::moderation(command, order, channel, target, reason))
    };
    v2.extend([
        to(0, 3, 0, join(Little, b"amy", b"@a")),
        to(1, 3, 0, join(Big, b"bob", b"@a")),
        to(2, 3, 0, join(Little, b"carl", b"@a")),
        to(0, 3, 0, Pdu::send_message(Little, b"hi all")),
        to(1, 3, 0, Pdu::names(Big, b"")),
        to(2, 3, 0, Pdu::list_channels(Little)),
        to(0, 3, 0, Pdu::list_channels(Little)),
        moderation(1, Big, Command::Kick, b"@a", b"carl", b"not an op"),
        moderation(0, Little, Command::Kick, b"", b"bob", b"spam"),
        moderation(0, Little, Command::Ban, b"@a", b"carl", b"again"),
        to(2, 3, 0, join(Little, b"carl", b"@a")),
        moderation(0, Little, Command::Unban, b"@a", b"carl", b""),
        to(2, 3, 0, join(Little, b"carl", b"@a")),
        to(1, 3, 0, Pdu::oper(Big, b"wrong")),
        to(1, 3, 2, Pdu::oper(Big, b"secret")),
        moderation(1, Big, Command::Ban, b"*", b"carl", b""),
        to(1, 3, 0, Pdu::unban_address(Big, b"10.0.0.0")),
        to(0, 3, 0, Pdu::leave(Little)),
        to(1, 3, 0, Pdu::query(Big)),
    ]);

    vec![
        ("one-client", one),
        ("two-clients", two),
        ("refusals", refused),
        ("version-2", v2),
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
    println!("wrote {} seeds to {}", seeds().len(), dir.display());
    Ok(())
}
