//! What a typed line means: a command (`!quit`, `!join rust`, ...) or text. Pure, so that
//! every rule is a unit test. What is wrong with a name is said by
//! `kaichat_proto::names`, in the same words as the server's refusals.
//!
//! A line whose first non-blank character is `!` is a command; `!!` escapes it, so that
//! `!!important` sends `!important`.

/// What a typed line means.
#[derive(Debug, PartialEq, Eq)]
pub enum Typed {
    Empty,
    Quit,
    Help,
    Leave,
    /// `!join` and what followed it, `@` added when missing (checked by the caller, with
    /// `ChannelName::new`).
    Join(Vec<u8>),
    /// `!list`: the open channels (v2).
    List,
    /// `!names` or `!names @channel` (`@` added when missing).
    Names(Option<Vec<u8>>),
    /// `!kick NAME [reason]`, `!ban NAME [reason]`: the name and the reason as typed
    /// (empty when none).
    Kick(Vec<u8>, Vec<u8>),
    Ban(Vec<u8>, Vec<u8>),
    /// `!unban NAME`.
    Unban(Vec<u8>),
    /// `!oper`: the password is asked for next, without echo.
    Oper,
    /// A command of ours with the wrong arguments: how to use it.
    Usage(&'static str),
    /// A command word that is none of ours.
    Unknown(String),
    /// A message, as typed (a leading `!!` sends one `!`).
    Text(Vec<u8>),
}

pub fn parse_typed(line: &[u8]) -> Typed {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return Typed::Empty;
    }
    if trimmed.first() != Some(&b'!') {
        return Typed::Text(line.to_vec());
    }
    if trimmed.starts_with(b"!!") {
        // Drop the escaping '!', keep everything else as typed.
        let at = line.len() - line.trim_ascii_start().len();
        return Typed::Text([&line[..at], &line[at + 1..]].concat());
    }
    let mut words = trimmed
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let command = words.next().unwrap_or_default();
    let rest = trimmed[command.len()..].trim_ascii();
    // The first word after the command, and what follows it.
    let (first, after) = match rest.iter().position(|b| b.is_ascii_whitespace()) {
        Some(at) => (&rest[..at], rest[at..].trim_ascii()),
        None => (rest, &rest[rest.len()..]),
    };
    match (command, rest.is_empty()) {
        (b"!quit", true) => Typed::Quit,
        (b"!help", true) => Typed::Help,
        (b"!leave", true) => Typed::Leave,
        (b"!join", _) => Typed::Join(channel_name(rest)),
        (b"!list", true) => Typed::List,
        (b"!list", false) => Typed::Usage("!list (no arguments)"),
        (b"!names", true) => Typed::Names(None),
        (b"!names", false) if after.is_empty() => Typed::Names(Some(channel_name(first))),
        (b"!names", false) => Typed::Usage("!names [@channel]"),
        (b"!kick", false) => Typed::Kick(first.to_vec(), after.to_vec()),
        (b"!kick", true) => Typed::Usage("!kick NAME [reason]"),
        (b"!ban", false) => Typed::Ban(first.to_vec(), after.to_vec()),
        (b"!ban", true) => Typed::Usage("!ban NAME [reason]"),
        (b"!unban", false) if after.is_empty() => Typed::Unban(first.to_vec()),
        (b"!unban", _) => Typed::Usage("!unban NAME"),
        (b"!oper", true) => Typed::Oper,
        (b"!oper", false) => {
            Typed::Usage("!oper (alone: the password is asked for next, so that it is not shown)")
        }
        _ => Typed::Unknown(String::from_utf8_lossy(command).into_owned()),
    }
}

/// A channel name as typed: `@` added when missing.
pub fn channel_name(typed: &[u8]) -> Vec<u8> {
    let typed = typed.trim_ascii();
    if typed.first() == Some(&b'@') {
        typed.to_vec()
    } else {
        [b"@", typed].concat()
    }
}

#[cfg(test)]
mod tests;
