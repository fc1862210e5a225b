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
    /// A command word that is none of ours (or a command with the wrong arguments).
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
    match (command, rest.is_empty()) {
        (b"!quit", true) => Typed::Quit,
        (b"!help", true) => Typed::Help,
        (b"!leave", true) => Typed::Leave,
        (b"!join", _) => Typed::Join(channel_name(rest)),
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
