use super::*;

#[test]
fn toml_strings_escape_what_toml_needs() {
    assert_eq!(toml_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    assert_eq!(toml_string("x\u{7}y"), r#""x\u0007y""#);
}

#[test]
fn lines_count_from_one() {
    assert_eq!(line_of(b""), 1);
    assert_eq!(line_of(b"a\nb\n"), 3);
}
