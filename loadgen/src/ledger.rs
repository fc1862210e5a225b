//! Message-loss accounting: which member was owed which message, and whether it got it.
//!
//! The rule (issue 4): every member must receive every message of its channel sent while it
//! was a member, unless the server said it skipped some. "While it was a member" is decided
//! from the generator's own clock without trusting the server: a member is owed a message
//! when its JOIN acknowledgement had *arrived* before the message was *handed* to the
//! sender's connection. The server processed that JOIN before acknowledging it and the
//! SEND after it was written, so the server saw the member join first. Messages replayed
//! from before a join are received but not owed.
//!
//! The same holds across the nodes of a network (`--server A,B,C`): nothing here knows
//! which node a client uses, only its channel. A node acknowledges a JOIN only once the
//! network (Redis) has taken it, and takes a SEND only after that acknowledgement reached
//! loadgen, so the network orders the join before the message whatever nodes the two
//! clients sit on: a message posted through node A is owed to every member of its
//! channel on every node.
//!
//! A version-2 member is also owed the echo of each of its own messages (kaichat-v2
//! section 2a): all of them, since a client sends only once it is in its channel. A skip
//! notice's count covers both kinds (the server counts every evicted entry past the
//! reader's position, its own included), so it excuses missing messages first, then
//! missing echoes. Duplicates are caught as they arrive (`reactor::record`, by sequence
//! number); here a member that received more than it was owed shows up as surplus.
//!
//! Only members that stayed connected through the final drain are judged; a member that
//! disconnected is counted as a disconnect instead. Pure bookkeeping: no sockets, no clock.

use std::collections::HashMap;
use std::time::Instant;

/// One SEND_MESSAGE, as its sender recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub channel: u32,
    pub sender: u32,
    /// When the message was handed to the sender's connection.
    pub sent: Instant,
}

/// One client's membership and what it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub client: u32,
    pub channel: u32,
    /// When the JOIN acknowledgement arrived.
    pub joined: Instant,
    /// Stayed connected and completed the final drain QUERY.
    pub finished: bool,
    /// Messages read that were sent after `joined` (see [`Member::owes`]).
    pub received_owed: u64,
    /// Sum of the `<N> messages were skipped` notices it got.
    pub skipped: u64,
    /// The protocol version it spoke: only version 2 gets echoes.
    pub version: u16,
    /// Echoes of its own messages it read (version 2).
    pub echoes: u64,
}

impl Member {
    /// Whether a message sent at `sent` by another client counts as owed to this member.
    pub fn owes(&self, sent: Instant) -> bool {
        owed(self.joined, sent)
    }
}

/// The one rule of what is owed, for the ledger ([`Member::owes`]) and for reads
/// ([`Seen::read`]) alike: a message sent after the member's JOIN acknowledgement arrived
/// (at `joined`); one sent before is a replay.
fn owed(joined: Instant, sent: Instant) -> bool {
    sent > joined
}

/// A member as a reader of its channel, for [`Seen::read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    pub client: u32,
    pub channel: u32,
    /// Its protocol version: only version 2 is sent its own messages.
    pub version: u16,
    /// When its JOIN acknowledgement arrived.
    pub joined: Option<Instant>,
}

/// What reading one loadgen message means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Another member's message; `owed` when it was sent after the reader joined (see
    /// [`Member::owes`]), else a replayed one.
    Delivered {
        owed: bool,
    },
    /// The reader's own message, sent back to a version-2 client.
    Echo,
    /// Errors of the server: a message of another channel, one read before (or out of
    /// its sender's order), or a version-1 client's own message (v1 leaves them out).
    OtherChannel,
    Duplicate,
    OwnToV1,
}

/// Per sender of one member's channel (sender `s` of channel `s mod K` is slot `s / K`):
/// one more than the highest sequence number read from it, 0 for none yet. The server
/// appends each sender's messages in the order sent and delivers a channel in append
/// order, so a number not above the last one read from that sender is a duplicate (or out
/// of order). Empty until the first message: 4 bytes per channel member after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen(Vec<u32>);

impl Seen {
    /// Judges message `seq` of client `sender`, sent at `sent`, read by `reader`, in a run
    /// of `channels` channels of at most `channel_size` members.
    pub fn read(
        &mut self,
        reader: &Reader,
        sender: u32,
        seq: u32,
        sent: Instant,
        channels: u32,
        channel_size: u32,
    ) -> Read {
        let channels = channels.max(1);
        if sender % channels != reader.channel {
            return Read::OtherChannel;
        }
        if self.0.is_empty() {
            self.0 = vec![0; channel_size as usize];
        }
        let Some(next) = self.0.get_mut((sender / channels) as usize) else {
            return Read::OtherChannel;
        };
        if seq < *next {
            return Read::Duplicate;
        }
        *next = seq.saturating_add(1);
        if sender == reader.client {
            return if reader.version >= 2 {
                Read::Echo
            } else {
                Read::OwnToV1
            };
        }
        Read::Delivered {
            owed: reader.joined.is_some_and(|joined| owed(joined, sent)),
        }
    }
}

/// The outcome over all finished members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loss {
    /// Member × message pairs owed.
    pub owed: u64,
    /// Of those, received.
    pub received: u64,
    /// Entries the server said it skipped (they may include notices and the member's own
    /// messages, so they can only excuse, never prove, a gap).
    pub skipped: u64,
    /// Owed, not received, not excused by a skip notice: per member
    /// `max(0, owed − received − skipped)`, summed.
    pub lost: u64,
    /// Received more often than owed (a duplicate delivery): should be 0.
    pub surplus: u64,
    /// Members judged.
    pub members: u64,
    /// Echoes owed to version-2 senders (one per message they sent), received, lost (not
    /// received, not excused by what is left of a skip notice) and received in surplus.
    pub echoes_owed: u64,
    pub echoes_received: u64,
    pub echoes_lost: u64,
    pub echoes_surplus: u64,
}

/// Judges every finished member against the messages of its channel.
pub fn account(sent: &[Sent], members: &[Member]) -> Loss {
    // Send times per channel, sorted, and messages per sender.
    let mut by_channel: HashMap<u32, Vec<Instant>> = HashMap::new();
    let mut by_sender: HashMap<u32, u64> = HashMap::new();
    for m in sent {
        by_channel.entry(m.channel).or_default().push(m.sent);
        *by_sender.entry(m.sender).or_default() += 1;
    }
    for times in by_channel.values_mut() {
        times.sort_unstable();
    }
    let mut loss = Loss::default();
    for member in members.iter().filter(|m| m.finished) {
        let times = by_channel
            .get(&member.channel)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let after_join = times.len() - times.partition_point(|&t| !member.owes(t));
        // A client sends only once joined, so all its own messages are after its join; they
        // come back only as echoes (version 2), which are counted apart.
        let own = by_sender.get(&member.client).copied().unwrap_or(0);
        let owed = (after_join as u64).saturating_sub(own);
        loss.members += 1;
        loss.owed += owed;
        loss.received += member.received_owed.min(owed);
        loss.surplus += member.received_owed.saturating_sub(owed);
        loss.skipped += member.skipped;
        let missing = owed.saturating_sub(member.received_owed);
        loss.lost += missing.saturating_sub(member.skipped);
        if member.version >= 2 {
            let unused_skip = member.skipped.saturating_sub(missing);
            loss.echoes_owed += own;
            loss.echoes_received += member.echoes.min(own);
            loss.echoes_surplus += member.echoes.saturating_sub(own);
            loss.echoes_lost += own.saturating_sub(member.echoes + unused_skip);
        }
    }
    loss
}

#[cfg(test)]
mod tests;
