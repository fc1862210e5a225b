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
pub const PROTOCOL_VERSION: u16 = 2;
/// Where a version-2 RECEIVE_MESSAGE carries its time stamp (v2 contract section 2a): ms
/// since the Unix epoch, u64 big-endian. Zero on version 1.
pub const TIME: std::ops::Range<usize> = 62..70;
/// In a NAMES listing PDU: 1 when it lists channel operators (v2 contract section 3).
pub const OPERATORS: usize = 62;
/// Bytes of names (with their separating spaces and the closing NUL) a NAMES PDU holds.
pub const NAMES_ROOM: usize = PARAMS_LEN;
/// The channel field that names the whole server in a BAN or UNBAN (v2 section 5).
pub const SERVER_WIDE: &[u8] = b"*";
/// Longest OPER password, in bytes (v2 contract section 4).
pub const MAX_PASSWORD: usize = 200;

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
    /// Version 2 only, from here on (v2 contract section 7).
    ListChannels = 9,
    Names = 10,
    Kick = 11,
    Ban = 12,
    Unban = 13,
    Oper = 14,
}

impl Command {
    /// The command for a code, if it is one of the fifteen of any version (0 to 8 in v1,
    /// 9 to 14 added by v2; [`Command::since_version`] tells which).
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
            9 => Command::ListChannels,
            10 => Command::Names,
            11 => Command::Kick,
            12 => Command::Ban,
            13 => Command::Unban,
            14 => Command::Oper,
            _ => return None,
        })
    }

    /// The wire code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The protocol version that defines this command: on a connection of an older
    /// version it is an unknown command.
    pub fn since_version(self) -> u16 {
        if self.code() >= Command::ListChannels.code() {
            2
        } else {
            1
        }
    }

    /// The name the contracts give the command.
    pub fn name(self) -> &'static str {
        match self {
            Command::Quit => "QUIT",
            Command::VersionNegotiation => "VERSION_NEGOTIATION",
            Command::ClientInfo => "CLIENT_INFO",
            Command::JoinChannel => "JOIN_CHANNEL",
            Command::SendMessage => "SEND_MESSAGE",
            Command::ReceiveMessage => "RECEIVE_MESSAGE",
            Command::LeaveChannel => "LEAVE_CHANNEL",
            Command::PingPong => "PING_PONG",
            Command::Query => "QUERY",
            Command::ListChannels => "LIST_CHANNELS",
            Command::Names => "NAMES",
            Command::Kick => "KICK",
            Command::Ban => "BAN",
            Command::Unban => "UNBAN",
            Command::Oper => "OPER",
        }
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

    /// The time stamp of a version-2 RECEIVE_MESSAGE: ms since the Unix epoch (0 on v1).
    pub fn time(&self) -> u64 {
        let mut be = [0u8; 8];
        be.copy_from_slice(&self.bytes[TIME]);
        u64::from_be_bytes(be)
    }

    /// params[at..at + 4] as a big-endian u32: the counts of listings (v2 section 3).
    pub fn param_u32(&self, at: usize) -> u32 {
        let mut be = [0u8; 4];
        be.copy_from_slice(&self.bytes[PARAMS.start + at..PARAMS.start + at + 4]);
        u32::from_be_bytes(be)
    }

    /// Whether a NAMES listing PDU lists channel operators (prefix[62] = 1).
    pub fn lists_operators(&self) -> bool {
        self.bytes[OPERATORS] == 1
    }

    /// The target username of a KICK, BAN or UNBAN (params[0..10], up to its first NUL).
    pub fn target(&self) -> &[u8] {
        field_text(&self.bytes[PARAMS.start..PARAMS.start + MAX_USERNAME])
    }

    /// The reason of a KICK or BAN: params[11..] up to its first NUL, when params[10] is
    /// the separating space; empty otherwise.
    pub fn reason(&self) -> &[u8] {
        match self.bytes[PARAMS.start + MAX_USERNAME] {
            b' ' => field_text(&self.bytes[PARAMS.start + MAX_USERNAME + 1..]),
            _ => &[],
        }
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

    /// Sets the time stamp (v2): ms since the Unix epoch.
    pub fn set_time(&mut self, ms: u64) -> &mut Pdu {
        self.bytes[TIME].copy_from_slice(&ms.to_be_bytes());
        self
    }

    /// Sets params[at..at + 4] to `value`, big-endian.
    pub fn set_param_u32(&mut self, at: usize, value: u32) -> &mut Pdu {
        self.bytes[PARAMS.start + at..PARAMS.start + at + 4].copy_from_slice(&value.to_be_bytes());
        self
    }

    /// Sets the raw channel field (with the separating space): for `*` and for names a
    /// client has not checked.
    pub fn set_channel_field(&mut self, field: &[u8]) -> &mut Pdu {
        self.bytes[SEPARATOR] = b' ';
        put_field(&mut self.bytes[CHANNEL], field);
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

    /// LIST_CHANNELS (client, v2).
    pub fn list_channels(order: ByteOrder) -> Pdu {
        Pdu::new(Command::ListChannels, order)
    }

    /// NAMES (client, v2) of `channel`, or of the client's own channel when empty.
    pub fn names(order: ByteOrder, channel: &[u8]) -> Pdu {
        let mut pdu = Pdu::new(Command::Names, order);
        pdu.set_channel_field(channel);
        pdu
    }

    /// KICK, BAN or UNBAN (client, v2): `channel` (empty: the client's own; `*` for a
    /// server ban), the target username, and an optional reason.
    pub fn moderation(
        command: Command,
        order: ByteOrder,
        channel: &[u8],
        target: &[u8],
        reason: &[u8],
    ) -> Pdu {
        let mut pdu = Pdu::new(command, order);
        pdu.set_channel_field(channel);
        let params = &mut pdu.bytes[PARAMS];
        put_field(&mut params[..MAX_USERNAME], target);
        params[MAX_USERNAME] = b' ';
        put_field(&mut params[MAX_USERNAME + 1..], reason);
        pdu
    }

    /// UNBAN of a server ban (client, v2): channel `*`, params = the address as text.
    pub fn unban_address(order: ByteOrder, address: &[u8]) -> Pdu {
        let mut pdu = Pdu::new(Command::Unban, order);
        pdu.set_channel_field(SERVER_WIDE).set_params_text(address);
        pdu
    }

    /// OPER (client, v2): params = the password, NUL-terminated.
    pub fn oper(order: ByteOrder, password: &[u8]) -> Pdu {
        let mut pdu = Pdu::new(Command::Oper, order);
        pdu.set_params_text(&password[..password.len().min(MAX_PASSWORD)]);
        pdu
    }

    /// A server PDU of a listing (LIST_CHANNELS or NAMES, v2 section 3): username field
    /// `SERVER`, the channel field, flag 0; the caller fills the params.
    pub fn listing(command: Command, order: ByteOrder, channel: Option<&ChannelName>) -> Pdu {
        let mut pdu = Pdu::new(command, order);
        pdu.set_username(SERVER_NAME).set_channel(channel);
        pdu
    }

    /// The end PDU of a listing: flag 1, params[0..4] = how many were listed.
    pub fn listing_end(
        command: Command,
        order: ByteOrder,
        channel: Option<&ChannelName>,
        count: u32,
    ) -> Pdu {
        let mut pdu = Pdu::listing(command, order, channel);
        pdu.set_up_to_date(true).set_param_u32(0, count);
        pdu
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
