//! `smshook check`: loads the configuration as `serve` would (secret files,
//! `secret_env` variables and the TLS certificate and key included) and
//! prints what would run, or exits 1 with the reason. Run it before a
//! reload or a deploy: the systemd unit's `ExecReload` does, so `systemctl
//! reload` refuses a configuration that would not load instead of leaving a
//! line in the log. It opens no database and binds no port; it never prints
//! a secret.

use std::fmt::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::ConfigArgs;
use super::redact_url;
use crate::config::Config;
use crate::providers::Provider;

pub fn check(args: &ConfigArgs) -> Result<ExitCode> {
    let config = args.load()?;
    if let Some(files) = &config.tls {
        crate::http::tls::Certificates::load(files)?.acceptor()?;
    }
    print!("{}", summary(&config));
    for warning in config.warnings() {
        println!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Where an SNS source's keys come from, as `check` says it.
fn certificates_text(source: &crate::config::Source) -> String {
    match &source.certificates {
        Some(c) if c.is_pinned() => ", pinned certificates".into(),
        Some(_) => ", SNS's certificates fetched from AWS".into(),
        None => String::new(),
    }
}

/// For a source that answers sooner than `ack_deadline`, since its
/// provider waits less: how soon, and why.
fn sooner(provider: &Provider, ack_deadline: std::time::Duration) -> String {
    let allowed = provider.ack_deadline(ack_deadline);
    match provider.answer_timeout {
        Some(limit) if allowed < ack_deadline => format!(
            "; {} to answer, as {} waits {}",
            humantime::format_duration(allowed),
            provider.name,
            humantime::format_duration(limit)
        ),
        _ => String::new(),
    }
}

/// What `serve` would run with this configuration, one line per item.
fn summary(config: &Config) -> String {
    let mut out = String::from("configuration OK\n");
    let scheme = match &config.tls {
        Some(tls) => format!("HTTPS, certificate {}", tls.cert.display()),
        None => "HTTP".into(),
    };
    let _ = writeln!(out, "listen: {} ({scheme})", config.listen);
    let _ = writeln!(out, "database: {}", redact_url(&config.database));
    for s in &config.sources {
        let _ = writeln!(
            out,
            "source: {} /webhooks/{} ({}, {}, from {}{}{})",
            if s.provider.takes_get() {
                "GET|POST"
            } else {
                "POST"
            },
            s.name,
            s.provider.name,
            count(s.secrets.len(), s.provider.secret_noun()),
            s.allowed_text(),
            s.public_url
                .as_ref()
                .map_or(String::new(), |u| format!(", signed for {}", u.text))
                + &certificates_text(s),
            sooner(s.provider, config.ack_deadline)
        );
    }
    for d in &config.destinations {
        let place = crate::dispatch::place(&d.target, &config.brokers);
        let _ = writeln!(out, "destination: {} -> {place}", d.name);
    }
    let api = match config.api_token {
        Some(_) => "on (bearer token from SMSHOOK_API_TOKEN; web console at /console)",
        None => "off (SMSHOOK_API_TOKEN is not set)",
    };
    let _ = writeln!(out, "query API: {api}");
    let retention = config.retention.map_or("forever".into(), |k| {
        humantime::format_duration(k).to_string()
    });
    let _ = writeln!(out, "events kept: {retention}");
    let _ = writeln!(
        out,
        "limits: bodies up to {} bytes, {} bytes being read at once, {} connections, \
         {} to answer",
        config.max_body_bytes,
        config.max_body_bytes_in_flight,
        config.max_connections,
        humantime::format_duration(config.ack_deadline)
    );
    out
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
