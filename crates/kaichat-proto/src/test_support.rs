//! What the unit tests of several modules share (test builds only): names from text, and
//! the hub's outbound journal taken whole.

use crate::hub::Hub;
use crate::names::{ChannelName, Username};
use crate::network::Outbound;

/// A valid username (panics on an invalid one: tests write valid names).
pub fn user(name: &str) -> Username {
    Username::new(name.as_bytes()).unwrap()
}

/// A valid channel name.
pub fn channel(name: &str) -> ChannelName {
    ChannelName::new(name.as_bytes()).unwrap()
}

/// What the hub journaled for the network since the last call.
pub fn outbound(hub: &mut Hub) -> Vec<Outbound> {
    let mut out = Vec::new();
    hub.take_outbound(&mut out);
    out
}
