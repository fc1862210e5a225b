use super::*;

fn target(host: &str, ca: CaFile) -> Target {
    Target {
        host: host.to_string(),
        port: 29200,
        tls: None,
        ca,
    }
}

fn told(cause: Cause, target: &Target) -> String {
    Explained {
        cause: &cause,
        target,
    }
    .to_string()
}

#[test]
fn only_certificate_and_name_problems_are_final() {
    assert!(Cause::Closed { cleanly: true }.is_transient());
    assert!(Cause::Unreachable(io::ErrorKind::ConnectionRefused.into()).is_transient());
    assert!(!Cause::Certificate(rustls::CertificateError::UnknownIssuer).is_transient());
}

#[test]
fn servers_display_with_brackets_for_ipv6() {
    assert_eq!(display_server("h", 1), "h:1");
    assert_eq!(display_server("::1", 1), "[::1]:1");
}

#[test]
fn a_wrong_name_is_not_a_ca_problem() {
    let t = target("foo", CaFile::Development(PathBuf::from("/x/ca.pem")));
    let text = told(
        Cause::Certificate(rustls::CertificateError::NotValidForName),
        &t,
    );
    assert_eq!(text, "the server's certificate is not valid for 'foo'");
}

#[test]
fn a_wrong_name_lists_the_names_of_the_certificate() {
    let t = target("127.0.0.1", CaFile::Given(PathBuf::from("ca.pem")));
    let cause = Cause::Certificate(rustls::CertificateError::NotValidForNameContext {
        expected: ServerName::try_from("127.0.0.1").unwrap().to_owned(),
        presented: vec![
            "DnsName(\"chat.example\")".to_string(),
            "IpAddress(10.0.0.1)".to_string(),
            "IpAddress(0::1)".to_string(),
        ],
    });
    assert_eq!(
        told(cause, &t),
        "the server's certificate is not valid for '127.0.0.1' (it is for chat.example, \
         10.0.0.1, ::1); connect with one of those names"
    );
}

#[test]
fn an_unknown_issuer_names_the_ca_to_pass() {
    let unknown = || Cause::Certificate(rustls::CertificateError::UnknownIssuer);
    let given = told(
        unknown(),
        &target("h", CaFile::Given(PathBuf::from("mine.pem"))),
    );
    assert!(given.contains("mine.pem did not sign it"), "{given}");
    assert!(given.contains("--ca PEM"), "{given}");
    let missing = told(
        unknown(),
        &target("h", CaFile::NotFound(PathBuf::from("/src/certs/ca.pem"))),
    );
    assert!(
        missing.contains("not found at /src/certs/ca.pem"),
        "{missing}"
    );
}
