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

#[test]
fn version_2_commands() {
    assert_eq!(parse_typed(b"!list"), Typed::List);
    assert!(matches!(parse_typed(b"!list all"), Typed::Usage(_)));
    assert_eq!(parse_typed(b"!names"), Typed::Names(None));
    assert_eq!(
        parse_typed(b"!names rust"),
        Typed::Names(Some(b"@rust".to_vec()))
    );
    assert_eq!(
        parse_typed(b"!names  @rust "),
        Typed::Names(Some(b"@rust".to_vec()))
    );
    assert!(matches!(parse_typed(b"!names @a @b"), Typed::Usage(_)));
    assert_eq!(
        parse_typed(b"!kick bob"),
        Typed::Kick(b"bob".to_vec(), Vec::new())
    );
    assert_eq!(
        parse_typed(b"!kick bob  spam,  again "),
        Typed::Kick(b"bob".to_vec(), b"spam,  again".to_vec())
    );
    assert_eq!(
        parse_typed(b"!ban bob flood"),
        Typed::Ban(b"bob".to_vec(), b"flood".to_vec())
    );
    assert!(matches!(parse_typed(b"!kick"), Typed::Usage(_)));
    assert!(matches!(parse_typed(b"!ban "), Typed::Usage(_)));
    assert_eq!(parse_typed(b"!unban bob"), Typed::Unban(b"bob".to_vec()));
    assert!(matches!(parse_typed(b"!unban"), Typed::Usage(_)));
    assert!(matches!(parse_typed(b"!unban bob now"), Typed::Usage(_)));
    assert_eq!(parse_typed(b"!oper"), Typed::Oper);
    // The password is never taken from the line: it would be shown and kept in history.
    assert!(matches!(parse_typed(b"!oper secret"), Typed::Usage(_)));
    assert_eq!(parse_typed(b"!!list"), Typed::Text(b"!list".to_vec()));
}
