//! Fuzz target for the server's session state machine and the hub behind it (v1 contract
//! sections 4 to 7, v2 sections 1 to 6): a peer's bytes must never panic the server or
//! corrupt shared state.
//!
//! The input is cut into 2260-byte PDUs; a short tail is dropped, as a peer that closes
//! mid-PDU has sent nothing for it. The PDUs go to a few sessions sharing one hub, driven
//! the way the reactor drives them: no PDU is handed to a session while its answer or
//! listing is in flight or its OPER is pending; output (answers, listings, removal
//! notices, version-2 pushes) is pulled in small budgets after every PDU, so it
//! interleaves across sessions and with other sessions' messages; the hub's events
//! (KICK/BAN removals, server bans) are carried out at once; an OPER password is checked
//! at once (`secret` is accepted) and a refusal is sent when it is due; closed sessions
//! are released and replaced; and deadlines close sessions as time passes. Sessions 0 and
//! 2 share an address, so a server ban closes both.
//!
//! Two prefix bytes that no PDU layout uses steer the harness:
//! - prefix[255]: low bits pick the session, the high nibble is the pull budget;
//! - prefix[254]: seconds that pass before the PDU arrives (low 6 bits); time is counted
//!   in milliseconds, as the session counts it.
#![no_main]

use std::net::IpAddr;

use kaichat_proto::hub::{ConnRef, Event, Hub, Rules};
use kaichat_proto::pdu::{Command, Decoded, Pdu, PDU_LEN, PREFIX_LEN, TIME};
use kaichat_proto::session::{Deadlines, Phase, Session, Step};
use libfuzzer_sys::fuzz_target;

const SESSIONS: usize = 3;
/// More pulls than any answer or listing of a 4-entry history and 3 clients can take.
const MAX_PULLS: usize = 1_000;
/// The OPER password this harness accepts (the server checks an argon2 hash instead).
const OPER_PASSWORD: &[u8] = b"secret";

/// The address connection `conn` comes from: connections 0 and 2 share one.
fn peer(conn: ConnRef) -> IpAddr {
    IpAddr::from([10, 0, 0, (conn % 2) as u8])
}

struct Harness {
    hub: Hub,
    sessions: Vec<Session>,
    deadlines: Deadlines,
    now: u64,
}

impl Harness {
    /// Checks that everything a session wrote is readable in its client's byte order, is
    /// a command of its version, and (version 1) leaves prefix[62..256] zero.
    fn check_sent(out: &mut Vec<Pdu>, session: &Session) {
        let version = session.version().unwrap_or(1);
        for pdu in out.drain(..) {
            let Decoded::Known { command, .. } = pdu.decode_command(Some(session.order()))
            else {
                panic!(
                    "the server wrote {pdu:?} in another order than {:?}",
                    session.order()
                );
            };
            assert!(
                command.since_version() <= version,
                "a version-{version} client was sent {command:?}"
            );
            let free = if version >= 2 { TIME.end } else { TIME.start };
            assert!(
                pdu.as_bytes()[free..PREFIX_LEN].iter().all(|&b| b == 0),
                "{pdu:?}"
            );
            if command == Command::Quit {
                panic!("the server sent QUIT");
            }
        }
    }

    fn pull(&mut self, who: usize, budget: usize) -> bool {
        let mut out = Vec::new();
        let session = &mut self.sessions[who];
        let done = session.continue_output(&self.hub, self.now, budget, &mut out);
        assert!(out.len() <= budget);
        assert!(!done || !session.has_output(&self.hub), "done with output left");
        Self::check_sent(&mut out, session);
        done
    }

    /// Sends the rest of a session's answer or listing, and a due OPER refusal (time
    /// moves on to it): the reactor reads nothing before that.
    fn drain(&mut self, who: usize) {
        let mut pulls = 0;
        while self.sessions[who].answering() {
            if let Some(at) = self.sessions[who].wake_at() {
                self.now = self.now.max(at);
                let mut out = Vec::new();
                self.sessions[who].wake(self.now, &self.hub, &mut out);
                assert_eq!(out.len(), 1, "a due OPER refusal is one error notice");
                Self::check_sent(&mut out, &self.sessions[who]);
            }
            self.pull(who, 4);
            pulls += 1;
            assert!(pulls < MAX_PULLS, "an answer or listing never ends");
        }
    }

    fn close(&mut self, who: usize) {
        self.sessions[who].close(&mut self.hub, self.now);
        self.sessions[who] = Session::accepted(self.now, who, Some(peer(who)));
    }

    fn deliver(&mut self, who: usize, pdu: &Pdu) {
        self.drain(who);
        let mut out = Vec::new();
        let session = &mut self.sessions[who];
        let step = session.on_pdu(pdu, self.now, &mut self.hub, &mut out);
        if let Some(password) = session.take_oper_request() {
            let accepted = &password[..] == OPER_PASSWORD;
            session.oper_checked(accepted, self.now, &mut self.hub, &mut out);
        }
        Self::check_sent(&mut out, session);
        if matches!(step, Step::Close(_)) {
            self.close(who);
        }
        self.carry_out_events();
    }

    /// What the hub asks of other connections: removals and server bans.
    fn carry_out_events(&mut self) {
        let mut events = Vec::new();
        self.hub.take_events(&mut events);
        for event in events {
            match event {
                Event::Removed {
                    conn,
                    channel,
                    name,
                    notice,
                } => self.sessions[conn].removed(channel, name, notice),
                Event::CloseAddress(address) => {
                    for who in 0..SESSIONS {
                        if self.sessions[who].peer() == Some(address) {
                            self.close(who);
                        }
                    }
                }
            }
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

    fn check(&mut self) {
        let named = self.sessions.iter().filter(|s| s.user().is_some()).count();
        assert_eq!(self.hub.users(), named, "names held by no session");
        assert!(
            self.hub.channels() <= named,
            "a channel outlived its members"
        );
        // Only version-2 members are woken for pushes.
        let mut woken = Vec::new();
        self.hub.take_woken(&mut woken);
        for conn in woken {
            let session = &self.sessions[conn];
            assert_eq!(session.version(), Some(2), "a v1 client woken for pushes");
            assert_eq!(session.phase(), Phase::InChannel);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut hub = Hub::new(4, 3);
    hub.set_rules(Rules {
        oper: true,
        ..Rules::default()
    });
    let mut harness = Harness {
        hub,
        sessions: (0..SESSIONS)
            .map(|conn| Session::accepted(0, conn, Some(peer(conn))))
            .collect(),
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
