//! PostgreSQL connection settings from a URL, with TLS by rustls following
//! libpq's `sslmode`: `disable` and `prefer` (the default) connect in plain
//! text; `require` encrypts, verifying the server only when `sslrootcert` is
//! given (as libpq does); `verify-ca` and `verify-full` verify the
//! certificate and host name against `sslrootcert` or the system's roots.

use anyhow::{Context, Result, bail};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tls_client::{Verify, client_config};

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
        "require" | "verify-ca" | "verify-full" => {
            let root = root.map(|path| (path, "database: sslrootcert"));
            Some(client_config(Verify::Roots(root))?)
        }
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
