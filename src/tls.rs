//! Building rustls configurations from PEM files, for the server and for clients.
//!
//! Errors are one line that names the file, because they end up in front of a person who
//! passed a wrong path on the command line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The development CA bundled in `certs/`, relative to the repository root.
pub const DEV_CA: &str = "certs/ca.pem";
/// The development server chain bundled in `certs/`.
pub const DEV_CERT: &str = "certs/server.pem";
/// The development server key bundled in `certs/`.
pub const DEV_KEY: &str = "certs/server.key";

/// Where a bundled development file (`DEV_CA`, `DEV_CERT`, `DEV_KEY`) is: relative to the
/// working directory when it is there, otherwise in the repository the binaries were built
/// from. The server and the client look the same way, so that started from anywhere they
/// agree on the development pair. The path returned may not exist; errors name it.
pub fn dev_file(relative: &str) -> PathBuf {
    let local = Path::new(relative);
    if local.exists() {
        return local.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A certificate or key that could not be used.
#[derive(Debug)]
pub struct TlsSetupError(String);

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsSetupError {}

fn fail(path: &Path, what: impl fmt::Display) -> TlsSetupError {
    TlsSetupError(format!("{}: {what}", path.display()))
}

/// Why a PEM file could not be read, in words: an I/O error as the system says it, a broken
/// PEM file as the parser says it.
fn pem_failure(path: &Path, kind: &str, e: pem::Error) -> TlsSetupError {
    match e {
        pem::Error::Io(io) => fail(path, format!("cannot read the {kind} file: {io}")),
        pem::Error::MissingSectionEnd { end_marker } => fail(
            path,
            format!(
                "not a valid PEM file: no -----END {}----- line",
                String::from_utf8_lossy(&end_marker)
            ),
        ),
        pem::Error::IllegalSectionStart { line } => fail(
            path,
            format!(
                "not a valid PEM file: malformed line '{}'",
                String::from_utf8_lossy(&line)
            ),
        ),
        other => fail(path, format!("not a valid PEM file: {other}")),
    }
}

/// Reads every certificate of a PEM file; a file without one is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_failure(path, "certificate", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_failure(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(if PrivateKeyDer::from_pem_file(path).is_ok() {
            fail(path, "holds a private key, not a certificate")
        } else {
            fail(
                path,
                "no certificate in the file (expected PEM: -----BEGIN CERTIFICATE-----)",
            )
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound
            if CertificateDer::pem_file_iter(path).is_ok_and(|mut c| c.next().is_some()) =>
        {
            fail(path, "holds a certificate, not a private key")
        }
        pem::Error::NoItemsFound => fail(
            path,
            "no private key in the file (expected PEM: -----BEGIN PRIVATE KEY-----, \
             or RSA PRIVATE KEY or EC PRIVATE KEY)",
        ),
        other => pem_failure(path, "private key", other),
    })
}

/// Says what is wrong with a certificate chain and key that rustls refused together.
fn pair_failure(cert: &Path, key: &Path, e: rustls::Error) -> TlsSetupError {
    let (cert, key) = (cert.display(), key.display());
    TlsSetupError(match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            format!("{cert} and {key} do not match: the key is not the certificate's private key")
        }
        rustls::Error::InconsistentKeys(_) => format!(
            "{key}: cannot derive the public key of this private key to check it against {cert}"
        ),
        rustls::Error::InvalidCertificate(e) => {
            format!("{cert}: the first certificate is not a usable X.509 certificate ({e:?})")
        }
        // What loading the key itself raises (an unsupported algorithm, a corrupt key).
        rustls::Error::General(e) => format!("{key}: unusable private key: {e}"),
        other => format!("{cert} with {key}: unusable: {other}"),
    })
}

/// The server configuration: TLS 1.3 and 1.2 with the default provider, stateless session
/// tickets for resumption, no client authentication.
///
/// The server picks the cipher suite and prefers AES-128-GCM: every QUERY answer is a
/// 2,282-byte record to encrypt, AES-128 does 10 rounds where AES-256 does 14, and both
/// are secure. Clients that offer only AES-256 or ChaCha20 still get them.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        use rustls::CipherSuite::*;
        !matches!(
            suite.suite(),
            TLS13_AES_128_GCM_SHA256
                | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(format!("cannot configure TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| pair_failure(cert, key, e))?;
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
        .map_err(|e| TlsSetupError(format!("cannot create a session ticketer: {e}")))?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// Where a client's trust comes from.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// A CA file to trust (for example the bundled development CA).
    pub ca: Option<PathBuf>,
    /// Roots the caller loaded itself (the terminal client passes the operating system's);
    /// unusable ones are skipped.
    pub roots: Vec<CertificateDer<'static>>,
}

/// A client configuration trusting `trust`. Fails when no root at all could be loaded.
pub fn client_config(trust: &Trust) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &trust.ca {
        for cert in load_certs(ca)? {
            roots
                .add(cert)
                .map_err(|e| fail(ca, format!("not a usable CA certificate: {e}")))?;
        }
    }
    // An unusable extra root is skipped: a broken system store must not stop a client
    // that was given its CA explicitly.
    for cert in &trust.roots {
        let _ = roots.add(cert.clone());
    }
    if roots.is_empty() {
        return Err(TlsSetupError(
            "no trusted certificate authority: pass --ca PEM".to_string(),
        ));
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
