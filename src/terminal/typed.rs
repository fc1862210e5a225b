//! What a typed line means: a command (`!quit`, `!join @name`, ...) or text. Pure, so
//! that every rule is a unit test.

/// What a typed line means.
#[derive(Debug, PartialEq, Eq)]
pub enum Typed {
    Empty,
    Quit,
    Help,
    Leave,
    Join(Vec<u8>),
    Unknown(String),
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
    let mut words = trimmed
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let command = words.next().unwrap_or_default();
    let argument = words.next();
    match (command, argument) {
        (b"!quit", None) => Typed::Quit,
        (b"!help", None) => Typed::Help,
        (b"!leave", None) => Typed::Leave,
        (b"!join", Some(channel)) if words.next().is_none() => Typed::Join(channel.to_vec()),
        _ => Typed::Unknown(String::from_utf8_lossy(trimmed).into_owned()),
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
        assert!(matches!(parse_typed(b"!join"), Typed::Unknown(_)));
        assert!(matches!(parse_typed(b"!join @a @b"), Typed::Unknown(_)));
        assert!(matches!(parse_typed(b"!nope"), Typed::Unknown(_)));
    }

    #[test]
    fn channel_names_get_an_at() {
        assert_eq!(channel_name(b"rust"), b"@rust");
        assert_eq!(channel_name(b" @rust "), b"@rust");
    }
}
