//! HTTPS without a proxy: TLS termination by rustls, from a PEM certificate
//! chain and private key (`tls_cert`, `tls_key`). The files are read again
//! when they change (checked every `file_check_interval`), so a renewal
//! (certbot, an ACME client) takes effect without a restart; a renewal that
//! cannot be read is logged and the certificate in use stays.

use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;
use crate::file_stamp::{FileStamp, stamps};

/// The certificate in use, and the files it came from.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    /// Modification times of the certificate and key files when read.
    stamp: Vec<Option<FileStamp>>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.read().key.clone())
    }
}

impl Certificates {
    /// Reads the files; an error names the file and what is wrong with it.
    pub fn load(files: &TlsFiles) -> Result<Arc<Self>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let loaded = read(files, &provider)?;
        Ok(Arc::new(Self {
            files: files.clone(),
            provider,
            current: RwLock::new(loaded),
        }))
    }

    /// The acceptor for the accept loop: HTTP/1.1, TLS 1.2 and 1.3.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Checks the files every `interval` (`file_check_interval`), forever,
    /// and reads them again when either has changed.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.reload_if_changed();
        }
    }

    /// Reads the files again if their modification times moved; returns
    /// whether a new certificate is in use.
    pub fn reload_if_changed(&self) -> bool {
        if stamp(&self.files) == self.read().stamp {
            return false;
        }
        match read(&self.files, &self.provider) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "TLS certificate changed but cannot be used; keeping the one in use");
                // Do not retry a bad file every minute: wait for it to change again.
                self.current
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .stamp = stamp(&self.files);
                false
            }
        }
    }

    /// The leaf certificate in use, DER-encoded.
    pub fn leaf_der(&self) -> Vec<u8> {
        self.read().key.cert[0].to_vec()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn stamp(files: &TlsFiles) -> Vec<Option<FileStamp>> {
    stamps(&[&files.cert, &files.key])
}

fn read(files: &TlsFiles, provider: &CryptoProvider) -> Result<Loaded> {
    let stamp = stamp(files);
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(BufReader::new)
            .with_context(|| format!("cannot read {}", p.display()))
    };
    let chain = rustls_pemfile::certs(&mut open(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("tls_cert {}: not PEM", files.cert.display()))?;
    if chain.is_empty() {
        bail!("tls_cert {}: no certificate in it", files.cert.display());
    }
    let key = rustls_pemfile::private_key(&mut open(&files.key)?)
        .with_context(|| format!("tls_key {}: not PEM", files.key.display()))?
        .with_context(|| format!("tls_key {}: no private key in it", files.key.display()))?;
    let key = CertifiedKey::from_der(chain, key, provider).with_context(|| {
        format!(
            "tls_key {} does not fit tls_cert {}, or is of a kind rustls does not use",
            files.key.display(),
            files.cert.display()
        )
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        stamp,
    })
}
