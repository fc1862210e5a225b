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
mod tests {
    use super::*;

    #[test]
    fn typed_lines() {
        assert_eq!(parse_typed(b""), Typed::Empty);
        assert_eq!(parse_typed(b"   "), Typed::Empty);
        assert_eq!(parse_typed(b"hello"), Typed::Text(b"hello".to_vec()));
        assert_eq!(parse_typed(b" hi "), Typed::Text(b" hi ".to_vec()));
        assert_eq!(parse_typed(b"!quit"), Typed::Quit);
        assert_eq!(parse_typed(b" !quit "), Typed::Quit);
        assert_eq!(parse_typed(b"!help"), Typed::Help);
        assert_eq!(parse_typed(b"!leave"), Typed::Leave);
        assert_eq!(parse_typed(b"!join @x"), Typed::Join(b"@x".to_vec()));
        assert_eq!(parse_typed(b"!join  @x "), Typed::Join(b"@x".to_vec()));
        assert!(matches!(parse_typed(b"!quit now"), Typed::Unknown(_)));
        assert!(matches!(parse_typed(b"!nope"), Typed::Unknown(_)));
    }

    #[test]
    fn a_leading_bang_is_a_command_and_two_send_one() {
        assert_eq!(
            parse_typed(b"!important: lunch at 12"),
            Typed::Unknown("!important:".to_string())
        );
        assert_eq!(
            parse_typed(b"!!important: lunch at 12"),
            Typed::Text(b"!important: lunch at 12".to_vec())
        );
        assert_eq!(parse_typed(b"  !!x "), Typed::Text(b"  !x ".to_vec()));
        assert_eq!(parse_typed(b"!!"), Typed::Text(b"!".to_vec()));
        assert_eq!(parse_typed(b"!!!"), Typed::Text(b"!!".to_vec()));
        assert_eq!(parse_typed(b"a!b"), Typed::Text(b"a!b".to_vec()));
    }

    #[test]
    fn join_takes_the_rest_of_the_line_and_adds_the_at() {
        assert_eq!(parse_typed(b"!join rust"), Typed::Join(b"@rust".to_vec()));
        assert_eq!(parse_typed(b"!join"), Typed::Join(b"@".to_vec()));
        assert_eq!(
            parse_typed(b"!join my channel"),
            Typed::Join(b"@my channel".to_vec())
        );
    }

    #[test]
    fn channel_names_get_an_at() {
        assert_eq!(channel_name(b"rust"), b"@rust");
        assert_eq!(channel_name(b" @rust "), b"@rust");
    }
}
