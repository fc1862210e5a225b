use super::*;

#[test]
fn no_resumption_and_optional_verification() {
    let trust = kaichat::tls::Trust {
        ca: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../certs/ca.pem").into()),
        roots: Vec::new(),
    };
    let base = kaichat::tls::client_config(&trust).unwrap();
    for no_verify in [false, true] {
        let config = client_config(&base, no_verify);
        let debug = format!("{:?}", config.resumption);
        assert!(debug.contains("NoClientSessionStorage"), "{debug}");
        // The verifier is the checking one unless --no-verify asked otherwise.
        let whole = format!("{config:?}");
        assert_eq!(whole.contains("NoVerify"), no_verify, "{whole}");
    }
}
