//! Fuzz target for the server's session state machine and the hub behind it (contract
//! sections 4 to 7): a peer's bytes must never panic the server or corrupt shared state.
//!
//! The input is cut into 2260-byte PDUs; a short tail is dropped, as a peer that closes
//! mid-PDU has sent nothing for it. The PDUs go to a few sessions sharing one hub, driven
//! the way the reactor drives them: no PDU is handed to a session while its QUERY answer
//! is in flight, answers are pulled in small budgets after every PDU (so they interleave
//! across sessions and with other sessions' messages), closed sessions are released and
//! replaced, and deadlines close sessions as time passes.
//!
//! Two prefix bytes that no PDU layout uses steer the harness:
//! - prefix[255]: low bits pick the session, the high nibble is the pull budget;
//! - prefix[254]: seconds that pass before the PDU arrives (low 6 bits); time is counted
//!   in milliseconds, as the session counts it.
#![no_main]

use kaichat_proto::hub::Hub;
use kaichat_proto::pdu::{Decoded, Pdu, PDU_LEN, PREFIX_LEN};
use kaichat_proto::session::{Deadlines, Session, Step};
use libfuzzer_sys::fuzz_target;

const SESSIONS: usize = 3;
/// More pulls than any answer of a 4-entry history can take.
const MAX_PULLS: usize = 1_000;

struct Harness {
    hub: Hub,
    sessions: Vec<Session>,
    deadlines: Deadlines,
    now: u64,
}

impl Harness {
    /// Checks that everything a session wrote is readable in its client's byte order.
    fn check_sent(out: &mut Vec<Pdu>, session: &Session) {
        for pdu in out.drain(..) {
            assert!(
                matches!(
                    pdu.decode_command(Some(session.order())),
                    Decoded::Known { .. }
                ),
                "the server wrote {pdu:?} in another order than {:?}",
                session.order()
            );
        }
    }

    fn pull(&mut self, who: usize, budget: usize) -> bool {
        let mut out = Vec::new();
        let session = &mut self.sessions[who];
        let done = session.continue_answer(&self.hub, budget, &mut out);
        assert!(out.len() <= budget);
        Self::check_sent(&mut out, session);
        done
    }

    /// Sends the rest of a session's answer: the reactor reads nothing before that.
    fn drain(&mut self, who: usize) {
        let mut pulls = 0;
        while !self.pull(who, 4) {
            pulls += 1;
            assert!(pulls < MAX_PULLS, "a QUERY answer never ends");
        }
    }

    fn close(&mut self, who: usize) {
        self.sessions[who].close(&mut self.hub);
        self.sessions[who] = Session::new(self.now);
    }

    fn deliver(&mut self, who: usize, pdu: &Pdu) {
        self.drain(who);
        let mut out = Vec::new();
        let session = &mut self.sessions[who];
        let step = session.on_pdu(pdu, self.now, &mut self.hub, &mut out);
        Self::check_sent(&mut out, session);
        if matches!(step, Step::Close(_)) {
            self.close(who);
        }
    }

    fn expire(&mut self) {
        for who in 0..SESSIONS {
            if self.sessions[who]
                .deadline(&self.deadlines)
                .is_some_and(|at| at <= self.now)
            {
                self.close(who);
            }
        }
    }

    fn check(&self) {
        let named = self.sessions.iter().filter(|s| s.user().is_some()).count();
        assert_eq!(self.hub.users(), named, "names held by no session");
        assert!(
            self.hub.channels() <= named,
            "a channel outlived its members"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut harness = Harness {
        hub: Hub::new(4, 3),
        sessions: (0..SESSIONS).map(|_| Session::new(0)).collect(),
        deadlines: Deadlines::default(),
        now: 0,
    };
    for bytes in data.chunks_exact(PDU_LEN) {
        let Some(pdu) = Pdu::from_slice(bytes) else {
            unreachable!("chunks_exact yields whole PDUs");
        };
        let steer = bytes[PREFIX_LEN - 1];
        let who = usize::from(steer) % SESSIONS;
        let budget = usize::from(steer >> 4);
        harness.now += u64::from(bytes[PREFIX_LEN - 2] & 0x3f) * 1000;
        harness.expire();
        harness.deliver(who, &pdu);
        for other in 0..SESSIONS {
            harness.pull(other, budget);
        }
        harness.check();
    }
    for who in 0..SESSIONS {
        harness.drain(who);
        harness.close(who);
    }
    assert_eq!((harness.hub.users(), harness.hub.channels()), (0, 0));
});
