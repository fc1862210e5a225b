//! What a server in a network of several servers (cluster mode, v2 section 8) asks of the
//! shared state, and what it is told back: the seam between the sessions and the hub on
//! one side and the cluster engine (which talks to Redis) on the other.
//!
//! In cluster mode the hub is a replica: it holds this server's own clients (their names,
//! their channel, their read positions) and, for each channel one of them is in, a copy of
//! the channel's history ring numbered as the network numbers it. Everything that must be
//! the same on every server (who holds a name, who is in a channel and who operates it,
//! ban lists, the order of a channel's entries) is decided by the network:
//! - a session that needs the answer before it can reply (CLIENT_INFO, JOIN, KICK, BAN,
//!   UNBAN, NAMES, LIST_CHANNELS) makes a [`Request`] and reads nothing more from its
//!   client until the [`Verdict`] comes back;
//! - what needs no answer (a message, a LEAVE, a closed connection, an accepted OPER) the
//!   hub journals as an [`Outbound`] for the caller to hand on;
//! - what the network decided comes back into the hub as entries of a channel
//!   ([`crate::hub::Hub::apply`]), which wake push readers and carry removals.

use std::net::IpAddr;

use crate::hub::{ConnRef, Listed};
use crate::names::{ChannelName, Username};

/// KICK, BAN or UNBAN (v2 section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moderation {
    Kick,
    Ban,
    Unban,
}

/// What a session asks the network; it waits for the [`Verdict`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// CLIENT_INFO: take `user` network-wide (names compare ignoring ASCII case).
    Claim {
        user: Username,
        peer: Option<IpAddr>,
    },
    /// JOIN_CHANNEL: `user` joins `channel`, leaving `from` first (v1 section 5), unless
    /// banned from `channel`. `push`: a version-2 member (for operator succession).
    Join {
        user: Username,
        channel: ChannelName,
        from: Option<ChannelName>,
        push: bool,
    },
    /// KICK, BAN or UNBAN of `target` in `channel` by `user`, who is a server operator
    /// (`server_operator`) or must be an operator of the channel.
    Moderate {
        user: Username,
        command: Moderation,
        channel: ChannelName,
        target: Username,
        reason: Box<[u8]>,
        server_operator: bool,
    },
    /// BAN `*`: ban the address of the connected `target` server-wide (asked by a server
    /// operator).
    ServerBan { target: Username },
    /// UNBAN `*`: lift the server ban of `address`.
    ServerUnban { address: IpAddr },
    /// NAMES of `channel`.
    Names { channel: ChannelName },
    /// LIST_CHANNELS.
    List,
}

/// The members of an open channel, in join order, operators apart (v2 section 3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamesSnapshot {
    pub operators: Vec<Username>,
    pub others: Vec<Username>,
}

/// The network's answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Claim: the name is this client's.
    Claimed,
    /// Claim: a client somewhere in the network has the name.
    Taken,
    /// Join: done; `seq` is the network sequence number of the `<user> joined` entry.
    Joined { seq: u64 },
    /// Join: the user is on the channel's ban list; nothing changed.
    Banned,
    /// Moderate, ServerBan, ServerUnban: done (the channel's entries say the rest).
    Done,
    /// Moderate: the asker is not an operator of the channel (nor a server operator).
    NotOperator,
    /// Moderate (KICK, BAN): the target is a server operator and the asker is not.
    TargetIsServerOperator,
    /// Moderate (KICK): the target is not in the channel.
    NotMember,
    /// Moderate (BAN): the ban list holds [`crate::hub::MAX_BANS`] names already.
    BanListFull,
    /// Moderate (UNBAN), ServerUnban: there was no such ban.
    NotBanned,
    /// ServerBan: the target is not connected anywhere in the network.
    NotConnected,
    /// Names: the channel's members (boxed: rare and large).
    Names(Box<NamesSnapshot>),
    /// Names: the channel has no members.
    NotOpen,
    /// List: every open channel, in ascending byte order of the names.
    Channels(Vec<Listed>),
    /// The network could not be reached; nothing changed. The client is told
    /// `error: network unavailable, try again`.
    Unavailable,
}

/// What the hub tells the network without waiting for an answer, in the order it
/// happened (see [`crate::hub::Hub::take_outbound`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A chat message from `user` (connection `conn`) to `channel`. It reaches the history,
    /// and so its readers (the sender's echo too), through the network.
    Post {
        conn: ConnRef,
        user: Username,
        channel: ChannelName,
        text: Box<[u8]>,
    },
    /// `user` left `channel` (LEAVE_CHANNEL or a closed connection).
    Leave {
        user: Username,
        channel: ChannelName,
    },
    /// `user`'s connection closed: its name is free.
    Release { user: Username },
    /// `user` became a server operator (OPER accepted), until it disconnects.
    Oper { user: Username },
}

/// A removal (KICK or BAN) that a channel entry carries (see
/// [`crate::hub::Hub::apply`]): the server of `target` tells its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    pub target: Username,
    pub by: Username,
    pub reason: Box<[u8]>,
    pub banned: bool,
}

/// The text a client is sent when the network cannot be reached.
pub const UNAVAILABLE: &[u8] = b"error: network unavailable, try again";
