//! The shared chat state (contract section 5): which usernames connected clients hold,
//! which channels exist (by their checked names), and each channel's bounded history ring.
//!
//! A message is stored once, in its channel's ring; clients only hold a read position (a
//! sequence number) into it. A QUERY answer is read from the ring entry by entry as the
//! client's socket drains ([`Hub::next_entry`]), so a large backlog costs no memory per
//! client. The hub never sees a socket, a PDU or a clock.
//!
//! With a store ([`Hub::with_store`]) the hub stays the only owner of chat state: it
//! journals every entry it appends ([`Hub::take_appended`]) for the caller to hand to the
//! store, is loaded from it at start-up ([`Hub::restore`]), and keeps a channel's history
//! when its last member leaves. Under the `always` durability policy it also keeps a durable
//! watermark per channel ([`Hub::made_durable`]): a QUERY answer stops at the last entry
//! the store confirmed, so no one is sent an entry that a crash could still lose.

use std::collections::{HashMap, HashSet, VecDeque};

use slab::Slab;

use crate::names::{ChannelName, Username};

/// A channel's handle, valid while it has members.
pub type ChannelId = usize;

/// A history entry: a chat message, or a channel notice from the server (`sender` None).
pub struct Entry {
    pub sender: Option<Username>,
    pub text: Box<[u8]>,
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

struct Channel {
    name: ChannelName,
    members: u32,
    history: History,
    /// With a durable watermark: the sequence number after the last entry the store has
    /// confirmed committed.
    durable_end: u64,
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
            members: 0,
            durable_end: history.end_seq(),
            history,
        }
    }
}

/// An entry the hub appended, for the store (see [`Hub::take_appended`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub channel: ChannelName,
    pub seq: u64,
    pub sender: Option<Username>,
    pub text: Box<[u8]>,
}

/// What the hub keeps for a store.
struct StoreLink {
    /// Entries appended since the caller last took them.
    journal: Vec<Appended>,
    /// `always`: answers stop at each channel's durable watermark.
    wait_durable: bool,
}

/// The next thing a QUERY answer carries (see [`Hub::next_entry`]).
pub enum Next<'a> {
    /// Entries past the reader's position were evicted before it read them.
    Skipped(u64),
    /// The next entry to send.
    Entry(&'a Entry),
    /// Everything up to the answer's end has been read.
    Done,
}

/// Usernames that are connected, and the open channels.
pub struct Hub {
    users: HashSet<Username>,
    channels: Slab<Channel>,
    by_name: HashMap<ChannelName, ChannelId>,
    history_limit: usize,
    replay: u64,
    messages: u64,
    /// None: history lives in memory only, and a channel is freed with its last member.
    store: Option<StoreLink>,
}

impl Hub {
    /// A hub whose channels retain `history_limit` entries (at least 1) and show a joiner
    /// the last `replay` of them.
    pub fn new(history_limit: usize, replay: usize) -> Hub {
        Hub {
            users: HashSet::new(),
            channels: Slab::new(),
            by_name: HashMap::new(),
            history_limit: history_limit.max(1),
            replay: replay as u64,
            messages: 0,
            store: None,
        }
    }

    /// A hub backed by a store: every appended entry is journaled for it, and a channel's
    /// history outlives its last member (it is the store's, to be loaded after a restart).
    /// With `wait_durable` (the `always` policy) answers stop at the durable watermark.
    pub fn with_store(history_limit: usize, replay: usize, wait_durable: bool) -> Hub {
        Hub {
            store: Some(StoreLink {
                journal: Vec::new(),
                wait_durable,
            }),
            ..Hub::new(history_limit, replay)
        }
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

    /// Moves the entries appended since the last call into `into` (which is cleared
    /// first), in the order they were appended. Always empty without a store.
    pub fn take_appended(&mut self, into: &mut Vec<Appended>) {
        into.clear();
        if let Some(link) = &mut self.store {
            std::mem::swap(&mut link.journal, into);
        }
    }

    /// The store confirms that channel `name`'s entries before `end` are committed: under
    /// `always`, answers may now include them.
    pub fn made_durable(&mut self, name: &ChannelName, end: u64) {
        if let Some(&id) = self.by_name.get(name) {
            let channel = &mut self.channels[id];
            channel.durable_end = channel.durable_end.max(end);
        }
    }

    /// Takes `name` for a connection; false when a connected client has it (ignoring case).
    pub fn claim_name(&mut self, name: Username) -> bool {
        self.users.insert(name)
    }

    /// Frees a name taken with [`Hub::claim_name`].
    pub fn release_name(&mut self, name: &Username) {
        self.users.remove(name);
    }

    /// Adds `user` to the channel `name`, creating it if needed, and appends the
    /// `<user> joined` notice. Returns the channel and the joiner's read position: the last
    /// `replay` retained entries, so the joiner also sees its own `joined` notice.
    pub fn join(&mut self, name: &ChannelName, user: &Username) -> (ChannelId, u64) {
        let id = match self.by_name.get(name) {
            Some(&id) => id,
            None => {
                let channel = Channel::new(*name, 0, Vec::new(), self.history_limit);
                let id = self.channels.insert(channel);
                self.by_name.insert(*name, id);
                id
            }
        };
        let channel = &mut self.channels[id];
        channel.members += 1;
        let history = &channel.history;
        let cursor = history.end_seq().saturating_sub(self.replay);
        self.notice(id, user, b" joined");
        // Entries the joiner's own notice evicted were never the joiner's to miss: no
        // skip notice for them.
        (id, cursor.max(self.channels[id].history.first_seq))
    }

    /// Removes `user` from channel `id`: appends `<user> left`, or closes the channel and
    /// frees its history when `user` was its last member. With a store the channel and its
    /// history stay (the notice is appended), as they would after a restart.
    pub fn leave(&mut self, id: ChannelId, user: &Username) {
        let Some(channel) = self.channels.get_mut(id) else {
            return;
        };
        channel.members -= 1;
        if channel.members == 0 && self.store.is_none() {
            let channel = self.channels.remove(id);
            self.by_name.remove(&channel.name);
        } else {
            self.notice(id, user, b" left");
        }
    }

    fn notice(&mut self, id: ChannelId, user: &Username, what: &[u8]) {
        let text = [user.as_bytes(), what].concat().into_boxed_slice();
        self.append(id, Entry { sender: None, text });
    }

    /// Appends a chat message from `sender` to channel `id`.
    pub fn post(&mut self, id: ChannelId, sender: Username, text: &[u8]) {
        if self.channels.contains(id) {
            self.append(
                id,
                Entry {
                    sender: Some(sender),
                    text: text.into(),
                },
            );
            self.messages += 1;
        }
    }

    /// The one place an entry enters a history (and the store's journal).
    fn append(&mut self, id: ChannelId, entry: Entry) {
        let channel = &mut self.channels[id];
        if let Some(link) = &mut self.store {
            link.journal.push(Appended {
                channel: channel.name,
                seq: channel.history.end_seq(),
                sender: entry.sender,
                text: entry.text.clone(),
            });
        }
        channel.history.push(entry);
    }

    /// The name of channel `id`, while it exists.
    pub fn channel_name(&self, id: ChannelId) -> Option<&ChannelName> {
        self.channels.get(id).map(|c| &c.name)
    }

    /// Where a QUERY answer made now ends: the sequence number the next entry of channel
    /// `id` will get, or under `always` the channel's durable watermark.
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

    /// The next item of a QUERY answer for `reader`, whose read position `cursor` moves
    /// past what is returned. Entries up to (not including) `end` are considered; the
    /// reader's own messages are passed over.
    pub fn next_entry(
        &self,
        id: ChannelId,
        cursor: &mut u64,
        end: u64,
        reader: &Username,
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
                Some(entry) if entry.sender.is_some_and(|s| s == *reader) => continue,
                Some(entry) => return Next::Entry(entry),
                None => break,
            }
        }
        Next::Done
    }

    /// Number of connected (named) clients.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Number of open channels.
    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    /// Chat messages posted since start.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// History entries (messages and notices) retained in all open channels. Counted when
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
