//! PostgreSQL connection settings from a URL, with TLS by rustls following
//! libpq's `sslmode`: `disable` and `prefer` (the default) connect in plain
//! text; `require` encrypts, verifying the server only when `sslrootcert` is
//! given (as libpq does); `verify-ca` and `verify-full` verify the
//! certificate and host name against `sslrootcert` or the system's roots.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How to reach the database: tokio-postgres settings plus TLS, if any.
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Option<MakeRustlsConnect>,
}

/// Parses a `postgres://` URL, taking out the TLS keys tokio-postgres does
/// not know (`sslmode` values beyond `require`, `sslrootcert`).
pub fn parse(url: &str) -> Result<Target> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let (mut mode, mut root) = ("prefer".to_string(), None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = v.to_string(),
            Some(("sslrootcert", v)) => root = Some(v.to_string()),
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: tokio_postgres::Config = rebuilt
        .parse()
        .context("database: not a valid postgres:// URL")?;
    let tls = match mode.as_str() {
        "disable" | "allow" | "prefer" => None,
        "require" if root.is_none() => Some(client_config(Verify::Nothing)?),
        "require" | "verify-ca" | "verify-full" => Some(client_config(Verify::Roots(root))?),
        other => bail!(
            "database: sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
        ),
    };
    if tls.is_some() {
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
    }
    Ok(Target {
        config,
        tls: tls.map(MakeRustlsConnect::new),
    })
}

enum Verify {
    Nothing,
    Roots(Option<String>),
}

fn client_config(verify: Verify) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        Verify::Roots(Some(path)) => builder
            .with_root_certificates(roots_from(&path)?)
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

fn roots_from(path: &str) -> Result<RootCertStore> {
    let pem =
        std::fs::read(path).with_context(|| format!("database: cannot read sslrootcert {path}"))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.context("database: sslrootcert is not PEM certificates")?)?;
    }
    if roots.is_empty() {
        bail!("database: sslrootcert {path} holds no certificate");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_chooses_tls() {
        assert!(parse("postgres://u@h/db").expect("parses").tls.is_none());
        assert!(
            parse("postgres://u@h/db?sslmode=disable")
                .expect("parses")
                .tls
                .is_none()
        );
        assert!(
            parse("postgres://u@h/db?sslmode=require")
                .expect("parses")
                .tls
                .is_some()
        );
        assert!(parse("postgres://u@h/db?sslmode=bogus").is_err());
        let t = parse("postgres://u@h/db?sslmode=require&application_name=x").expect("parses");
        assert_eq!(t.config.get_application_name(), Some("x"));
    }
}
