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
}

impl Member {
    /// Whether a message sent at `sent` by another client counts as owed to this member.
    pub fn owes(&self, sent: Instant) -> bool {
        sent > self.joined
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
        // A client sends only once joined, so all its own messages are after its join; the
        // server never returns them to it.
        let own = by_sender.get(&member.client).copied().unwrap_or(0);
        let owed = (after_join as u64).saturating_sub(own);
        loss.members += 1;
        loss.owed += owed;
        loss.received += member.received_owed.min(owed);
        loss.surplus += member.received_owed.saturating_sub(owed);
        loss.skipped += member.skipped;
        loss.lost += owed.saturating_sub(member.received_owed + member.skipped);
    }
    loss
}

#[cfg(test)]
mod tests;
