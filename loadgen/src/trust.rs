//! The TLS client configuration of simulated clients.
//!
//! Normally every client verifies the server's certificate against `--ca`, exactly like
//! the `kaichat` client. `--no-verify` skips the two signature checks a TLS 1.3 client
//! makes (the certificate chain and CertificateVerify), for handshake-rate benchmarks
//! where the generator shares a 2-core machine with the server: the server does the same
//! work either way, and the generator's per-handshake CPU drops. It is only for runs
//! against a local server.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// Accepts any certificate and any handshake signature. See the module documentation.
#[derive(Debug)]
struct NoVerify(Vec<SignatureScheme>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

/// The configuration shared by every simulated client: `base` (trusting `--ca`) without
/// session resumption, since each simulated client stands for a separate machine and every
/// connection must be a full handshake; with `no_verify`, without checks as well.
pub fn client_config(base: &ClientConfig, no_verify: bool) -> Arc<ClientConfig> {
    let mut config = base.clone();
    config.resumption = rustls::client::Resumption::disabled();
    if no_verify {
        let schemes = config
            .crypto_provider()
            .signature_verification_algorithms
            .supported_schemes();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(NoVerify(schemes)));
    }
    Arc::new(config)
}

#[cfg(test)]
mod tests;
