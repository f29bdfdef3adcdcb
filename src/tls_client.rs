//! rustls client settings for smshook's outbound TLS connections that are
//! not reqwest's: the PostgreSQL backend and `smshook bench` over HTTPS.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How a client checks the server's certificate.
pub enum Verify {
    /// Encrypt only (libpq's `sslmode=require` without a root certificate).
    Nothing,
    /// Against the roots in a PEM file (its path, and the setting that named
    /// it, for error messages), or the system's roots.
    Roots(Option<(String, &'static str)>),
}

/// A rustls client configuration (aws-lc-rs, TLS 1.2 and 1.3).
pub fn client_config(verify: Verify) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        Verify::Roots(Some((path, setting))) => builder
            .with_root_certificates(roots_from(&path, setting)?)
            .with_no_client_auth(),
        Verify::Roots(None) => {
            let verifier =
                rustls_platform_verifier::Verifier::new(provider).context("system TLS roots")?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

fn roots_from(path: &str, setting: &str) -> Result<RootCertStore> {
    let pem = std::fs::read(path).with_context(|| format!("{setting}: cannot read {path}"))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.with_context(|| format!("{setting}: {path} is not PEM certificates"))?)?;
    }
    if roots.is_empty() {
        bail!("{setting}: {path} holds no certificate");
    }
    Ok(roots)
}

/// libpq's `sslmode=require` without a root certificate: the channel is
/// encrypted, the server's identity is not checked. Signatures are still
/// verified so the handshake is sound.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
