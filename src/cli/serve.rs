//! `smshook serve`: load the configuration, open the store, bind, and serve
//! until SIGINT or SIGTERM; on SIGHUP, read the configuration again for new
//! secrets.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
#[cfg(unix)]
use tokio::signal::unix::{SignalKind, signal};

use super::{ConfigArgs, redact_url};
use crate::config::Config;
#[cfg(unix)]
use crate::file_stamp::{FileStamp, stamps};
use crate::http::{self, App};
use crate::store::{self, StoreOptions};

pub async fn serve(args: &ConfigArgs) -> Result<ExitCode> {
    let config = args.load()?;
    let open_files = super::raise_open_file_limit();
    // Before the store opens: a certificate that cannot be used stops start-up.
    let tls = tls_acceptor(&config)?;
    let options = StoreOptions {
        request_log_max_rows: config.request_log_max_rows,
        server: true,
    };
    let store = store::open(&config.database, options).await?;
    let listener =
        http::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    announce(&config, &listener);
    announce_open_files(open_files);
    let app = App::new(&config, store);
    #[cfg(unix)]
    tokio::spawn(reload_secrets(args.clone(), app.clone(), &config));
    http::run_tls(listener, app, tls, shutdown_signal()).await?;
    tracing::info!("stopped; every acknowledged event is committed");
    Ok(ExitCode::SUCCESS)
}

/// The TLS acceptor when `tls_cert` and `tls_key` are set, with a task that
/// reloads renewed files.
fn tls_acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    let Some(files) = &config.tls else {
        return Ok(None);
    };
    let certificates = http::tls::Certificates::load(files)?;
    let acceptor = certificates.acceptor()?;
    tokio::spawn(certificates.watch(config.file_check_interval));
    Ok(Some(acceptor))
}

/// Loads the configuration again on SIGHUP, and when a file holding secrets
/// changes (a `secret_file`, or the config file with secrets written in it;
/// checked every `file_check_interval`), and gives the running sources and
/// HTTP destinations their new secrets (`App::reload_secrets`). A
/// configuration that no longer loads is logged and changes nothing. The
/// files watched are those of the last configuration loaded, so a
/// `secret_file` named by a reload is watched from then on.
#[cfg(unix)]
fn reload_secrets(args: ConfigArgs, app: App, config: &Config) -> impl Future<Output = ()> + use<> {
    let every = config.file_check_interval;
    let mut files = secret_files(config);
    async move {
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: secrets are read again only on restart");
                return;
            }
        };
        let mut seen = stamps(&files);
        loop {
            tokio::select! {
                _ = hangup.recv() => tracing::info!("SIGHUP: reading the configuration again"),
                () = tokio::time::sleep(every) => {
                    if stamps(&files) == seen {
                        continue;
                    }
                    tracing::info!("a file holding secrets or certificates changed: reading the configuration again");
                }
            }
            seen = reload(&args, &app, &mut files);
        }
    }
}

/// Loads the configuration again and gives `app` its secrets; `files`
/// becomes the list the new configuration names. Returns the stamps to
/// compare the next check with, taken before the load, so a file written
/// during it is read again at the next check. (A file the reload names for
/// the first time is stamped after it.)
#[cfg(unix)]
fn reload(args: &ConfigArgs, app: &App, files: &mut Vec<PathBuf>) -> Vec<Option<FileStamp>> {
    let before = stamps(files);
    match args.load() {
        Ok(config) => {
            app.reload_secrets(&config);
            let named = secret_files(&config);
            if named != *files {
                *files = named;
                return stamps(files);
            }
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "configuration not reloaded; the secrets in use stay")
        }
    }
    before
}

/// The files whose change reloads secrets: those holding secrets, but the
/// TLS key, which `http::tls` reads again itself, and pinned certificates.
#[cfg(unix)]
fn secret_files(config: &Config) -> Vec<PathBuf> {
    let tls_key = config.tls.as_ref().map(|t| &t.key);
    let files = config.secret_files.iter();
    let secrets = files.filter(|f| Some(*f) != tls_key);
    secrets.chain(&config.certificate_files).cloned().collect()
}

pub async fn migrate(args: &ConfigArgs) -> Result<ExitCode> {
    let config = args.load()?;
    let options = StoreOptions {
        request_log_max_rows: config.request_log_max_rows,
        ..StoreOptions::default()
    };
    let store = store::open(&config.database, options).await?;
    store.close().await;
    println!("{}: schema is up to date", redact_url(&config.database));
    Ok(ExitCode::SUCCESS)
}

fn announce(config: &Config, listener: &TcpListener) {
    let addr = listener
        .local_addr()
        .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    tracing::info!(listen = %addr, database = %redact_url(&config.database), "smshook serving");
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    for s in &config.sources {
        let from = s.allowed_text();
        let url = format!("{scheme}://{addr}/webhooks/{}", s.name);
        match &s.certificates {
            Some(c) => {
                let keys = if c.is_pinned() {
                    "pinned"
                } else {
                    "fetched from AWS"
                };
                tracing::info!(%url, provider = s.provider.name, topics = s.secrets.len(), certificates = keys, %from, "source");
            }
            None => {
                tracing::info!(%url, provider = s.provider.name, secrets = s.secrets.len(), %from, "source")
            }
        }
    }
    match &config.api_token {
        Some(_) => {
            let console = format!("{scheme}://{addr}/console");
            tracing::info!(%console, "query API on at /api (bearer token from SMSHOOK_API_TOKEN)")
        }
        None => tracing::info!("query API off: set SMSHOOK_API_TOKEN to turn it on"),
    }
    match config.retention {
        Some(keep) => {
            tracing::info!(retention = %humantime::format_duration(keep), "events older than this are deleted, once a minute")
        }
        None => tracing::info!("events are kept forever (set retention to delete old ones)"),
    }
    if !config.trusted_proxies.is_empty() {
        tracing::info!(proxies = %config.trusted_proxies, "requests from these proxies are logged under the client in X-Forwarded-For");
    }
}

/// Below this many open files, start-up warns: a few hundred connections
/// at once are enough to run out.
const FEW_OPEN_FILES: u64 = 4096;

fn announce_open_files(open_files: super::OpenFiles) {
    match open_files {
        Some((_, after)) if after < FEW_OPEN_FILES => tracing::warn!(
            limit = after,
            "at most {after} open files (the hard limit): each connection takes one; raise it (e.g. systemd's LimitNOFILE=) to serve more at once"
        ),
        Some((before, after)) if after > before => {
            tracing::info!(from = before, to = after, "raised the limit on open files")
        }
        _ => {}
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
