//! The shared chat state (v1 contract section 5, v2 sections 2 to 6): which usernames
//! connected clients hold, which channels exist (by their checked names), who is in each
//! and who operates it, each channel's bounded history ring, and the ban lists.
//!
//! A message is stored once, in its channel's ring; clients only hold a read position (a
//! sequence number) into it. A QUERY answer or a push is read from the ring entry by entry
//! as the client's socket drains ([`Hub::next_entry`]), so a large backlog costs no memory
//! per client. The hub never sees a socket, a PDU or a clock: times come in as arguments,
//! milliseconds of the caller's monotonic clock, and entries are stamped with
//! [`Hub::set_epoch`]'s wall-clock offset added.
//!
//! What one connection does to another (a KICK, a server ban) and who must be sent new
//! entries (push delivery) are left for the caller as [`Event`]s ([`Hub::take_events`]) and
//! woken connections ([`Hub::take_woken`]): the hub only names connections by the
//! [`ConnRef`] the caller gave it.
//!
//! With a store ([`Hub::with_store`]) the hub stays the only owner of chat state: it
//! journals every entry it appends ([`Hub::take_appended`]) for the caller to hand to the
//! store, is loaded from it at start-up ([`Hub::restore`]), and keeps a channel's history
//! when its last member leaves. Under the `always` durability policy it also keeps a durable
//! watermark per channel ([`Hub::made_durable`]): answers and pushes stop at the last entry
//! the store confirmed, so no one is sent an entry that a crash could still lose.
//!
//! In cluster mode ([`Hub::clustered`], v2 section 8, `crate::network`) the hub is a
//! replica: it holds this server's own users and the local members of each channel, and for
//! every channel a local client is in a copy of the history ring numbered by the network's
//! sequence numbers. It decides nothing that the network shares: what its clients do is
//! journaled as [`Outbound`]s ([`Hub::take_outbound`]), and the network's entries come back
//! through [`Hub::apply`], which is the only way an entry enters a replica's ring.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::ops::Bound;

use slab::Slab;

use crate::names::{ChannelName, Username};
use crate::network::{Outbound, Removal};
use crate::pdu::MAX_USERNAME;

/// A channel's handle, valid while it exists (with members; with a store, also after; in
/// cluster mode, until [`Hub::drop_replica`]).
pub type ChannelId = usize;

/// The caller's handle of a connection (the reactor's slab key). The hub only hands it
/// back, in events and wake-ups.
pub type ConnRef = usize;

/// Names a channel's ban list holds at most (v2 section 5).
pub const MAX_BANS: usize = 1000;

/// What a history entry is (v2 section 1): readers of each version are sent it as their
/// version defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A message from `sender`.
    Chat,
    /// `<user> joined`, `<user> left`.
    Notice,
    /// `<target> was kicked by <op>...` (KICK or BAN); a v1 reader is sent `<target> left`.
    Removal,
    /// `<user> is now an operator`; never sent to a v1 reader.
    Operator,
}

impl Kind {
    /// The number the store keeps for the kind.
    pub fn code(self) -> u8 {
        match self {
            Kind::Chat => 0,
            Kind::Notice => 1,
            Kind::Removal => 2,
            Kind::Operator => 3,
        }
    }

    /// The kind for a stored number; None for one this server does not know.
    pub fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            0 => Kind::Chat,
            1 => Kind::Notice,
            2 => Kind::Removal,
            3 => Kind::Operator,
            _ => return None,
        })
    }
}

/// A history entry: a chat message, or a channel notice from the server (`sender` None).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub sender: Option<Username>,
    pub kind: Kind,
    /// When it was appended: ms since the Unix epoch.
    pub time_ms: u64,
    pub text: Box<[u8]>,
}

/// Room for the longest text a v1 reader is sent in place of a removal: `<name> left`.
pub const V1_TEXT_ROOM: usize = MAX_USERNAME + 5;

impl Entry {
    /// The text a version-1 reader is sent for this entry, or None when a v1 reader is not
    /// sent it at all (v2 section 1). A removal becomes `<target> left`, written in `room`.
    pub fn v1_text<'a>(&'a self, room: &'a mut [u8; V1_TEXT_ROOM]) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Chat | Kind::Notice => Some(&self.text),
            Kind::Operator => None,
            Kind::Removal => {
                let target = self.text.split(|&b| b == b' ').next().unwrap_or(&[]);
                let target = &target[..target.len().min(MAX_USERNAME)];
                room[..target.len()].copy_from_slice(target);
                room[target.len()..target.len() + 5].copy_from_slice(b" left");
                Some(&room[..target.len() + 5])
            }
        }
    }
}

/// Most bytes of a KICK or BAN reason the texts carry: the longest text made with it, the
/// v1 form of the notice (`error: you were banned from <50-byte channel> by <10-byte
/// name>: `, 94 bytes), then fits a message's 2000 bytes.
pub const MAX_REASON_KEPT: usize = crate::pdu::MAX_MESSAGE - 94;

/// `reason`, cut to [`MAX_REASON_KEPT`] bytes, and where that falls inside a UTF-8
/// character, before it: a cut reason never ends in half a character.
pub fn fit_reason(reason: &[u8]) -> &[u8] {
    if reason.len() <= MAX_REASON_KEPT {
        return reason;
    }
    let cut = &reason[..MAX_REASON_KEPT];
    match std::str::from_utf8(cut) {
        // Valid text that ends inside a character: drop the partial character.
        Err(e) if e.error_len().is_none() => &cut[..e.valid_up_to()],
        _ => cut,
    }
}

/// A channel's bounded history. Entry `seq` numbers grow forever; the ring holds
/// `first_seq .. first_seq + entries.len()`.
struct History {
    entries: VecDeque<Entry>,
    first_seq: u64,
    limit: usize,
}

impl History {
    fn end_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    fn push(&mut self, entry: Entry) {
        if self.entries.len() == self.limit {
            self.entries.pop_front();
            self.first_seq += 1;
        }
        self.entries.push_back(entry);
    }
}

/// A member of a channel, under its join number (members are kept in join order).
struct Member {
    user: Username,
    conn: ConnRef,
    operator: bool,
    /// A version-2 reader: sent new entries as they are appended.
    push: bool,
}

struct Channel {
    name: ChannelName,
    /// By join number: ascending is the order they joined.
    members: BTreeMap<u64, Member>,
    operators: u32,
    /// Members with `push`: whether an append must wake anyone.
    pushers: u32,
    history: History,
    /// With a durable watermark: the sequence number after the last entry the store has
    /// confirmed committed.
    durable_end: u64,
    /// On the hub's list of channels whose push readers have new entries.
    woken: bool,
}

impl Channel {
    /// A channel without members whose history holds the last `limit` of `entries`, the
    /// entries before sequence number `end_seq`, oldest first; all of them count as durable.
    /// A new channel is `Channel::new(name, 0, Vec::new(), limit)`.
    fn new(name: ChannelName, end_seq: u64, mut entries: Vec<Entry>, limit: usize) -> Channel {
        entries.drain(..entries.len().saturating_sub(limit));
        let history = History {
            first_seq: end_seq.saturating_sub(entries.len() as u64),
            entries: VecDeque::from(entries),
            limit,
        };
        Channel {
            name,
            members: BTreeMap::new(),
            operators: 0,
            pushers: 0,
            durable_end: history.end_seq(),
            history,
            woken: false,
        }
    }
}

/// A connected client's name and what the hub knows of its connection.
struct User {
    conn: ConnRef,
    peer: Option<IpAddr>,
    /// Its channel and its join number there.
    membership: Option<(ChannelId, u64)>,
    server_operator: bool,
}

/// An entry the hub appended, for the store (see [`Hub::take_appended`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub channel: ChannelName,
    pub seq: u64,
    pub entry: Entry,
}

/// A change of a ban list or of the server bans, for the store (see
/// [`Hub::take_ban_changes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BanChange {
    /// `name` put on (`banned`) or taken off channel `channel`'s ban list.
    Channel {
        channel: ChannelName,
        name: Username,
        banned: bool,
    },
    /// A server ban of `address` put on or lifted.
    Address { address: IpAddr, banned: bool },
}

/// What the hub keeps for a store.
struct StoreLink {
    /// Entries appended since the caller last took them.
    journal: Vec<Appended>,
    /// Ban changes since the caller last took them.
    bans: Vec<BanChange>,
    /// `always`: answers stop at each channel's durable watermark.
    wait_durable: bool,
}

/// What the hub keeps for the network in cluster mode.
#[derive(Default)]
struct NetworkLink {
    /// What local clients did since the caller last took it, in order.
    outbound: Vec<Outbound>,
    /// Channels whose last local member went since the caller last took them (maybe
    /// twice, maybe with members again by then: [`Hub::take_deserted`] filters).
    deserted: Vec<ChannelName>,
}

/// The next thing a QUERY answer or a push carries (see [`Hub::next_entry`]).
pub enum Next<'a> {
    /// Entries past the reader's position were evicted before it read them.
    Skipped(u64),
    /// The next entry to send.
    Entry(&'a Entry),
    /// Everything up to the answer's end has been read.
    Done,
}

/// What one connection's request did to another connection, for the caller to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `conn`'s user was removed from channel `channel` (`name`) by a KICK or BAN: its
    /// session must drop its membership and be sent `notice` (v2 section 5).
    Removed {
        conn: ConnRef,
        channel: ChannelId,
        name: ChannelName,
        notice: Box<[u8]>,
    },
    /// A server ban: every connection from `address` must close (server operators' too).
    CloseAddress(IpAddr),
}

/// A channel's ban list holds [`MAX_BANS`] names already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanListFull;

/// Why a JOIN was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinRefusal {
    Banned,
}

/// The server's rules that sessions apply (v2 sections 1, 4 and 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The highest protocol version offered (1 or 2).
    pub max_version: u16,
    /// SEND_MESSAGE per second per connection; 0 turns the limit off.
    pub rate_limit: u32,
    /// Messages a connection may send at once before the rate applies.
    pub rate_burst: u32,
    /// Whether an operator password is configured (OPER can succeed).
    pub oper: bool,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            max_version: 2,
            rate_limit: 10,
            rate_burst: 20,
            oper: false,
        }
    }
}

/// One line of a channel listing (LIST_CHANNELS, v2 section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: ChannelName,
    pub members: u32,
    pub retained: u32,
}

/// Usernames that are connected, the open channels, and the ban lists.
pub struct Hub {
    users: HashMap<Username, User>,
    channels: Slab<Channel>,
    /// In ascending byte order, for listings.
    by_name: BTreeMap<ChannelName, ChannelId>,
    /// Ban lists by channel name: they outlive the channel (v2 section 5).
    bans: HashMap<ChannelName, HashSet<Username>>,
    server_bans: HashSet<IpAddr>,
    history_limit: usize,
    replay: u64,
    messages: u64,
    /// Join numbers: ascending is join order, across channels.
    next_join: u64,
    /// Wall-clock ms at the caller's clock zero.
    epoch_ms: u64,
    rules: Rules,
    /// Channels appended to with push readers, until [`Hub::take_woken`].
    woken: Vec<ChannelId>,
    events: Vec<Event>,
    /// None: history lives in memory only, and a channel is freed with its last member.
    store: Option<StoreLink>,
    /// Some: cluster mode, a replica of the network's state (never with a store).
    network: Option<NetworkLink>,
}

impl Hub {
    /// A hub whose channels retain `history_limit` entries (at least 1) and show a joiner
    /// the last `replay` of them.
    pub fn new(history_limit: usize, replay: usize) -> Hub {
        Hub {
            users: HashMap::new(),
            channels: Slab::new(),
            by_name: BTreeMap::new(),
            bans: HashMap::new(),
            server_bans: HashSet::new(),
            history_limit: history_limit.max(1),
            replay: replay as u64,
            messages: 0,
            next_join: 1,
            epoch_ms: 0,
            rules: Rules::default(),
            woken: Vec::new(),
            events: Vec::new(),
            store: None,
            network: None,
        }
    }

    /// A hub in cluster mode (v2 section 8): a replica of the network's state whose rings
    /// keep `history_limit` entries (at least 1) and show a joiner the last `replay`. What
    /// local clients do is journaled ([`Hub::take_outbound`]); entries enter the rings only
    /// through [`Hub::apply`].
    pub fn clustered(history_limit: usize, replay: usize) -> Hub {
        Hub {
            network: Some(NetworkLink::default()),
            ..Hub::new(history_limit, replay)
        }
    }

    /// Whether the hub is a replica of a network's state ([`Hub::clustered`]).
    pub fn is_clustered(&self) -> bool {
        self.network.is_some()
    }

    /// A hub backed by a store: every appended entry is journaled for it, and a channel's
    /// history outlives its last member (it is the store's, to be loaded after a restart).
    /// With `wait_durable` (the `always` policy) answers stop at the durable watermark.
    pub fn with_store(history_limit: usize, replay: usize, wait_durable: bool) -> Hub {
        Hub {
            store: Some(StoreLink {
                journal: Vec::new(),
                bans: Vec::new(),
                wait_durable,
            }),
            ..Hub::new(history_limit, replay)
        }
    }

    /// Sets the rules sessions apply.
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Sets the wall-clock time (ms since the Unix epoch) at which the caller's clock
    /// reads 0: entries are stamped `epoch + now`, so stamps never go backwards in a run.
    pub fn set_epoch(&mut self, epoch_ms: u64) {
        self.epoch_ms = epoch_ms;
    }

    /// The wall-clock time, ms since the Unix epoch, of the caller's `now`.
    pub fn wall_ms(&self, now: u64) -> u64 {
        self.epoch_ms.saturating_add(now)
    }

    /// Loads a channel's retained history from the store, before any client connects:
    /// `entries` are the last ones before sequence number `end_seq`, oldest first (only the
    /// last `history_limit` are kept). They count as durable. The channel exists, empty of
    /// members, until its next joiner.
    pub fn restore(&mut self, name: ChannelName, end_seq: u64, entries: Vec<Entry>) {
        let channel = Channel::new(name, end_seq, entries, self.history_limit);
        match self.by_name.get(&name) {
            Some(&id) => self.channels[id] = channel,
            None => {
                let id = self.channels.insert(channel);
                self.by_name.insert(name, id);
            }
        }
    }

    /// Loads a channel's ban list from the store (at most [`MAX_BANS`] are kept).
    pub fn restore_bans(
        &mut self,
        channel: ChannelName,
        names: impl IntoIterator<Item = Username>,
    ) {
        let list = self.bans.entry(channel).or_default();
        for name in names {
            if list.len() < MAX_BANS {
                list.insert(name);
            }
        }
    }

    /// Loads the server bans from the store.
    pub fn restore_server_bans(&mut self, addresses: impl IntoIterator<Item = IpAddr>) {
        self.server_bans.extend(addresses);
    }

    /// Moves the ban changes since the last call into `into`, in order. Always empty
    /// without a store.
    pub fn take_ban_changes(&mut self, into: &mut Vec<BanChange>) {
        if let Some(link) = &mut self.store {
            into.append(&mut link.bans);
        }
    }

    fn journal_ban(&mut self, change: BanChange) {
        if let Some(link) = &mut self.store {
            link.bans.push(change);
        }
    }

    /// Moves the entries appended since the last call into `into` (which is cleared
    /// first), in the order they were appended. Always empty without a store.
    pub fn take_appended(&mut self, into: &mut Vec<Appended>) {
        into.clear();
        if let Some(link) = &mut self.store {
            std::mem::swap(&mut link.journal, into);
        }
    }

    /// The store confirms that channel `name`'s entries before `end` are committed: under
    /// `always`, answers and pushes may now include them.
    pub fn made_durable(&mut self, name: &ChannelName, end: u64) {
        if let Some(&id) = self.by_name.get(name) {
            let channel = &mut self.channels[id];
            if end > channel.durable_end {
                channel.durable_end = end;
                self.wake(id);
            }
        }
    }

    /// Takes `name` for connection `conn` (from `peer`, if known); false when a connected
    /// client has it (ignoring case).
    pub fn claim_name(&mut self, name: Username, conn: ConnRef, peer: Option<IpAddr>) -> bool {
        if self.users.contains_key(&name) {
            return false;
        }
        let user = User {
            conn,
            peer,
            membership: None,
            server_operator: false,
        };
        self.users.insert(name, user);
        true
    }

    /// Frees a name taken with [`Hub::claim_name`]. In cluster mode the network is told
    /// ([`Outbound::Release`]).
    pub fn release_name(&mut self, name: &Username) {
        if let Some((user, _)) = self.users.remove_entry(name) {
            if let Some(link) = &mut self.network {
                link.outbound.push(Outbound::Release { user });
            }
        }
    }

    /// Whether a client connected to this server holds `name` (ignoring case).
    pub fn is_connected(&self, name: &Username) -> bool {
        self.users.contains_key(name)
    }

    /// Whether `name` is banned from channel `channel`.
    pub fn is_banned(&self, channel: &ChannelName, name: &Username) -> bool {
        self.bans
            .get(channel)
            .is_some_and(|list| list.contains(name))
    }

    /// Adds `user` (connected) to the channel `name`, creating it if needed, and appends
    /// the `<user> joined` notice. The first member of a channel is its operator. `push`:
    /// a version-2 reader, sent entries as they come. Returns the channel and the joiner's
    /// read position: the last `replay` retained entries, so the joiner also sees its own
    /// `joined` notice. A member of another channel leaves it first (`<user> left`), as
    /// v1 section 5 says. Refused, changing nothing, when `user` is on the channel's ban
    /// list.
    pub fn join(
        &mut self,
        name: &ChannelName,
        user: &Username,
        push: bool,
        now: u64,
    ) -> Result<(ChannelId, u64), JoinRefusal> {
        if self.is_banned(name, user) {
            return Err(JoinRefusal::Banned);
        }
        if let Some((current, _)) = self.users.get(user).and_then(|u| u.membership) {
            self.leave(current, user, now);
        }
        let id = self.channel_or_new(name);
        let operator = self.channels[id].members.is_empty();
        self.link_member(id, user, operator, push);
        let channel = &self.channels[id];
        let cursor = channel.history.end_seq().saturating_sub(self.replay);
        self.notice(id, user, b" joined", Kind::Notice, now);
        // Entries the joiner's own notice evicted were never the joiner's to miss: no
        // skip notice for them.
        Ok((id, cursor.max(self.channels[id].history.first_seq)))
    }

    /// Removes `user` from channel `id`: appends `<user> left`, or closes the channel and
    /// frees its history when `user` was its last member. With a store the channel and its
    /// history stay (the notice is appended), as they would after a restart. In cluster
    /// mode only the local member goes, and the network is told ([`Outbound::Leave`]): it
    /// writes the notice and hands operator on; the replica stays (see
    /// [`Hub::take_deserted`]).
    pub fn leave(&mut self, id: ChannelId, user: &Username, now: u64) {
        if self.network.is_some() {
            if self.unlink(id, user) {
                let channel = self.channels[id].name;
                if let Some(link) = &mut self.network {
                    link.outbound.push(Outbound::Leave {
                        user: *user,
                        channel,
                    });
                }
            }
            return;
        }
        let mut text = user.as_bytes().to_vec();
        text.extend_from_slice(b" left");
        self.depart(id, user, Kind::Notice, text.into(), now);
    }

    /// Removes `target` from channel `id` by a KICK (or a BAN, `banned`) from `by`: the
    /// channel's history gets `<target> was kicked by <by>[: <reason>]`, and unless the
    /// target is `by` itself (whose session acts on its own request), an
    /// [`Event::Removed`] tells the target's connection. False if `target` is not a member.
    pub fn remove(
        &mut self,
        id: ChannelId,
        target: &Username,
        by: &Username,
        reason: &[u8],
        banned: bool,
        now: u64,
    ) -> bool {
        let Some(name) = self.channel_name(id).copied() else {
            return false;
        };
        let Some(conn) = self.member_conn(id, target) else {
            return false;
        };
        // The name as its owner chose it, not as the operator typed it.
        let target = self
            .users
            .get_key_value(target)
            .map_or(*target, |(name, _)| *name);
        let target = &target;
        let reason = fit_reason(reason);
        let verb: &[u8] = if banned { b"banned" } else { b"kicked" };
        let mut entry = [target.as_bytes(), b" was ", verb, b" by ", by.as_bytes()].concat();
        if !reason.is_empty() {
            entry.extend_from_slice(b": ");
            entry.extend_from_slice(reason);
        }
        self.depart(id, target, Kind::Removal, entry.into(), now);
        if target != by {
            self.events.push(Event::Removed {
                conn,
                channel: id,
                name,
                notice: Hub::removal_notice(&name, by, reason, banned),
            });
        }
        true
    }

    /// The text a removed client is sent for a removal of itself: what
    /// [`Event::Removed`] carries for others.
    pub fn removal_notice(
        name: &ChannelName,
        by: &Username,
        reason: &[u8],
        banned: bool,
    ) -> Box<[u8]> {
        let reason = fit_reason(reason);
        let verb: &[u8] = if banned { b"banned" } else { b"kicked" };
        let mut notice = [b"you were ", verb, b" from ", name.as_bytes(), b" by "].concat();
        notice.extend_from_slice(by.as_bytes());
        if !reason.is_empty() {
            notice.extend_from_slice(b": ");
            notice.extend_from_slice(reason);
        }
        notice.into()
    }

    /// Takes `user` out of channel `id` with the entry `text` of `kind`; then closes the
    /// channel (no store, no member left) or hands operator on (v2 section 4).
    fn depart(&mut self, id: ChannelId, user: &Username, kind: Kind, text: Box<[u8]>, now: u64) {
        if !self.unlink(id, user) {
            return;
        }
        let channel = &self.channels[id];
        if channel.members.is_empty() && self.store.is_none() {
            let channel = self.channels.remove(id);
            self.by_name.remove(&channel.name);
            return;
        }
        self.append(id, None, kind, text, now);
        let channel = &mut self.channels[id];
        if channel.operators == 0 {
            // The earliest joiner that can act as one: a version-1 client has no KICK or
            // BAN, so it is passed over while a version-2 member remains.
            let heir = match channel.members.values().position(|m| m.push) {
                Some(at) => channel.members.values_mut().nth(at),
                None => channel.members.values_mut().next(),
            };
            if let Some(first) = heir {
                first.operator = true;
                channel.operators = 1;
                let heir = first.user;
                self.notice(id, &heir, b" is now an operator", Kind::Operator, now);
            }
        }
    }

    /// Takes the member `user` out of channel `id` and its membership off the user, and
    /// nothing else; false if it was not a member. In cluster mode a channel left without
    /// local members is noted for [`Hub::take_deserted`].
    fn unlink(&mut self, id: ChannelId, user: &Username) -> bool {
        let Some(key) = self.users.get_mut(user).and_then(|u| {
            let key = u.membership.filter(|&(c, _)| c == id).map(|(_, key)| key);
            if key.is_some() {
                u.membership = None;
            }
            key
        }) else {
            return false;
        };
        let Some(channel) = self.channels.get_mut(id) else {
            return false;
        };
        let Some(member) = channel.members.remove(&key) else {
            return false;
        };
        channel.operators -= u32::from(member.operator);
        channel.pushers -= u32::from(member.push);
        if let Some(link) = &mut self.network {
            if channel.members.is_empty() {
                link.deserted.push(channel.name);
            }
        }
        true
    }

    fn notice(&mut self, id: ChannelId, user: &Username, what: &[u8], kind: Kind, now: u64) {
        let text = [user.as_bytes(), what].concat().into_boxed_slice();
        self.append(id, None, kind, text, now);
    }

    /// Appends a chat message from `sender` to channel `id`. In cluster mode the message is
    /// journaled for the network instead ([`Outbound::Post`], with the sender's connection):
    /// it reaches the ring, and its readers, when the network's entry comes back
    /// ([`Hub::apply`]).
    pub fn post(&mut self, id: ChannelId, sender: Username, text: &[u8], now: u64) {
        if let Some(link) = &mut self.network {
            if let (Some(channel), Some(user)) = (self.channels.get(id), self.users.get(&sender)) {
                link.outbound.push(Outbound::Post {
                    conn: user.conn,
                    user: sender,
                    channel: channel.name,
                    text: text.into(),
                });
            }
            return;
        }
        if self.channels.contains(id) {
            self.append(id, Some(sender), Kind::Chat, text.into(), now);
            self.messages += 1;
        }
    }

    /// The one place an entry enters a history (and the store's journal).
    fn append(
        &mut self,
        id: ChannelId,
        sender: Option<Username>,
        kind: Kind,
        text: Box<[u8]>,
        now: u64,
    ) {
        let entry = Entry {
            sender,
            kind,
            time_ms: self.wall_ms(now),
            text,
        };
        let channel = &mut self.channels[id];
        if let Some(link) = &mut self.store {
            link.journal.push(Appended {
                channel: channel.name,
                seq: channel.history.end_seq(),
                entry: entry.clone(),
            });
        }
        channel.history.push(entry);
        self.wake(id);
    }

    /// Notes that channel `id`'s push readers have something new.
    fn wake(&mut self, id: ChannelId) {
        let channel = &mut self.channels[id];
        if channel.pushers > 0 && !channel.woken {
            channel.woken = true;
            self.woken.push(id);
        }
    }

    /// Moves into `into` the connections of the push readers of every channel that got new
    /// entries (or a new durable watermark) since the last call: each needs a turn to be
    /// sent them. A connection may be named more than once.
    pub fn take_woken(&mut self, into: &mut Vec<ConnRef>) {
        for id in self.woken.drain(..) {
            if let Some(channel) = self.channels.get_mut(id) {
                channel.woken = false;
                let readers = channel.members.values().filter(|m| m.push);
                into.extend(readers.map(|m| m.conn));
            }
        }
    }

    /// Moves the events since the last call into `into`, in order.
    pub fn take_events(&mut self, into: &mut Vec<Event>) {
        into.append(&mut self.events);
    }

    /// The name of channel `id`, while it exists.
    pub fn channel_name(&self, id: ChannelId) -> Option<&ChannelName> {
        self.channels.get(id).map(|c| &c.name)
    }

    /// The open channel (one with members) of that name.
    pub fn open_channel(&self, name: &ChannelName) -> Option<ChannelId> {
        let id = *self.by_name.get(name)?;
        (!self.channels[id].members.is_empty()).then_some(id)
    }

    /// The connection of `user` if it is a member of channel `id`.
    fn member_conn(&self, id: ChannelId, user: &Username) -> Option<ConnRef> {
        let u = self.users.get(user)?;
        let (channel, key) = u.membership?;
        (channel == id).then(|| self.channels.get(id)?.members.get(&key).map(|m| m.conn))?
    }

    /// Whether `user` is a member of channel `id`.
    pub fn is_member(&self, id: ChannelId, user: &Username) -> bool {
        self.member_conn(id, user).is_some()
    }

    /// Whether `user` may moderate channel `id`: one of its operators, or a server operator.
    pub fn is_operator(&self, id: ChannelId, user: &Username) -> bool {
        let Some(u) = self.users.get(user) else {
            return false;
        };
        if u.server_operator {
            return true;
        }
        match u.membership {
            Some((channel, key)) if channel == id => self
                .channels
                .get(id)
                .and_then(|c| c.members.get(&key))
                .is_some_and(|m| m.operator),
            _ => false,
        }
    }

    /// Whether the connected `user` is a server operator.
    pub fn is_server_operator(&self, user: &Username) -> bool {
        self.users.get(user).is_some_and(|u| u.server_operator)
    }

    /// Makes the connected `user` a server operator (OPER accepted) until it disconnects.
    /// In cluster mode the network is told ([`Outbound::Oper`]).
    pub fn make_server_operator(&mut self, user: &Username) {
        if let Some(u) = self.users.get_mut(user) {
            if !u.server_operator {
                u.server_operator = true;
                if let Some(link) = &mut self.network {
                    link.outbound.push(Outbound::Oper { user: *user });
                }
            }
        }
    }

    /// Adds `name` to channel `channel`'s ban list: Ok(true) if it was not there, Ok(false)
    /// if it was, an error if the list is full ([`MAX_BANS`]).
    pub fn ban(&mut self, channel: &ChannelName, name: &Username) -> Result<bool, BanListFull> {
        let list = self.bans.entry(*channel).or_default();
        if list.contains(name) {
            return Ok(false);
        }
        if list.len() >= MAX_BANS {
            return Err(BanListFull);
        }
        list.insert(*name);
        self.journal_ban(BanChange::Channel {
            channel: *channel,
            name: *name,
            banned: true,
        });
        Ok(true)
    }

    /// Takes `name` off channel `channel`'s ban list; false if it was not on it.
    pub fn unban(&mut self, channel: &ChannelName, name: &Username) -> bool {
        let Some(list) = self.bans.get_mut(channel) else {
            return false;
        };
        let removed = list.remove(name);
        if list.is_empty() {
            self.bans.remove(channel);
        }
        if removed {
            self.journal_ban(BanChange::Channel {
                channel: *channel,
                name: *name,
                banned: false,
            });
        }
        removed
    }

    /// The address the connected `user` connects from, if known.
    pub fn address_of(&self, user: &Username) -> Option<IpAddr> {
        self.users.get(user)?.peer
    }

    /// Bans `address` server-wide (v2 section 5) and asks for its connections to close;
    /// false if it was banned already (its connections are closed again all the same).
    pub fn ban_address(&mut self, address: IpAddr) -> bool {
        self.events.push(Event::CloseAddress(address));
        let new = self.server_bans.insert(address);
        if new {
            self.journal_ban(BanChange::Address {
                address,
                banned: true,
            });
        }
        new
    }

    /// Lifts the server ban of `address`; false if there was none.
    pub fn unban_address(&mut self, address: &IpAddr) -> bool {
        let removed = self.server_bans.remove(address);
        if removed {
            self.journal_ban(BanChange::Address {
                address: *address,
                banned: false,
            });
        }
        removed
    }

    /// The addresses banned server-wide.
    pub fn server_bans(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.server_bans.iter().copied()
    }

    /// Whether new connections from `address` are closed right after accept.
    pub fn is_address_banned(&self, address: &IpAddr) -> bool {
        self.server_bans.contains(address)
    }

    /// The first open channel after `after` (all of them from the start for None), in
    /// ascending byte order of the names: one step of a LIST_CHANNELS listing.
    pub fn next_channel(&self, after: Option<&ChannelName>) -> Option<Listed> {
        let range = match after {
            Some(name) => self
                .by_name
                .range((Bound::Excluded(*name), Bound::Unbounded)),
            None => self.by_name.range(..),
        };
        range.map(|(_, &id)| &self.channels[id]).find_map(|c| {
            (!c.members.is_empty()).then_some(Listed {
                name: c.name,
                members: c.members.len() as u32,
                retained: c.history.entries.len() as u32,
            })
        })
    }

    /// Members of channel `id` after join number `after`, in join order, that are
    /// (`operators` true) or are not operators: one step of a NAMES listing. Each comes
    /// with its join number, the position to resume after.
    pub fn members_after(
        &self,
        id: ChannelId,
        operators: bool,
        after: u64,
    ) -> impl Iterator<Item = (u64, &Username)> {
        self.channels.get(id).into_iter().flat_map(move |c| {
            c.members
                .range((Bound::Excluded(after), Bound::Unbounded))
                .filter(move |(_, m)| m.operator == operators)
                .map(|(&key, m)| (key, &m.user))
        })
    }

    /// Where a QUERY answer or a push made now ends: the sequence number the next entry of
    /// channel `id` will get, or under `always` the channel's durable watermark.
    pub fn end_seq(&self, id: ChannelId) -> u64 {
        let wait_durable = self.store.as_ref().is_some_and(|l| l.wait_durable);
        self.channels.get(id).map_or(0, |c| {
            let end = c.history.end_seq();
            if wait_durable {
                end.min(c.durable_end)
            } else {
                end
            }
        })
    }

    /// The next item of a QUERY answer or push for a reader whose read position `cursor`
    /// moves past what is returned. Entries up to (not including) `end` are considered;
    /// the messages of `skip_own` (a v1 reader's own name) are passed over.
    pub fn next_entry(
        &self,
        id: ChannelId,
        cursor: &mut u64,
        end: u64,
        skip_own: Option<&Username>,
    ) -> Next<'_> {
        let Some(channel) = self.channels.get(id) else {
            return Next::Done;
        };
        let history = &channel.history;
        if *cursor >= end {
            return Next::Done;
        }
        if *cursor < history.first_seq {
            let skipped = history.first_seq.min(end) - *cursor; // cursor < end, cursor < first
            *cursor += skipped;
            return Next::Skipped(skipped);
        }
        while *cursor < end {
            let index = (*cursor - history.first_seq) as usize;
            *cursor += 1;
            match history.entries.get(index) {
                Some(entry) if skip_own.is_some() && entry.sender.as_ref() == skip_own => continue,
                Some(entry) => return Next::Entry(entry),
                None => break,
            }
        }
        Next::Done
    }

    // --- Cluster mode (v2 section 8; see `crate::network`) --------------------------------

    /// Appends to `into`, in the order it happened, what local clients did that the
    /// network must be told since the last call. Always empty outside cluster mode.
    pub fn take_outbound(&mut self, into: &mut Vec<Outbound>) {
        if let Some(link) = &mut self.network {
            into.append(&mut link.outbound);
        }
    }

    /// The replica of channel `name`: the existing one, or a new one with an empty ring at
    /// sequence number 0 and no members.
    pub fn replica(&mut self, name: &ChannelName) -> ChannelId {
        self.channel_or_new(name)
    }

    /// Channel `name`, made (empty, no history) if there is none.
    fn channel_or_new(&mut self, name: &ChannelName) -> ChannelId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let id = (self.channels).insert(Channel::new(*name, 0, Vec::new(), self.history_limit));
        self.by_name.insert(*name, id);
        id
    }

    /// The sequence number the next entry of the replica of `name` must have (one past
    /// the last applied; 0 for a new replica); None if there is no replica.
    pub fn replica_end(&self, name: &ChannelName) -> Option<u64> {
        let &id = self.by_name.get(name)?;
        Some(self.channels[id].history.end_seq())
    }

    /// Applies the network's entry `seq` of channel `name`, if it has a replica (see
    /// [`Hub::replica`]). `seq` below the ring's end: already applied, ignored (removal
    /// too). `seq` at the end: pushed. Beyond: the entries in between are lost to this
    /// replica (trimmed, or lost with the network's state), so the ring restarts empty at
    /// `seq` and readers behind are sent a skip notice ([`Next::Skipped`]). Push readers
    /// are woken. A `removal` (the entry is a KICK or BAN) of a local member of the
    /// channel takes that member out and, unless it removed itself (its session acts on
    /// its own request), tells its connection with an [`Event::Removed`].
    pub fn apply(&mut self, name: &ChannelName, seq: u64, entry: Entry, removal: Option<Removal>) {
        let Some(&id) = self.by_name.get(name) else {
            return;
        };
        let end = self.channels[id].history.end_seq();
        if seq < end {
            return;
        }
        if let Some(removal) = removal {
            self.apply_removal(id, &removal);
        }
        if entry.kind == Kind::Chat && entry.sender.is_some_and(|s| self.users.contains_key(&s)) {
            self.messages += 1;
        }
        let history = &mut self.channels[id].history;
        if seq > end {
            history.entries.clear();
            history.first_seq = seq;
        }
        history.push(entry);
        self.wake(id);
    }

    /// The local side of a removal the network decided in channel `id` (see
    /// [`Hub::apply`]).
    fn apply_removal(&mut self, id: ChannelId, removal: &Removal) {
        let Some(conn) = self.member_conn(id, &removal.target) else {
            return;
        };
        self.unlink(id, &removal.target);
        if removal.target != removal.by {
            let name = self.channels[id].name;
            self.events.push(Event::Removed {
                conn,
                channel: id,
                name,
                notice: Hub::removal_notice(&name, &removal.by, &removal.reason, removal.banned),
            });
        }
    }

    /// The network made the connected `user` a member of channel `name` (its `joined`
    /// entry has sequence number `seq`): `user` leaves its current channel locally (the
    /// network did the rest) and becomes a local member of the replica of `name` (made if
    /// needed). `push`: a version-2 reader. Returns the replica and the joiner's read
    /// position: the last `replay` entries up to its `joined`, but never before the
    /// ring's first entry nor before sequence number 1, the network's first.
    pub fn join_local(
        &mut self,
        name: &ChannelName,
        user: &Username,
        push: bool,
        seq: u64,
    ) -> (ChannelId, u64) {
        if let Some((current, _)) = self.users.get(user).and_then(|u| u.membership) {
            self.unlink(current, user);
        }
        let id = self.replica(name);
        // Operators are the network's to know: a local member is never one here.
        self.link_member(id, user, false, push);
        let cursor = (seq + 1).saturating_sub(self.replay);
        (id, cursor.max(self.channels[id].history.first_seq).max(1))
    }

    /// Makes the connected `user` a member of channel `id`, last in join order.
    fn link_member(&mut self, id: ChannelId, user: &Username, operator: bool, push: bool) {
        let key = self.next_join;
        self.next_join += 1;
        let conn = self.users.get_mut(user).map_or(usize::MAX, |u| {
            u.membership = Some((id, key));
            u.conn
        });
        let channel = &mut self.channels[id];
        let member = Member {
            user: *user,
            conn,
            operator,
            push,
        };
        channel.members.insert(key, member);
        channel.operators += u32::from(operator);
        channel.pushers += u32::from(push);
    }

    /// Appends to `into` the channels whose last local member went (LEAVE, a closed
    /// connection, a removal, a JOIN elsewhere) since the last call and that still have
    /// no local member: the network need not send their entries here any more. Each is
    /// named once. Always empty outside cluster mode.
    pub fn take_deserted(&mut self, into: &mut Vec<ChannelName>) {
        let Some(link) = &mut self.network else {
            return;
        };
        for name in link.deserted.drain(..) {
            let Some(&id) = self.by_name.get(&name) else {
                continue;
            };
            if self.channels[id].members.is_empty() && !into.contains(&name) {
                into.push(name);
            }
        }
    }

    /// Frees the replica of `name` if it has no local member (else does nothing); true
    /// when there is no replica of `name` any more. Its handle may be reused: call it only
    /// once the events taken with [`Hub::take_events`] are carried out, so no session
    /// still holds the handle.
    pub fn drop_replica(&mut self, name: &ChannelName) -> bool {
        let Some(&id) = self.by_name.get(name) else {
            return true;
        };
        if !self.channels[id].members.is_empty() {
            return false;
        }
        self.channels.remove(id);
        self.by_name.remove(name);
        true
    }

    /// Every local user that is in a channel: its name, the channel, and whether it is a
    /// version-2 reader. For making the network's membership this server's again after
    /// a reconnect.
    pub fn local_members(&self) -> impl Iterator<Item = (Username, ChannelName, bool)> + '_ {
        self.users.iter().filter_map(|(name, user)| {
            let (id, key) = user.membership?;
            let channel = self.channels.get(id)?;
            let member = channel.members.get(&key)?;
            Some((*name, channel.name, member.push))
        })
    }

    /// The local users that are server operators.
    pub fn local_server_operators(&self) -> impl Iterator<Item = Username> + '_ {
        self.users
            .iter()
            .filter(|(_, u)| u.server_operator)
            .map(|(name, _)| *name)
    }

    /// Number of connected (named) clients.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Number of channels (open ones, and with a store those kept without members).
    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    /// Chat messages posted since start. In cluster mode: chat entries the network applied
    /// ([`Hub::apply`]) whose sender is connected to this server, so a post the network
    /// could not take is not counted, and the nodes' counts add up to the network's.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// History entries (messages and notices) retained in all channels. Counted when
    /// asked, one step per channel, so posting stays a ring push.
    pub fn retained(&self) -> usize {
        self.channels
            .iter()
            .map(|(_, c)| c.history.entries.len())
            .sum()
    }
}

#[cfg(test)]
mod tests;
