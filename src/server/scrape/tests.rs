use super::*;

fn answer_to(request: &[u8]) -> Option<String> {
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let mut metrics = Some(|| "kaichat_up 1\n".to_string());
    answer(request, &peer, &mut metrics).map(|a| String::from_utf8(a).unwrap())
}

#[test]
fn get_metrics_is_answered_with_the_text_and_connection_close() {
    let a = answer_to(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
    assert!(a.contains("\r\nConnection: close\r\n"), "{a}");
    assert!(a.contains("\r\nContent-Length: 13\r\n"), "{a}");
    assert!(a.ends_with("\r\n\r\nkaichat_up 1\n"), "{a}");
    let a = answer_to(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").unwrap();
    assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
}

#[test]
fn other_paths_methods_and_malformed_requests_are_refused() {
    assert_eq!(answer_to(b"GET /metrics HTTP/1.1\r\nHost"), None, "partial");
    let a = answer_to(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(a.starts_with("HTTP/1.1 404 "), "{a}");
    let a = answer_to(b"POST /metrics HTTP/1.1\r\n\r\n").unwrap();
    assert!(
        a.starts_with("HTTP/1.1 405 ") && a.contains("\r\nAllow: GET\r\n"),
        "{a}"
    );
    let a = answer_to(b"\x16\x03\x01 hello\r\n\r\n").unwrap();
    assert!(a.starts_with("HTTP/1.1 400 "), "{a}");
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.resize(REQUEST_LIMIT, b'a');
    let a = answer_to(&big).unwrap();
    assert!(a.starts_with("HTTP/1.1 431 "), "{a}");
}

#[test]
fn slot_tokens_are_apart_from_the_listeners_and_the_clients() {
    assert!(owns(Token(FIRST_SLOT)) && owns(Token(FIRST_SLOT + MAX_SCRAPES - 1)));
    assert!(!owns(LISTENER) && !owns(Token(usize::MAX - 1)) && !owns(Token(0)));
}
