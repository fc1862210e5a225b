//! Unit tests of the PDU codec: the layout, both byte orders, the text fields and the
//! checked name fields, then property tests of the round trip.

use super::*;

#[test]
fn layout_is_2260_bytes() {
    assert_eq!(PDU_LEN, PREFIX_LEN + 4 + PARAMS_LEN);
    assert_eq!(Pdu::ping(ByteOrder::Little).as_bytes().len(), 2260);
}

#[test]
fn command_in_both_orders() {
    let le = Pdu::new(Command::Query, ByteOrder::Little);
    let be = Pdu::new(Command::Query, ByteOrder::Big);
    assert_eq!(le.command_bytes(), [8, 0, 0, 0]);
    assert_eq!(be.command_bytes(), [0, 0, 0, 8]);
    for (pdu, order) in [(&le, ByteOrder::Little), (&be, ByteOrder::Big)] {
        assert_eq!(
            pdu.decode_command(None),
            Decoded::Known {
                command: Command::Query,
                order
            }
        );
        assert_eq!(
            pdu.decode_command(Some(order)),
            Decoded::Known {
                command: Command::Query,
                order
            }
        );
    }
    // Once the order is fixed, the other form is an unknown command.
    assert_eq!(
        be.decode_command(Some(ByteOrder::Little)),
        Decoded::Unknown([0, 0, 0, 8])
    );
}

#[test]
fn quit_is_zero_in_either_order() {
    let quit = Pdu::quit(ByteOrder::Big);
    assert_eq!(quit.command_bytes(), [0; 4]);
    for fixed in [None, Some(ByteOrder::Little), Some(ByteOrder::Big)] {
        assert!(matches!(
            quit.decode_command(fixed),
            Decoded::Known {
                command: Command::Quit,
                ..
            }
        ));
    }
}

#[test]
fn unknown_codes() {
    let mut pdu = Pdu::ping(ByteOrder::Little);
    pdu.bytes_mut()[256..260].copy_from_slice(&[15, 0, 0, 0]);
    assert_eq!(pdu.decode_command(None), Decoded::Unknown([15, 0, 0, 0]));
    pdu.bytes_mut()[256..260].copy_from_slice(&[1, 0, 0, 1]);
    assert_eq!(pdu.decode_command(None), Decoded::Unknown([1, 0, 0, 1]));
    pdu.bytes_mut()[256..260].copy_from_slice(&[0, 1, 0, 0]);
    assert_eq!(pdu.decode_command(None), Decoded::Unknown([0, 1, 0, 0]));
}

use crate::names::Problem;

fn channel(name: &[u8]) -> ChannelName {
    ChannelName::new(name).unwrap()
}

#[test]
fn fields_are_nul_padded_and_end_at_first_nul() {
    let mut pdu = Pdu::join(ByteOrder::Little, b"alice", &channel(b"@rust"));
    assert_eq!(&pdu.as_bytes()[..11], b"alice\0\0\0\0\0 ");
    assert_eq!(pdu.username(), b"alice");
    assert_eq!(pdu.channel(), b"@rust");
    // Garbage after the first NUL is ignored, as old clients leave it there.
    pdu.bytes_mut()[6..10].copy_from_slice(b"junk");
    pdu.bytes_mut()[16..20].copy_from_slice(b"\0zzz");
    assert_eq!(pdu.username(), b"alice");
    assert_eq!(pdu.channel(), b"@rust");
    // A field without NUL runs to its end.
    let full = Pdu::join(ByteOrder::Little, b"abcdefghij", &channel(&[b'@'; 50]));
    assert_eq!(full.username(), b"abcdefghij");
    assert_eq!(full.channel().len(), 50);
    assert_eq!(full.as_bytes()[CHANNEL.end], 0);
}

#[test]
fn channel_fields_decode_into_checked_names() {
    let mut pdu = Pdu::join(ByteOrder::Little, b"amy", &channel(b"@rust"));
    assert_eq!(pdu.channel_name(), Ok(channel(b"@rust")));
    // A 50-byte name is whole when a NUL follows it, too long when anything else does.
    let mut full = Pdu::join(ByteOrder::Little, b"amy", &channel(&[b'@'; 50]));
    full.bytes_mut()[CHANNEL.end + 1] = b'x';
    assert_eq!(full.channel_name(), Ok(channel(&[b'@'; 50])));
    full.bytes_mut()[CHANNEL.end] = b'x';
    let too_long = full.channel_name().unwrap_err();
    assert_eq!(too_long.problem(), Problem::TooLong);
    assert_eq!(too_long.kind(), NameKind::Channel);
    // What the wire holds is checked like any name.
    pdu.bytes_mut()[CHANNEL.start] = b'#';
    assert_eq!(
        pdu.channel_name().map_err(|e| e.problem()),
        Err(Problem::NoAt)
    );
    pdu.bytes_mut()[CHANNEL].fill(0);
    assert_eq!(
        pdu.channel_name().map_err(|e| e.problem()),
        Err(Problem::Empty)
    );
}

#[test]
fn setting_a_shorter_value_zeroes_the_rest() {
    let mut pdu = Pdu::send_message(ByteOrder::Little, b"a long message");
    pdu.set_params_text(b"hi");
    assert_eq!(pdu.params_text(), b"hi");
    assert!(pdu.params()[2..].iter().all(|&b| b == 0));
}

#[test]
fn version_is_big_endian_in_params() {
    let pdu = Pdu::server_version(ByteOrder::Little, 0x0102);
    assert_eq!(&pdu.params()[..2], &[1, 2]);
    assert_eq!(pdu.version(), 0x0102);
    assert_eq!(pdu.username(), b"SERVER");
    assert_eq!(Pdu::client_version(ByteOrder::Big, 1).username(), b"");
}

#[test]
fn client_info_name_and_the_byte_after_it() {
    let pdu = Pdu::client_info(ByteOrder::Little, b"bob");
    assert_eq!(pdu.client_info_name(), b"bob");
    assert_eq!(pdu.client_info_username(), Username::new(b"bob"));
    // A 10-byte name followed by NUL or the hostname's space is whole; followed by
    // anything else, it is longer than 10 bytes.
    let mut long = Pdu::client_info(ByteOrder::Little, b"abcdefghij");
    assert!(long.client_info_username().is_ok());
    long.bytes_mut()[260 + 10..260 + 15].copy_from_slice(b" host");
    assert!(long.client_info_username().is_ok());
    long.bytes_mut()[260 + 10] = b'k';
    assert_eq!(long.client_info_name(), b"abcdefghij");
    let too_long = long.client_info_username().unwrap_err();
    assert_eq!(too_long.problem(), Problem::TooLong);
    assert_eq!(too_long.kind(), NameKind::Username);
    let ack = Pdu::client_info_ack(ByteOrder::Big, b"bob");
    assert_eq!(ack.username(), b"SERVER");
    assert_eq!(ack.client_info_name(), b"bob");
}

#[test]
fn up_to_date_flag_at_61() {
    let marker = Pdu::up_to_date_marker(ByteOrder::Little, Some(&channel(b"@c")));
    assert_eq!(marker.as_bytes()[61], 1);
    assert!(marker.up_to_date());
    assert!(marker.params().iter().all(|&b| b == 0));
    let msg = Pdu::receive(ByteOrder::Little, b"amy", Some(&channel(b"@c")), b"hello");
    assert!(!msg.up_to_date());
    assert!(msg.as_bytes()[62..256].iter().all(|&b| b == 0));
}

#[test]
fn a_2000_byte_message_has_no_nul() {
    let text = vec![b'm'; 2000];
    let pdu = Pdu::send_message(ByteOrder::Little, &text);
    assert_eq!(pdu.params_text().len(), 2000);
    // The whole params area is the message, byte for byte, and the prefix is untouched.
    assert_eq!(pdu.params(), &text[..]);
    assert!(pdu.prefix().iter().all(|&b| b == 0));
}

mod round_trip {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn any_command() -> impl Strategy<Value = Command> {
        (0u32..9).prop_map(|code| Command::from_code(code).unwrap())
    }

    fn any_order() -> impl Strategy<Value = ByteOrder> {
        prop_oneof![Just(ByteOrder::Little), Just(ByteOrder::Big)]
    }

    /// Text without NUL, `1..=max` bytes.
    fn text(max: usize) -> impl Strategy<Value = Vec<u8>> {
        vec(1u8..=255, 1..=max)
    }

    /// Valid channel names, of every length.
    fn channel_name() -> impl Strategy<Value = ChannelName> {
        vec(0x21u8..=0x7e, 1..MAX_CHANNEL)
            .prop_map(|rest| ChannelName::new(&[&b"@"[..], &rest].concat()).unwrap())
    }

    proptest! {
        #[test]
        fn bytes_survive_wrapping(bytes in vec(any::<u8>(), PDU_LEN)) {
            let pdu = Pdu::from_slice(&bytes).unwrap();
            prop_assert_eq!(&pdu.as_bytes()[..], &bytes[..]);
            prop_assert_eq!(Pdu::from_bytes(*pdu.as_bytes()), pdu);
        }

        #[test]
        fn commands_round_trip_in_both_orders(command in any_command(), order in any_order()) {
            let pdu = Pdu::new(command, order);
            prop_assert_eq!(
                pdu.decode_command(Some(order)),
                Decoded::Known { command, order }
            );
            // Before the order is fixed, the bytes reveal it (QUIT reads as little).
            let revealed = if command == Command::Quit { ByteOrder::Little } else { order };
            prop_assert_eq!(
                pdu.decode_command(None),
                Decoded::Known { command, order: revealed }
            );
        }

        #[test]
        fn any_command_field_decodes_without_panic(
            raw in any::<[u8; 4]>(),
            fixed in proptest::option::of(any_order()),
        ) {
            let mut pdu = Pdu::ping(ByteOrder::Little);
            pdu.bytes_mut()[256..260].copy_from_slice(&raw);
            match pdu.decode_command(fixed) {
                // A known command re-encodes to the same bytes in the order it was read.
                Decoded::Known { command, order } => {
                    prop_assert_eq!(Pdu::new(command, order).command_bytes(), raw);
                    if let Some(fixed) = fixed {
                        prop_assert_eq!(order, fixed);
                    }
                }
                Decoded::Unknown(bytes) => prop_assert_eq!(bytes, raw),
            }
        }

        #[test]
        fn text_fields_round_trip(
            order in any_order(),
            name in text(MAX_USERNAME),
            channel in channel_name(),
            message in text(MAX_MESSAGE),
            flag in any::<bool>(),
        ) {
            let mut pdu = Pdu::receive(order, &name, Some(&channel), &message);
            pdu.set_up_to_date(flag);
            let back = Pdu::from_bytes(*pdu.as_bytes());
            prop_assert_eq!(back.username(), &name[..]);
            prop_assert_eq!(back.channel(), channel.as_bytes());
            prop_assert_eq!(ChannelName::new(back.channel()), Ok(channel));
            prop_assert_eq!(back.params_text(), &message[..]);
            prop_assert_eq!(back.up_to_date(), flag);
            prop_assert_eq!(back.as_bytes()[SEPARATOR], b' ');
            prop_assert!(back.as_bytes()[UP_TO_DATE + 1..PREFIX_LEN].iter().all(|&b| b == 0));
            prop_assert_eq!(
                back.decode_command(Some(order)),
                Decoded::Known { command: Command::ReceiveMessage, order }
            );
        }

        #[test]
        fn garbage_after_a_nul_is_ignored(
            name in text(MAX_USERNAME - 1),
            junk in vec(any::<u8>(), 1..MAX_USERNAME),
        ) {
            let mut pdu = Pdu::join(ByteOrder::Little, &name, &channel(b"@c"));
            let end = (name.len() + 1 + junk.len()).min(MAX_USERNAME);
            let room = end - name.len() - 1;
            pdu.bytes_mut()[name.len() + 1..end].copy_from_slice(&junk[..room]);
            prop_assert_eq!(pdu.username(), &name[..]);
        }

        #[test]
        fn client_pdus_round_trip(
            order in any_order(),
            name in text(MAX_USERNAME),
            version in any::<u16>(),
        ) {
            let info = Pdu::from_bytes(*Pdu::client_info(order, &name).as_bytes());
            prop_assert_eq!(info.client_info_name(), &name[..]);
            let ack = Pdu::client_info_ack(order, &name);
            prop_assert_eq!(ack.username(), SERVER_NAME);
            prop_assert_eq!(ack.client_info_name(), &name[..]);
            let v = Pdu::from_bytes(*Pdu::client_version(order, version).as_bytes());
            prop_assert_eq!(v.version(), version);
            prop_assert_eq!(&v.params()[..2], &version.to_be_bytes()[..]);
            prop_assert!(v.prefix().iter().all(|&b| b == 0));
        }
    }
}
