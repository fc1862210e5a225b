//! The 2260-byte KaiChat PDU (contract sections 2 and 3): layout, command codes, fixed
//! NUL-padded text fields and the per-client byte order of the command field.
//!
//! This module encodes and decodes bytes. Name fields that a receiver acts on decode into
//! the checked types of `names` (the byte after a full field included); it never decides
//! what a PDU means for a connection: that is `session` (server) and `client` (client side).

use std::fmt;

use crate::names::{ChannelName, NameError, NameKind, Username};

/// Total size of every PDU on the wire.
pub const PDU_LEN: usize = 2260;
/// Size of the ASCII prefix.
pub const PREFIX_LEN: usize = 256;
/// Size of the params area.
pub const PARAMS_LEN: usize = 2000;

const COMMAND: std::ops::Range<usize> = PREFIX_LEN..PREFIX_LEN + 4;
const PARAMS: std::ops::Range<usize> = PREFIX_LEN + 4..PDU_LEN;

/// The username field of the prefix (and of CLIENT_INFO's params).
pub const USERNAME: std::ops::Range<usize> = 0..10;
/// The byte between username and channel: a space when a channel follows.
pub const SEPARATOR: usize = 10;
/// The channel field of the prefix.
pub const CHANNEL: std::ops::Range<usize> = 11..61;
/// The up-to-date flag of RECEIVE_MESSAGE (contract section 5, pinned at 61).
pub const UP_TO_DATE: usize = 61;

/// Longest username, in bytes.
pub const MAX_USERNAME: usize = USERNAME.end - USERNAME.start;
/// Longest channel name, in bytes.
pub const MAX_CHANNEL: usize = CHANNEL.end - CHANNEL.start;
/// Longest message, in bytes.
pub const MAX_MESSAGE: usize = PARAMS_LEN;
/// The reserved name the server writes in the username field.
pub const SERVER_NAME: &[u8] = b"SERVER";
/// The protocol version this implementation speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The command codes of contract section 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    Quit = 0,
    VersionNegotiation = 1,
    ClientInfo = 2,
    JoinChannel = 3,
    SendMessage = 4,
    ReceiveMessage = 5,
    LeaveChannel = 6,
    PingPong = 7,
    Query = 8,
}

impl Command {
    /// The command for a code, if the code is one of the nine.
    pub fn from_code(code: u32) -> Option<Command> {
        Some(match code {
            0 => Command::Quit,
            1 => Command::VersionNegotiation,
            2 => Command::ClientInfo,
            3 => Command::JoinChannel,
            4 => Command::SendMessage,
            5 => Command::ReceiveMessage,
            6 => Command::LeaveChannel,
            7 => Command::PingPong,
            8 => Command::Query,
            _ => return None,
        })
    }

    /// The wire code.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// Byte order of the command field. Little-endian is the protocol's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    #[default]
    Little,
    Big,
}

impl ByteOrder {
    fn encode(self, code: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => code.to_le_bytes(),
            ByteOrder::Big => code.to_be_bytes(),
        }
    }

    /// The code `bytes` hold, read in this order.
    pub(crate) fn decode(self, bytes: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(bytes),
            ByteOrder::Big => u32::from_be_bytes(bytes),
        }
    }
}

/// What the command field of a received PDU says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A known command. `order` is the byte order it was read in: the fixed order when one
    /// was given, otherwise the order the bytes reveal (little for QUIT, which is all zeros).
    Known { command: Command, order: ByteOrder },
    /// A code that is not one of the nine, or not readable in the fixed order.
    Unknown([u8; 4]),
}

/// One PDU: exactly [`PDU_LEN`] bytes. Builders zero everything they do not set, as the
/// contract asks of senders.
#[derive(Clone, PartialEq, Eq)]
pub struct Pdu {
    bytes: [u8; PDU_LEN],
}

impl fmt::Debug for Pdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pdu")
            .field("command", &self.command_bytes())
            .field("username", &String::from_utf8_lossy(self.username()))
            .field("channel", &String::from_utf8_lossy(self.channel()))
            .field("flag", &self.bytes[UP_TO_DATE])
            .field("params", &String::from_utf8_lossy(self.params_text()))
            .finish()
    }
}

/// The text of a fixed-width field: everything before its first NUL, or the whole field.
fn field_text(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

fn put_field(field: &mut [u8], text: &[u8]) {
    let n = text.len().min(field.len());
    field[..n].copy_from_slice(&text[..n]);
    field[n..].fill(0);
}

impl Pdu {
    /// An all-zero PDU carrying `command` in `order`.
    pub fn new(command: Command, order: ByteOrder) -> Pdu {
        let mut bytes = [0u8; PDU_LEN];
        bytes[COMMAND].copy_from_slice(&order.encode(command.code()));
        Pdu { bytes }
    }

    /// Wraps received bytes.
    pub fn from_bytes(bytes: [u8; PDU_LEN]) -> Pdu {
        Pdu { bytes }
    }

    /// Copies a PDU out of a slice of exactly [`PDU_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Pdu> {
        Some(Pdu {
            bytes: bytes.try_into().ok()?,
        })
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8; PDU_LEN] {
        &self.bytes
    }

    /// The raw command field.
    pub fn command_bytes(&self) -> [u8; 4] {
        [
            self.bytes[COMMAND.start],
            self.bytes[COMMAND.start + 1],
            self.bytes[COMMAND.start + 2],
            self.bytes[COMMAND.start + 3],
        ]
    }

    /// Reads the command field (contract section 3). With `fixed` set, only that order is
    /// accepted; without it, `[v,0,0,0]` reads as little-endian v and `[0,0,0,v]` as
    /// big-endian v.
    pub fn decode_command(&self, fixed: Option<ByteOrder>) -> Decoded {
        let raw = self.command_bytes();
        let known = |order: ByteOrder| {
            Command::from_code(order.decode(raw)).map(|command| Decoded::Known { command, order })
        };
        let found = match fixed {
            Some(order) => known(order),
            None => match raw {
                [_, 0, 0, 0] => known(ByteOrder::Little),
                [0, 0, 0, _] => known(ByteOrder::Big),
                _ => None,
            },
        };
        found.unwrap_or(Decoded::Unknown(raw))
    }

    /// The whole 256-byte prefix.
    pub fn prefix(&self) -> &[u8] {
        &self.bytes[..PREFIX_LEN]
    }

    /// The whole 2000-byte params area.
    pub fn params(&self) -> &[u8] {
        &self.bytes[PARAMS]
    }

    /// The username field of the prefix, up to its first NUL.
    pub fn username(&self) -> &[u8] {
        field_text(&self.bytes[USERNAME])
    }

    /// The channel field of the prefix, up to its first NUL, as it is on the wire.
    pub fn channel(&self) -> &[u8] {
        field_text(&self.bytes[CHANNEL])
    }

    /// The channel field of a JOIN_CHANNEL or of its acknowledgement, read as a channel
    /// name (contract section 5): a 50-byte name must be followed by a NUL at `prefix[61]`,
    /// anything else there means it is longer. (In a RECEIVE_MESSAGE, `prefix[61]` is the
    /// up-to-date flag: check its [`Pdu::channel`] with `ChannelName::new` instead.)
    pub fn channel_name(&self) -> Result<ChannelName, NameError> {
        let name = self.channel();
        if name.len() == MAX_CHANNEL && self.bytes[CHANNEL.end] != 0 {
            return Err(NameError::overflows(NameKind::Channel, name));
        }
        ChannelName::new(name)
    }

    /// The up-to-date flag of a RECEIVE_MESSAGE: true when it is 1.
    pub fn up_to_date(&self) -> bool {
        self.bytes[UP_TO_DATE] == 1
    }

    /// The params as text, up to the first NUL (a message, a notice, a username).
    pub fn params_text(&self) -> &[u8] {
        field_text(self.params())
    }

    /// params[0..2] as a big-endian u16: the version of VERSION_NEGOTIATION.
    pub fn version(&self) -> u16 {
        u16::from_be_bytes([self.bytes[PARAMS.start], self.bytes[PARAMS.start + 1]])
    }

    /// Sets the username field of the prefix.
    pub fn set_username(&mut self, name: &[u8]) -> &mut Pdu {
        put_field(&mut self.bytes[USERNAME], name);
        self
    }

    /// Sets the channel field (left empty for `None`), with the separating space before it.
    pub fn set_channel(&mut self, channel: Option<&ChannelName>) -> &mut Pdu {
        self.bytes[SEPARATOR] = b' ';
        put_field(
            &mut self.bytes[CHANNEL],
            channel.map_or(&[][..], ChannelName::as_bytes),
        );
        self
    }

    /// Sets the up-to-date flag.
    pub fn set_up_to_date(&mut self, up_to_date: bool) -> &mut Pdu {
        self.bytes[UP_TO_DATE] = u8::from(up_to_date);
        self
    }

    /// Sets the params to `text`, NUL-padded (cut at 2000 bytes).
    pub fn set_params_text(&mut self, text: &[u8]) -> &mut Pdu {
        put_field(&mut self.bytes[PARAMS], text);
        self
    }

    /// Sets params[0..2] to `version`, big-endian.
    pub fn set_version(&mut self, version: u16) -> &mut Pdu {
        self.bytes[PARAMS.start..PARAMS.start + 2].copy_from_slice(&version.to_be_bytes());
        self
    }

    /// The raw bytes, for tests and tools that build malformed PDUs on purpose.
    pub fn bytes_mut(&mut self) -> &mut [u8; PDU_LEN] {
        &mut self.bytes
    }

    // --- The PDUs of the contract, by who sends them. ---

    /// PING from a client, PONG from the server: all zero but the command.
    pub fn ping(order: ByteOrder) -> Pdu {
        Pdu::new(Command::PingPong, order)
    }

    /// QUIT (client).
    pub fn quit(order: ByteOrder) -> Pdu {
        Pdu::new(Command::Quit, order)
    }

    /// QUERY (client).
    pub fn query(order: ByteOrder) -> Pdu {
        Pdu::new(Command::Query, order)
    }

    /// LEAVE_CHANNEL (client).
    pub fn leave(order: ByteOrder) -> Pdu {
        Pdu::new(Command::LeaveChannel, order)
    }

    /// The server's VERSION_NEGOTIATION: prefix `SERVER`, its highest version.
    pub fn server_version(order: ByteOrder, highest: u16) -> Pdu {
        let mut pdu = Pdu::new(Command::VersionNegotiation, order);
        pdu.set_username(SERVER_NAME).set_version(highest);
        pdu
    }

    /// The client's VERSION_NEGOTIATION: empty prefix, the selected version.
    pub fn client_version(order: ByteOrder, selected: u16) -> Pdu {
        let mut pdu = Pdu::new(Command::VersionNegotiation, order);
        pdu.set_version(selected);
        pdu
    }

    /// CLIENT_INFO from a client: params[0..10] = the username.
    pub fn client_info(order: ByteOrder, username: &[u8]) -> Pdu {
        let mut pdu = Pdu::new(Command::ClientInfo, order);
        put_field(
            &mut pdu.bytes[PARAMS.start..PARAMS.start + MAX_USERNAME],
            username,
        );
        pdu
    }

    /// The server's CLIENT_INFO acknowledgement: prefix `SERVER`, params = the username.
    pub fn client_info_ack(order: ByteOrder, username: &[u8]) -> Pdu {
        let mut pdu = Pdu::client_info(order, username);
        pdu.set_username(SERVER_NAME);
        pdu
    }

    /// The username a CLIENT_INFO carries in params[0..10], up to its first NUL, as it is
    /// on the wire.
    pub fn client_info_name(&self) -> &[u8] {
        field_text(&self.bytes[PARAMS.start..PARAMS.start + MAX_USERNAME])
    }

    /// The username of a CLIENT_INFO, checked (contract section 4): a 10-byte name must be
    /// followed by a NUL or the hostname's space at `params[10]`, anything else there
    /// means it is longer.
    pub fn client_info_username(&self) -> Result<Username, NameError> {
        let name = self.client_info_name();
        let after = self.bytes[PARAMS.start + MAX_USERNAME];
        if name.len() == MAX_USERNAME && after != 0 && after != b' ' {
            return Err(NameError::overflows(NameKind::Username, name));
        }
        Username::new(name)
    }

    /// JOIN_CHANNEL from a client: username, space, channel.
    pub fn join(order: ByteOrder, username: &[u8], channel: &ChannelName) -> Pdu {
        let mut pdu = Pdu::new(Command::JoinChannel, order);
        pdu.set_username(username).set_channel(Some(channel));
        pdu
    }

    /// The server's JOIN_CHANNEL or LEAVE_CHANNEL acknowledgement.
    pub fn channel_ack(command: Command, order: ByteOrder, channel: &ChannelName) -> Pdu {
        let mut pdu = Pdu::new(command, order);
        pdu.set_username(SERVER_NAME).set_channel(Some(channel));
        pdu
    }

    /// SEND_MESSAGE from a client (cut at 2000 bytes).
    pub fn send_message(order: ByteOrder, text: &[u8]) -> Pdu {
        let mut pdu = Pdu::new(Command::SendMessage, order);
        pdu.set_params_text(text);
        pdu
    }

    /// A RECEIVE_MESSAGE carrying a message (flag 0): chat from `sender`, or a notice when
    /// `sender` is `SERVER` (whose channel field may be empty).
    pub fn receive(
        order: ByteOrder,
        sender: &[u8],
        channel: Option<&ChannelName>,
        text: &[u8],
    ) -> Pdu {
        let mut pdu = Pdu::new(Command::ReceiveMessage, order);
        pdu.set_username(sender)
            .set_channel(channel)
            .set_params_text(text);
        pdu
    }

    /// A notice from the server (contract section 6); an error notice outside a channel
    /// has no channel.
    pub fn notice(order: ByteOrder, channel: Option<&ChannelName>, text: &[u8]) -> Pdu {
        Pdu::receive(order, SERVER_NAME, channel, text)
    }

    /// The up-to-date RECEIVE_MESSAGE that ends every QUERY answer; outside a channel its
    /// channel field is empty.
    pub fn up_to_date_marker(order: ByteOrder, channel: Option<&ChannelName>) -> Pdu {
        let mut pdu = Pdu::new(Command::ReceiveMessage, order);
        pdu.set_username(SERVER_NAME)
            .set_channel(channel)
            .set_up_to_date(true);
        pdu
    }
}

#[cfg(test)]
mod tests;
