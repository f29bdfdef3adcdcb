//! Configuration: the commented default (`config/default.toml`), the user's
//! TOML file, environment variables and flags, layered in that order and
//! validated into one [`Config`] before anything runs.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::dispatch::{Brokers, Destination, Filter, Target};
use crate::http::{Networks, TrustedProxies};
use crate::providers::{self, Provider};
use crate::signature::Secret;
use crate::signature::public_url::PublicUrl;
use crate::signature::sns::Certificates;

/// The commented default configuration printed by `smshook config`.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Where settings come from besides the file: flags and environment lookups.
/// The environment is a function so tests need not touch the process's.
pub struct Overrides<'a> {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub database: Option<String>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// A validated configuration: every value here is usable as it is.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: String,
    pub max_body_bytes: usize,
    /// Most body bytes the webhooks being read at once may reserve
    /// (`http::webhooks`).
    pub max_body_bytes_in_flight: usize,
    /// Most connections served at once (`http::serve`).
    pub max_connections: usize,
    pub ack_deadline: Duration,
    /// Longest a connection may take to send a request head; kept-alive
    /// connections idle this long are closed (`http::serve`).
    pub idle_timeout: Duration,
    /// How often the TLS files and the files holding secrets are checked
    /// for changes (`cli::serve`, `http::tls`).
    pub file_check_interval: Duration,
    pub request_log_max_rows: u64,
    /// How long stored events are kept; `None`: forever (`retention`).
    pub retention: Option<Duration>,
    pub sources: Vec<Source>,
    /// Where stored events are handed to the application.
    pub destinations: Vec<Destination>,
    /// The NATS and Redis servers queue destinations reach.
    pub brokers: Brokers,
    /// Bearer token for `/api/*` (`SMSHOOK_API_TOKEN`); `None` turns the API off.
    pub api_token: Option<Secret>,
    /// Proxies whose `X-Forwarded-For` names the client in the request log.
    pub trusted_proxies: TrustedProxies,
    /// Files secrets were read from: the config file when one is written in
    /// it, every `secret_file`, and the TLS key (start-up warns when others
    /// can read them).
    pub secret_files: Vec<PathBuf>,
    /// Certificates pinned by a source (`signing_certificates`): not
    /// secret, but a change reloads them as a secret file's does.
    pub certificate_files: Vec<PathBuf>,
    /// Serve HTTPS with these, instead of plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key (`http::tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One configured endpoint, `POST /webhooks/<name>`.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub provider: &'static Provider,
    /// Any one matching is enough (rotation).
    pub secrets: Vec<Secret>,
    /// The client addresses webhooks are taken from (`allowed_ips`); `None`:
    /// any. Checked before the body is read, against the address the
    /// request log records (the client behind a trusted proxy).
    pub allowed: Option<Networks>,
    /// The URL the provider posts to, for a provider that signs it
    /// (`public_url`; Twilio). Required for those, refused for others.
    pub public_url: Option<PublicUrl>,
    /// Where an Amazon SNS source's signing keys come from: pinned
    /// (`signing_certificates`) or fetched from AWS. `None` for others.
    pub certificates: Option<Arc<Certificates>>,
}

impl Source {
    /// Whether a webhook from `client` may be taken: any address when
    /// `allowed_ips` is not set, else only those it lists (an unknown
    /// address is refused).
    pub fn admits(&self, client: Option<std::net::IpAddr>) -> bool {
        match &self.allowed {
            None => true,
            Some(nets) => client.is_some_and(|ip| nets.contains(ip)),
        }
    }

    /// Where webhooks are taken from, as start-up, `smshook check` and a
    /// reload say it: "any address", or the `allowed_ips`.
    pub fn allowed_text(&self) -> String {
        self.allowed
            .as_ref()
            .map_or("any address".into(), ToString::to_string)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: String,
    database: String,
    max_body_bytes: usize,
    max_body_bytes_in_flight: usize,
    max_connections: usize,
    #[serde(with = "humantime_serde")]
    ack_deadline: Duration,
    #[serde(with = "humantime_serde")]
    idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    file_check_interval: Duration,
    request_log: RequestLogFile,
    retention: String,
    trusted_proxies: Vec<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    sources: Vec<SourceFile>,
    #[serde(default)]
    destinations: Vec<DestinationFile>,
    nats_url: Option<String>,
    redis_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationFile {
    name: String,
    url: Option<String>,
    subject: Option<String>,
    stream: Option<String>,
    redis_stream: Option<String>,
    redis_max_len: Option<u64>,
    secret: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    types: Vec<String>,
    opt_out: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    retry_schedule: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestLogFile {
    max_rows: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFile {
    name: String,
    provider: String,
    secrets: Option<Vec<String>>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    allowed_ips: Option<Vec<String>>,
    public_url: Option<String>,
    signing_certificates: Option<Vec<PathBuf>>,
}

impl Config {
    /// Layers default, file, environment and flags, then validates.
    pub fn load(o: &Overrides) -> Result<Config> {
        let file = o
            .config_file
            .clone()
            .or_else(|| (o.env)("SMSHOOK_CONFIG").map(PathBuf::from));
        let user = match &file {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        let mut merged: toml::Table =
            toml::from_str(DEFAULT_TOML).context("built-in default config")?;
        if let Some(user) = user {
            merge(&mut merged, user);
        }
        let raw: FileConfig =
            FileConfig::deserialize(merged).map_err(|e| config_error(&file, e))?;
        let secret_files = file
            .as_deref()
            .map_or_else(Vec::new, |f| files_with_secrets(&raw, f));
        let certificate_files = raw
            .sources
            .iter()
            .flat_map(|s| s.signing_certificates.iter().flatten().cloned())
            .collect();
        let mut config = build(raw, file.is_some(), o).with_context(|| match &file {
            Some(p) => format!("config file {}", p.display()),
            None => "configuration".to_string(),
        })?;
        config.secret_files = secret_files;
        config.certificate_files = certificate_files;
        config
            .secret_files
            .extend(config.tls.as_ref().map(|t| t.key.clone()));
        Ok(config)
    }
}

/// The config file, when a secret is written in it, and every
/// `secret_file` it names.
fn files_with_secrets(raw: &FileConfig, file: &Path) -> Vec<PathBuf> {
    let inline = raw.sources.iter().any(|s| s.secrets.is_some())
        || raw.destinations.iter().any(|d| d.secret.is_some());
    let named = raw
        .sources
        .iter()
        .filter_map(|s| s.secret_file.clone())
        .chain(
            raw.destinations
                .iter()
                .filter_map(|d| d.secret_file.clone()),
        );
    inline
        .then(|| file.to_path_buf())
        .into_iter()
        .chain(named)
        .collect()
}

impl Config {
    /// What is allowed but likely a mistake, one sentence each: logged by
    /// `serve` at start-up and printed by `smshook check`.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.sources.is_empty() {
            warnings.push(
                "no sources configured: every webhook will be answered 404 (see `smshook config`)"
                    .to_string(),
            );
        }
        warnings.extend(self.proxy_hides_clients());
        for s in &self.sources {
            if s.provider.addresses_change && s.allowed.is_some() {
                warnings.push(format!(
                    "source {}: {} says its webhooks' addresses change and asks not to filter on them: allowed_ips may refuse its webhooks without notice",
                    s.name, s.provider.name
                ));
            }
        }
        for (file, mode) in open_to_others(&self.secret_files) {
            warnings.push(format!(
                "{} holds secrets and other users can read or change it (mode {mode:o}): chmod 600 it",
                file.display()
            ));
        }
        warnings
    }

    /// Sources limited to `allowed_ips` while smshook listens on loopback
    /// with no trusted proxy: that is how it runs behind a proxy on the same
    /// host, where every webhook would arrive from the proxy's address and
    /// be refused.
    fn proxy_hides_clients(&self) -> Vec<String> {
        let loopback = self.listen.ip();
        if !loopback.is_loopback() || !self.trusted_proxies.is_empty() {
            return Vec::new();
        }
        self.sources
            .iter()
            .filter(|s| !s.admits(Some(loopback)))
            .map(|s| format!(
                "source {}: allowed_ips is set and smshook listens on {loopback} with no trusted_proxies: behind a reverse proxy on this host, every webhook comes from {loopback} and is answered 403; name the proxy in trusted_proxies",
                s.name
            ))
            .collect()
    }
}

/// Those of `files` that users other than the owner may read or write, with
/// their permission bits (`0o644`, say).
pub fn open_to_others(files: &[PathBuf]) -> Vec<(&Path, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        files
            .iter()
            .filter_map(|f| {
                let mode = std::fs::metadata(f).ok()?.permissions().mode() & 0o777;
                (mode & 0o077 != 0).then_some((f.as_path(), mode))
            })
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = files;
        Vec::new()
    }
}

fn read_file(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

fn config_error(file: &Option<PathBuf>, e: toml::de::Error) -> anyhow::Error {
    let name = file.as_ref().map_or("configuration".into(), |p| {
        format!("config file {}", p.display())
    });
    anyhow::anyhow!("{name}: {e}")
}

/// The user's keys replace the default's; tables merge key by key.
fn merge(base: &mut toml::Table, user: toml::Table) {
    for (key, value) in user {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(u)) => merge(b, u),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn build(raw: FileConfig, from_file: bool, o: &Overrides) -> Result<Config> {
    let env = o.env;
    let listen = o
        .listen
        .clone()
        .or_else(|| env("SMSHOOK_LISTEN"))
        .unwrap_or(raw.listen);
    let database = o
        .database
        .clone()
        .or_else(|| env("SMSHOOK_DATABASE"))
        .unwrap_or(raw.database);
    let max_body_bytes = number(env, "SMSHOOK_MAX_BODY_BYTES", raw.max_body_bytes)?;
    let in_flight = number(
        env,
        "SMSHOOK_MAX_BODY_BYTES_IN_FLIGHT",
        raw.max_body_bytes_in_flight,
    )?;
    let max_connections = number(env, "SMSHOOK_MAX_CONNECTIONS", raw.max_connections)?;
    let ack_deadline = duration(env, "SMSHOOK_ACK_DEADLINE", raw.ack_deadline)?;
    let (idle_timeout, file_check_interval) =
        intervals(raw.idle_timeout, raw.file_check_interval, env)?;
    let sources = if from_file {
        file_sources(raw.sources, env)?
    } else {
        env_sources(env)?
    };
    let destinations = destinations(raw.destinations, &sources, env)?;
    let brokers = Brokers {
        nats_url: env("SMSHOOK_NATS_URL").or(raw.nats_url),
        redis_url: env("SMSHOOK_REDIS_URL").or(raw.redis_url),
    };
    check_brokers(&destinations, &brokers)?;
    let trusted_proxies = trusted_proxies(&raw.trusted_proxies, env)?;
    check_limits(
        (max_body_bytes, in_flight, max_connections),
        ack_deadline,
        raw.request_log.max_rows,
    )?;
    let retention = match env("SMSHOOK_RETENTION") {
        Some(v) => parse_retention(&v).context("SMSHOOK_RETENTION")?,
        None => parse_retention(&raw.retention).context("retention")?,
    };
    let tls = tls_files(raw.tls_cert, raw.tls_key, env)?;
    Ok(Config {
        listen: listen.parse().with_context(|| {
            format!("listen: {listen:?} is not an address such as 127.0.0.1:8080")
        })?,
        database: check_database(database)?,
        max_body_bytes,
        max_body_bytes_in_flight: in_flight,
        max_connections,
        ack_deadline,
        idle_timeout,
        file_check_interval,
        request_log_max_rows: raw.request_log.max_rows,
        retention,
        sources,
        brokers,
        destinations,
        api_token: env("SMSHOOK_API_TOKEN")
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        trusted_proxies,
        secret_files: Vec::new(),
        certificate_files: Vec::new(),
        tls,
    })
}

/// `idle_timeout` and `file_check_interval`, each checked.
fn intervals(
    idle_timeout: Duration,
    file_check_interval: Duration,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Duration, Duration)> {
    let idle_timeout = duration(env, "SMSHOOK_IDLE_TIMEOUT", idle_timeout)?;
    if idle_timeout.is_zero() {
        bail!("idle_timeout: must be longer than 0s");
    }
    let file_check_interval = duration(env, "SMSHOOK_FILE_CHECK_INTERVAL", file_check_interval)?;
    if file_check_interval < Duration::from_secs(1) {
        bail!("file_check_interval: must be at least 1s");
    }
    Ok((idle_timeout, file_check_interval))
}

/// The proxies in `SMSHOOK_TRUSTED_PROXIES` (comma-separated) when it is
/// set, else the file's `trusted_proxies`.
fn trusted_proxies(
    file: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TrustedProxies> {
    match env("SMSHOOK_TRUSTED_PROXIES") {
        Some(v) => TrustedProxies::parse(&split_list(&v, ',')).context("SMSHOOK_TRUSTED_PROXIES"),
        None => TrustedProxies::parse(file).context("trusted_proxies"),
    }
}

/// The duration in the environment variable `var` when it is set, else
/// the file's.
fn duration(env: &dyn Fn(&str) -> Option<String>, var: &str, file: Duration) -> Result<Duration> {
    match env(var) {
        Some(v) => humantime::parse_duration(v.trim())
            .with_context(|| format!("{var}: {v:?} is not a duration such as 30s")),
        None => Ok(file),
    }
}

/// Shortest retention: providers retry an unanswered event for up to 12
/// hours (TextUs; MsGine about 7), and a retry of an event already deleted
/// would be stored again, as new.
const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Longest retention short of "forever" (a cutoff before year 0000 could
/// not be written as RFC 3339).
const MAX_RETENTION: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// `"forever"`, or a duration of at least [`MIN_RETENTION`] (`"30d"`).
fn parse_retention(text: &str) -> Result<Option<Duration>> {
    if text.trim().eq_ignore_ascii_case("forever") {
        return Ok(None);
    }
    let keep = humantime::parse_duration(text.trim())
        .with_context(|| format!("{text:?} is not \"forever\" or a duration such as 30d"))?;
    if keep > MAX_RETENTION {
        bail!("{text:?} is over 100 years: say \"forever\"");
    }
    if keep < MIN_RETENTION {
        bail!(
            "{text:?} is shorter than 1 day: providers retry for up to 12 hours, and a retry of a deleted event would be stored again"
        );
    }
    Ok(Some(keep))
}

/// `tls_cert` and `tls_key`, from the environment or the file: both or none.
fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<TlsFiles>> {
    let cert = env("SMSHOOK_TLS_CERT").map(PathBuf::from).or(cert);
    let key = env("SMSHOOK_TLS_KEY").map(PathBuf::from).or(key);
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => bail!("tls_key: needed with tls_cert (the certificate's private key)"),
        (None, Some(_)) => bail!("tls_cert: needed with tls_key (the certificate chain)"),
    }
}

/// A whole number (of bytes, say) from the environment variable `name`, else
/// `file`.
fn number(env: &dyn Fn(&str) -> Option<String>, name: &str, file: usize) -> Result<usize> {
    match env(name) {
        Some(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}: expected a whole number")),
        None => Ok(file),
    }
}

fn check_limits(
    (max_body, in_flight, connections): (usize, usize, usize),
    deadline: Duration,
    max_rows: u64,
) -> Result<()> {
    if connections == 0 {
        bail!("max_connections: must be at least 1");
    }
    if max_body == 0 {
        bail!("max_body_bytes: must be at least 1");
    }
    if in_flight < max_body {
        bail!(
            "max_body_bytes_in_flight: must be at least max_body_bytes ({max_body}), \
             or a body of the largest size could never be read"
        );
    }
    if deadline.is_zero() {
        bail!("ack_deadline: must be longer than 0s");
    }
    if max_rows == 0 {
        bail!("request_log.max_rows: must be at least 1");
    }
    Ok(())
}

fn check_database(database: String) -> Result<String> {
    if database.trim().is_empty() {
        bail!("database: must be a file path, sqlite://path or postgres://…");
    }
    if database.trim_start_matches("sqlite://") == ":memory:" {
        bail!(
            "database: an in-memory SQLite database loses every event when the process ends; give a file path"
        );
    }
    Ok(database)
}

fn file_sources(raw: Vec<SourceFile>, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Source>> {
    let mut seen = HashSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let source = file_source(s, env).with_context(|| format!("sources[{i}]"))?;
            if !seen.insert(source.name.clone()) {
                bail!(
                    "sources[{i}].name: {:?} is used by another source",
                    source.name
                );
            }
            Ok(source)
        })
        .collect()
}

fn file_source(s: SourceFile, env: &dyn Fn(&str) -> Option<String>) -> Result<Source> {
    check_name(&s.name)?;
    let provider = providers::find(&s.provider).with_context(|| {
        format!(
            "provider: unknown provider {:?} (known: {})",
            s.provider,
            providers::names()
        )
    })?;
    let secrets = checked(provider, source_secrets(&s, env)?).context("secrets")?;
    let allowed = s.allowed_ips.as_deref().map(allowed_ips).transpose()?;
    let public_url = public_url(provider, s.public_url.as_deref()).context("public_url")?;
    let certificates = certificates(provider, s.signing_certificates.as_deref())
        .context("signing_certificates")?;
    Ok(Source {
        name: s.name,
        provider,
        secrets,
        allowed,
        public_url,
        certificates,
    })
}

/// An Amazon SNS source's keys: the certificates (or public keys) pinned
/// in `files`, or with none named, SNS's own, fetched from AWS. Any other
/// source must name none.
fn certificates(
    provider: &Provider,
    files: Option<&[PathBuf]>,
) -> Result<Option<Arc<Certificates>>> {
    let sns = provider.scheme == providers::Scheme::SnsCertificate;
    let Some(files) = files else {
        return Ok(sns.then(|| Arc::new(Certificates::fetched())));
    };
    if !sns {
        bail!(
            "{} does not sign with certificates; leave signing_certificates out",
            provider.name
        );
    }
    if files.is_empty() {
        bail!(
            "an empty list pins no key and refuses every message; leave the key out to fetch SNS's certificates from AWS"
        );
    }
    let keys = files
        .iter()
        .map(|file| {
            let pem =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            crate::signature::sns::public_key_from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Arc::new(Certificates::pinned(keys))))
}

/// An SNS source's pinned certificates without a config file: the files
/// in `SMSHOOK_AWS_SNS_SIGNING_CERTIFICATES` (comma-separated), if set.
fn env_certificates(
    provider: &Provider,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Arc<Certificates>>> {
    let var = provider.signing_certificates_env_var();
    let files: Option<Vec<PathBuf>> =
        env(&var).map(|v| split_list(&v, ',').into_iter().map(PathBuf::from).collect());
    certificates(provider, files.as_deref()).with_context(|| var.clone())
}

/// A source's `public_url`: the URL its provider posts to, which it signs
/// (Twilio). smshook cannot rebuild it from the request behind a proxy, so
/// such a source must name it; any other source must not.
fn public_url(provider: &Provider, text: Option<&str>) -> Result<Option<PublicUrl>> {
    match (provider.signs_url(), text) {
        (true, Some(text)) => Ok(Some(PublicUrl::parse(text).map_err(anyhow::Error::msg)?)),
        (true, None) => bail!(
            "{} signs the URL it posts to: set it here, e.g. \"https://hooks.example.com/webhooks/{}\"",
            provider.name,
            provider.name
        ),
        (false, Some(_)) => bail!(
            "{} does not sign its URL; leave public_url out",
            provider.name
        ),
        (false, None) => Ok(None),
    }
}

/// A source's `allowed_ips`. An empty list is refused: it would answer
/// every webhook 403, which is not what leaving addresses out means.
fn allowed_ips(entries: &[String]) -> Result<Networks> {
    let nets = Networks::parse(entries).context("allowed_ips")?;
    if nets.is_empty() {
        bail!(
            "allowed_ips: an empty list would refuse every webhook; leave the key out to accept any address"
        );
    }
    Ok(nets)
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        bail!(
            "name: {name:?} must be 1-64 letters, digits, '-', '_' or '.' (it is a URL path segment)"
        );
    }
    Ok(())
}

fn source_secrets(s: &SourceFile, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Secret>> {
    let values = secret_values(
        "secrets",
        s.secrets.as_deref(),
        s.secret_env.as_deref(),
        s.secret_file.as_deref(),
        env,
    )?;
    Ok(values.into_iter().map(Secret::new).collect())
}

/// `secrets`, once each is what `provider` verifies with (Telnyx: a public
/// key). The message never shows a secret.
fn checked(provider: &Provider, secrets: Vec<Secret>) -> Result<Vec<Secret>> {
    for (i, secret) in secrets.iter().enumerate() {
        provider
            .check_secret(secret)
            .map_err(|e| anyhow::anyhow!("entry {}: {e}", i + 1))?;
    }
    Ok(secrets)
}

/// The secrets given by exactly one of the config key `inline` (`list`), an
/// environment variable (comma-separated) or a file (one per line).
fn secret_values(
    inline: &str,
    list: Option<&[String]>,
    var: Option<&str>,
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>> {
    let values = match (list, var, file) {
        (Some(list), None, None) => list.to_vec(),
        (None, Some(var), None) => {
            let value =
                env(var).with_context(|| format!("secret_env: variable {var} is not set"))?;
            split_list(&value, ',')
        }
        (None, None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("secret_file: cannot read {}", path.display()))?;
            split_list(&text, '\n')
        }
        _ => bail!("exactly one of {inline}, secret_env or secret_file must be set"),
    };
    if values.is_empty() || values.iter().any(|v| v.is_empty()) {
        bail!("{inline}: at least one non-empty secret is needed");
    }
    Ok(values)
}

fn split_list(text: &str, sep: char) -> Vec<String> {
    text.split(sep)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect()
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn destinations(
    raw: Vec<DestinationFile>,
    sources: &[Source],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Destination>> {
    let mut seen = HashSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let d = destination(d, sources, env).with_context(|| format!("destinations[{i}]"))?;
            if !seen.insert(d.name.clone()) {
                bail!(
                    "destinations[{i}].name: {:?} is used by another destination",
                    d.name
                );
            }
            Ok(d)
        })
        .collect()
}

fn destination(
    d: DestinationFile,
    sources: &[Source],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Destination> {
    check_name(&d.name)?;
    if let Some(unknown) = d
        .sources
        .iter()
        .find(|n| !sources.iter().any(|s| &&s.name == n))
    {
        bail!("sources: {unknown:?} is not a configured source");
    }
    let target = target(&d, env)?;
    let schedule = match &d.retry_schedule {
        Some(list) => list
            .iter()
            .map(|w| {
                humantime::parse_duration(w)
                    .with_context(|| format!("retry_schedule: {w:?} is not a duration"))
            })
            .collect::<Result<Vec<_>>>()?,
        None => crate::dispatch::DEFAULT_SCHEDULE.to_vec(),
    };
    Ok(Destination {
        name: d.name,
        target,
        filter: Filter {
            sources: d.sources,
            types: d.types,
            opt_out: d.opt_out,
        },
        timeout: d.timeout.unwrap_or(DEFAULT_TIMEOUT),
        schedule,
    })
}

/// A queue destination needs its server's URL: said at start-up, not by
/// every delivery failing. A Redis URL is checked without being repeated
/// (it may hold a password).
fn check_brokers(destinations: &[Destination], brokers: &Brokers) -> Result<()> {
    for d in destinations {
        let (kind, url, key) = match d.target {
            Target::Http { .. } => continue,
            Target::Nats { .. } => ("NATS", &brokers.nats_url, "nats_url"),
            Target::Redis { .. } => ("Redis", &brokers.redis_url, "redis_url"),
        };
        if url.is_none() {
            bail!(
                "destination {:?} goes to {kind}: set {key} (or SMSHOOK_{})",
                d.name,
                key.to_uppercase()
            );
        }
    }
    if let Some(url) = &brokers.redis_url
        && ::redis::Client::open(url.as_str()).is_err()
    {
        bail!("redis_url: not a redis://, rediss:// or unix:// URL");
    }
    Ok(())
}

/// `url` (with a Standard Webhooks secret), `subject` (NATS) or
/// `redis_stream` (Redis Streams): exactly one.
fn target(d: &DestinationFile, env: &dyn Fn(&str) -> Option<String>) -> Result<Target> {
    if d.redis_stream.is_none() && d.redis_max_len.is_some() {
        bail!("redis_max_len: only for a Redis destination (redis_stream)");
    }
    if d.subject.is_none() && d.stream.is_some() {
        bail!(
            "stream: only for a NATS destination (subject); a Redis one names its stream in redis_stream"
        );
    }
    match (&d.url, &d.subject, &d.redis_stream) {
        (None, None, Some(stream)) => redis_target(stream, d.redis_max_len),
        (Some(url), None, None) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("url: {url:?} must be an http:// or https:// URL");
            }
            let single = d.secret.clone().map(|s| vec![s]);
            let secret = secret_values(
                "secret",
                single.as_deref(),
                d.secret_env.as_deref(),
                d.secret_file.as_deref(),
                env,
            )?;
            let keys = secret
                .iter()
                .map(|s| crate::dispatch::http::SigningKey::parse(s))
                .collect::<Result<Vec<_>>>()
                .context("secret")?;
            Ok(Target::http(url, keys))
        }
        (None, Some(subject), None) if !subject.trim().is_empty() => Ok(Target::Nats {
            subject: subject.clone(),
            stream: d.stream.clone(),
        }),
        _ => bail!(
            "exactly one of url (HTTP), subject (NATS JetStream) or redis_stream (Redis Streams) must be set"
        ),
    }
}

fn redis_target(stream: &str, max_len: Option<u64>) -> Result<Target> {
    if stream.trim().is_empty() {
        bail!("redis_stream: empty");
    }
    if crate::dispatch::redis::slot_tag(stream).is_none() {
        bail!("redis_stream: {stream:?} has a `}}` but no {{hash tag}}: give it one, or no braces");
    }
    if max_len == Some(0) {
        bail!("redis_max_len: 0 would keep no entries; leave it out to keep them all");
    }
    Ok(Target::Redis {
        stream: stream.to_string(),
        max_len,
    })
}

/// Without a config file: one source per provider whose secret variable is
/// set, limited to the addresses in `SMSHOOK_<PROVIDER>_ALLOWED_IPS` when
/// that is set (comma-separated, as `allowed_ips`).
fn env_sources(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Source>> {
    let mut sources = Vec::new();
    for p in providers::ALL {
        let Some(secrets) = env(&p.secret_env_var()).map(|v| split_list(&v, ',')) else {
            continue;
        };
        if secrets.is_empty() {
            continue;
        }
        let var = p.allowed_ips_env_var();
        let allowed = env(&var)
            .map(|v| allowed_ips(&split_list(&v, ',')).with_context(|| var.clone()))
            .transpose()?;
        let secrets = secrets.into_iter().map(Secret::new).collect();
        let url_var = p.public_url_env_var();
        let public_url =
            public_url(p, env(&url_var).as_deref()).with_context(|| url_var.clone())?;
        sources.push(Source {
            name: p.name.to_string(),
            provider: p,
            secrets: checked(p, secrets).with_context(|| p.secret_env_var())?,
            allowed,
            public_url,
            certificates: env_certificates(p, env)?,
        });
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(toml: Option<&str>, vars: &[(&str, &str)]) -> Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("smshook.toml");
        if let Some(t) = toml {
            std::fs::write(&path, t)?;
        }
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| vars.get(k).cloned();
        Config::load(&Overrides {
            config_file: toml.map(|_| path.clone()),
            listen: None,
            database: None,
            env: &env,
        })
    }

    #[test]
    fn defaults_without_anything() {
        let c = load(None, &[]).expect("defaults load");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database, "smshook.db");
        assert_eq!(c.ack_deadline, Duration::from_secs(4));
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.max_body_bytes_in_flight, 64 << 20);
        assert_eq!(c.max_connections, 1024);
        assert!(c.sources.is_empty() && c.api_token.is_none());
        assert_eq!(c.trusted_proxies, TrustedProxies::default());
        assert_eq!(c.idle_timeout, Duration::from_secs(130));
        assert_eq!(c.file_check_interval, Duration::from_secs(60));
        assert_eq!(c.retention, None, "events are kept forever by default");
    }

    #[test]
    fn no_sources_is_warned_about() {
        let no_sources = load(None, &[]).expect("loads").warnings();
        assert!(
            no_sources[0].contains("no sources configured"),
            "{no_sources:?}"
        );
        let one = "[[sources]]\nname='m'\nprovider='msgine'\nsecrets=['s']\n";
        let fine = load(Some(one), &[("SMSHOOK_ACK_DEADLINE", "9s")]).expect("loads");
        assert_eq!(
            fine.warnings(),
            Vec::<String>::new(),
            "a deadline past MsGine's 5 s is capped, not warned about"
        );
    }

    #[test]
    fn limits_come_from_the_environment_first() {
        let vars = [
            ("SMSHOOK_MAX_BODY_BYTES", "4096"),
            ("SMSHOOK_MAX_BODY_BYTES_IN_FLIGHT", " 1048576 "),
            ("SMSHOOK_MAX_CONNECTIONS", "64"),
        ];
        let file = "max_body_bytes_in_flight = 8192\nmax_connections = 10";
        let c = load(Some(file), &vars).expect("loads");
        assert_eq!(
            (
                c.max_body_bytes,
                c.max_body_bytes_in_flight,
                c.max_connections
            ),
            (4096, 1 << 20, 64)
        );
        let bad = [("SMSHOOK_MAX_BODY_BYTES_IN_FLIGHT", "lots")];
        let e = format!("{:#}", load(None, &bad).expect_err("refused"));
        assert!(e.contains("SMSHOOK_MAX_BODY_BYTES_IN_FLIGHT"), "{e}");
    }

    #[test]
    fn durations_come_from_the_environment_first_and_bad_ones_are_named() {
        let vars = [
            ("SMSHOOK_FILE_CHECK_INTERVAL", "5s"),
            ("SMSHOOK_ACK_DEADLINE", " 2s "),
        ];
        let c = load(Some("file_check_interval = '10m'"), &vars).expect("loads");
        assert_eq!(c.file_check_interval, Duration::from_secs(5));
        assert_eq!(c.ack_deadline, Duration::from_secs(2));
        let e = load(None, &[("SMSHOOK_IDLE_TIMEOUT", "soon")]).expect_err("refused");
        let e = format!("{e:#}");
        assert!(
            e.contains("SMSHOOK_IDLE_TIMEOUT") && e.contains("soon"),
            "{e}"
        );
        let e = load(Some("file_check_interval = '500ms'"), &[]).expect_err("refused");
        assert!(format!("{e:#}").contains("file_check_interval"), "{e:#}");
    }

    #[test]
    fn retention_is_forever_or_at_least_a_day() {
        let c = load(Some("retention = '30d'"), &[]).expect("loads");
        assert_eq!(c.retention, Some(Duration::from_secs(30 * 86_400)));
        let c = load(
            Some("retention = '30d'"),
            &[("SMSHOOK_RETENTION", "Forever")],
        );
        assert_eq!(c.expect("loads").retention, None, "the environment wins");
        let err = |toml: &str, vars: &[(&str, &str)]| {
            format!("{:#}", load(Some(toml), vars).expect_err("refused"))
        };
        let e = err("retention = '12h'", &[]);
        assert!(
            e.contains("retention") && e.contains("shorter than 1 day"),
            "{e}"
        );
        let e = err("retention = '1000y'", &[]);
        assert!(e.contains("retention") && e.contains("forever"), "{e}");
        let e = err("retention = 'a month'", &[]);
        assert!(e.contains("retention") && e.contains("forever"), "{e}");
        let e = err("", &[("SMSHOOK_RETENTION", "1h")]);
        assert!(e.contains("SMSHOOK_RETENTION"), "{e}");
    }

    #[test]
    fn allowed_ips_are_addresses_or_networks_and_never_empty() {
        let msgine = "[[sources]]\nname='mg'\nprovider='msgine'\nsecrets=['s']\n";
        let c = load(Some(msgine), &[]).expect("loads");
        assert_eq!(c.sources[0].allowed, None, "absent: any address");
        let listed = format!("{msgine}allowed_ips=['52.89.214.238', '10.0.0.0/8']");
        let c = load(Some(&listed), &[]).expect("loads");
        let expected = Networks::parse(&["52.89.214.238", "10.0.0.0/8"]).expect("valid");
        assert_eq!(c.sources[0].allowed, Some(expected));

        let e = format!(
            "{:#}",
            load(Some(&format!("{msgine}allowed_ips=[]")), &[]).expect_err("empty")
        );
        assert!(e.contains("sources[0]: allowed_ips: an empty list"), "{e}");
        let bad = format!("{msgine}allowed_ips=['msgine.example']");
        let e = format!("{:#}", load(Some(&bad), &[]).expect_err("a name"));
        assert!(
            e.contains("sources[0]: allowed_ips") && e.contains("msgine.example"),
            "{e}"
        );
    }

    #[test]
    fn allowed_ips_on_loopback_without_a_trusted_proxy_warn() {
        let limited = "[[sources]]\nname='mg'\nprovider='msgine'\nsecrets=['s']\nallowed_ips=['52.89.214.238']\n";
        let warnings = load(Some(limited), &[]).expect("loads").warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("source mg") && warnings[0].contains("trusted_proxies"));

        let proxied = format!("trusted_proxies=['127.0.0.1']\n{limited}");
        assert_eq!(
            load(Some(&proxied), &[]).expect("loads").warnings(),
            Vec::<String>::new()
        );
        let public = format!("listen='0.0.0.0:8080'\n{limited}");
        assert_eq!(
            load(Some(&public), &[]).expect("loads").warnings(),
            Vec::<String>::new()
        );
        let textus = limited.replace("msgine", "textus");
        let warnings = load(Some(&format!("listen='0.0.0.0:8080'\n{textus}")), &[])
            .expect("loads")
            .warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("textus says its webhooks' addresses change"));
        let local_allowed = limited.replace("['52.89.214.238']", "['52.89.214.238', '127.0.0.1']");
        assert_eq!(
            load(Some(&local_allowed), &[]).expect("loads").warnings(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn trusted_proxies_from_file_or_environment() {
        let c = load(Some("trusted_proxies = ['127.0.0.1', '10.0.0.0/8']"), &[]).expect("loads");
        let expected = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).expect("valid");
        assert_eq!(c.trusted_proxies, expected);
        let c = load(
            Some("trusted_proxies = ['192.168.0.1']"),
            &[("SMSHOOK_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")],
        )
        .expect("loads");
        assert_eq!(
            c.trusted_proxies, expected,
            "the environment overrides the file"
        );
        let e = format!(
            "{:#}",
            load(Some("trusted_proxies = ['lb.internal']"), &[]).expect_err("bad")
        );
        assert!(
            e.contains("trusted_proxies") && e.contains("lb.internal"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            load(None, &[("SMSHOOK_TRUSTED_PROXIES", "10.0.0.0/99")]).expect_err("bad")
        );
        assert!(e.contains("SMSHOOK_TRUSTED_PROXIES"), "{e}");
    }

    /// Twilio (and Bird) sign the URL they post to, which smshook cannot see
    /// behind a proxy: its source names it, from the file or the environment.
    #[test]
    fn a_twilio_source_names_its_public_url() {
        let err = |toml: &str, vars: &[(&str, &str)]| {
            format!("{:#}", load(Some(toml), vars).expect_err("must fail"))
        };
        let twilio = "[[sources]]\nname='tw'\nprovider='twilio'\nsecrets=['token']\n";
        let e = err(twilio, &[]);
        assert!(
            e.contains("sources[0]: public_url: twilio signs the URL"),
            "{e}"
        );
        let url = "https://hooks.example.com/webhooks/tw";
        let c = load(Some(&format!("{twilio}public_url='{url}'")), &[]).expect("loads");
        assert_eq!(
            c.sources[0].public_url.as_ref().map(|u| u.text.as_str()),
            Some(url)
        );
        let e = err(&format!("{twilio}public_url='{url}?a=1'"), &[]);
        assert!(
            e.contains("public_url") && e.contains("leave the query out"),
            "{e}"
        );
        let bird = "[[sources]]\nname='b'\nprovider='bird'\nsecrets=['key']\n";
        assert!(err(bird, &[]).contains("bird signs the URL"));
        let c = load(Some(&format!("{bird}public_url='{url}'")), &[]).expect("loads");
        assert!(c.sources[0].public_url.is_some());
        let msgine = "[[sources]]\nname='mg'\nprovider='msgine'\nsecrets=['s']\n";
        let e = err(&format!("{msgine}public_url='{url}'"), &[]);
        assert!(e.contains("msgine does not sign its URL"), "{e}");
        let e = format!(
            "{:#}",
            load(None, &[("SMSHOOK_TWILIO_SECRET", "token")]).expect_err("no URL")
        );
        assert!(e.contains("SMSHOOK_TWILIO_PUBLIC_URL"), "{e}");
        let vars = [
            ("SMSHOOK_TWILIO_SECRET", "token"),
            ("SMSHOOK_TWILIO_PUBLIC_URL", url),
        ];
        let c = load(None, &vars).expect("loads");
        assert_eq!(c.sources[0].name, "twilio");
        assert!(c.sources[0].public_url.is_some());
    }

    #[test]
    fn env_secrets_enable_sources() {
        let c = load(
            None,
            &[
                ("SMSHOOK_PRIVATE_NUMBER_SECRET", "a, b"),
                ("SMSHOOK_TEXTUS_SECRET", "t"),
            ],
        )
        .expect("loads");
        let names: Vec<_> = c.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["textus", "private-number"]);
        assert_eq!(c.sources[1].secrets.len(), 2);
        assert_eq!(c.sources[1].allowed, None, "any address");

        let limited = load(
            None,
            &[
                ("SMSHOOK_MSGINE_SECRET", "m"),
                ("SMSHOOK_MSGINE_ALLOWED_IPS", "52.89.214.238, 10.0.0.0/8"),
            ],
        )
        .expect("loads");
        let expected = Networks::parse(&["52.89.214.238", "10.0.0.0/8"]).expect("valid");
        assert_eq!(limited.sources[0].allowed, Some(expected));
        for bad in ["", "msgine.example"] {
            let vars = [
                ("SMSHOOK_MSGINE_SECRET", "m"),
                ("SMSHOOK_MSGINE_ALLOWED_IPS", bad),
            ];
            let e = format!("{:#}", load(None, &vars).expect_err("refused"));
            assert!(e.contains("SMSHOOK_MSGINE_ALLOWED_IPS"), "{e}");
        }
    }

    #[test]
    fn file_env_and_flag_layers() {
        let toml = r#"
            listen = "0.0.0.0:9000"
            ack_deadline = "2500ms"
            [[sources]]
            name = "ig"
            provider = "integify"
            secret_env = "IG_SECRET"
        "#;
        let c = load(
            Some(toml),
            &[("IG_SECRET", "x,y"), ("SMSHOOK_DATABASE", "/tmp/x.db")],
        )
        .expect("loads");
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.ack_deadline, Duration::from_millis(2500));
        assert_eq!(c.database, "/tmp/x.db");
        assert_eq!(
            c.request_log_max_rows, 100_000,
            "nested defaults survive a partial file"
        );
        assert_eq!(c.sources[0].secrets.len(), 2);
    }

    #[test]
    fn errors_name_the_key() {
        let err = |toml: &str| format!("{:#}", load(Some(toml), &[]).expect_err("must fail"));
        let e = err("[[sources]]\nname='a'\nprovider='clicksend'\nsecrets=['s']");
        assert!(
            e.contains("sources[0]") && e.contains("provider") && e.contains("clicksend"),
            "{e}"
        );
        let e = err("lisen = 'x'");
        assert!(e.contains("lisen"), "{e}");
        let e = err("ack_deadline = 'soon'");
        assert!(e.contains("ack_deadline"), "{e}");
        let e = err("idle_timeout = '0s'");
        assert!(e.contains("idle_timeout"), "{e}");
        let e = err("[[sources]]\nname='a b'\nprovider='msgine'\nsecrets=['s']");
        assert!(e.contains("name"), "{e}");
        let e = err("[[sources]]\nname='a'\nprovider='msgine'\nsecret_env='NOPE'");
        assert!(e.contains("NOPE"), "{e}");
        let e = err(
            "[[sources]]\nname='a'\nprovider='msgine'\nsecrets=['s']\n[[sources]]\nname='a'\nprovider='msgine'\nsecrets=['s']",
        );
        assert!(e.contains("sources[1].name"), "{e}");
        let e = err("tls_cert = 'fullchain.pem'");
        assert!(e.contains("tls_key"), "{e}");
        let e = err("tls_key = 'privkey.pem'");
        assert!(e.contains("tls_cert"), "{e}");
        let e = err(
            "[[sources]]\nname='a'\nprovider='msgine'\nsecrets=['s']\n[[destinations]]\nname='app'\nurl='http://x/h'",
        );
        assert!(
            e.contains("destinations[0]") && e.contains("exactly one of secret, secret_env"),
            "{e}"
        );
        let e = err("max_connections = 0");
        assert!(e.contains("max_connections: must be at least 1"), "{e}");
        let e = err("max_body_bytes = 2048\nmax_body_bytes_in_flight = 1024");
        assert!(
            e.contains("max_body_bytes_in_flight: must be at least max_body_bytes (2048)"),
            "{e}"
        );
        for memory in ["database = ':memory:'", "database = 'sqlite://:memory:'"] {
            let e = err(memory);
            assert!(e.contains("database") && e.contains("in-memory"), "{e}");
        }
    }

    /// An Amazon SNS source takes topic ARNs as its secrets, and AWS's
    /// certificates fetched, or pinned ones; nothing else takes
    /// `signing_certificates`.
    #[test]
    fn sns_sources_take_topics_and_pinned_certificates() {
        let dir = tempfile::tempdir().expect("dir");
        let pem = dir.path().join("sns.pem");
        let private = crate::signature::sns::new_private_key().expect("key");
        let public = crate::signature::sns::public_key_pem(&private).expect("public");
        std::fs::write(&pem, public).expect("write");
        let topic = "arn:aws:sns:us-east-1:123456789012:sms";
        let source = |rest: &str| format!("[[sources]]\nname='a'\nprovider='aws-sns'\n{rest}");
        let c = load(Some(&source(&format!("secrets=['{topic}']"))), &[]).expect("fetching");
        let fetched = c.sources[0].certificates.as_ref().expect("certificates");
        assert!(!fetched.is_pinned());
        let pinned = format!(
            "secrets=['{topic}']\nsigning_certificates=['{}']",
            pem.display()
        );
        let c = load(Some(&source(&pinned)), &[]).expect("pinned");
        let certificates = c.sources[0].certificates.as_ref().expect("certificates");
        assert!(certificates.is_pinned());
        let err = |toml: &str| format!("{:#}", load(Some(toml), &[]).expect_err("must fail"));
        let e = err(&source("secrets=['a-webhook-secret']"));
        assert!(e.contains("secrets") && e.contains("topic"), "{e}");
        let e = err(&source(&format!(
            "secrets=['{topic}']\nsigning_certificates=[]"
        )));
        assert!(
            e.contains("signing_certificates") && e.contains("empty"),
            "{e}"
        );
        let missing = format!("secrets=['{topic}']\nsigning_certificates=['/nope.pem']");
        let e = err(&source(&missing));
        assert!(
            e.contains("signing_certificates") && e.contains("/nope.pem"),
            "{e}"
        );
        std::fs::write(&pem, "not a certificate").expect("write");
        let e = err(&source(&pinned));
        assert!(
            e.contains("signing_certificates") && e.contains("CERTIFICATE"),
            "{e}"
        );
        let e = err(&format!(
            "[[sources]]\nname='a'\nprovider='msgine'\nsecrets=['s']\nsigning_certificates=['{}']",
            pem.display()
        ));
        assert!(e.contains("msgine does not sign with certificates"), "{e}");
        let vars = [("SMSHOOK_AWS_SNS_TOPIC_ARN", topic)];
        let c = load(None, &vars).expect("from the environment");
        assert_eq!(c.sources[0].name, "aws-sns");
        assert_eq!(c.sources[0].secrets[0].expose(), topic);
        let fetching = c.sources[0].certificates.as_ref().expect("certificates");
        assert!(!fetching.is_pinned());
        let public = crate::signature::sns::public_key_pem(&private).expect("public");
        std::fs::write(&pem, public).expect("write");
        let pem_text = pem.display().to_string();
        let vars = [
            ("SMSHOOK_AWS_SNS_TOPIC_ARN", topic),
            ("SMSHOOK_AWS_SNS_SIGNING_CERTIFICATES", pem_text.as_str()),
        ];
        let c = load(None, &vars).expect("pinned from the environment");
        let pinned = c.sources[0].certificates.as_ref().expect("certificates");
        assert!(pinned.is_pinned());
        let vars = [
            ("SMSHOOK_AWS_SNS_TOPIC_ARN", topic),
            ("SMSHOOK_AWS_SNS_SIGNING_CERTIFICATES", "/nope.pem"),
        ];
        let e = format!("{:#}", load(None, &vars).expect_err("no such file"));
        assert!(
            e.contains("SMSHOOK_AWS_SNS_SIGNING_CERTIFICATES") && e.contains("/nope.pem"),
            "{e}"
        );
    }

    /// Queue destinations: exactly one kind each, their server's URL
    /// required at start-up, and a Redis URL's password never repeated.
    #[test]
    fn queue_destinations_need_their_server() {
        let source = "[[sources]]\nname='a'\nprovider='msgine'\nsecrets=['s']\n";
        let with = |table: &str, rest: &str| {
            format!("{rest}\n{source}[[destinations]]\nname='q'\n{table}")
        };
        let err = |toml: &str| format!("{:#}", load(Some(toml), &[]).expect_err("must fail"));
        let redis = "redis_stream='sms:events'\nredis_max_len=1000";
        let e = err(&with(redis, ""));
        assert!(e.contains("set redis_url (or SMSHOOK_REDIS_URL)"), "{e}");
        let e = err(&with("subject='sms.{type}'", ""));
        assert!(e.contains("set nats_url (or SMSHOOK_NATS_URL)"), "{e}");
        let c = load(
            Some(&with(redis, "redis_url='redis://127.0.0.1:6379'")),
            &[],
        )
        .expect("loads");
        let expected = Target::Redis {
            stream: "sms:events".into(),
            max_len: Some(1000),
        };
        assert!(c.destinations[0].target.same_place(&expected));
        let vars = [("SMSHOOK_REDIS_URL", "rediss://:hunter2@cache:6380/0")];
        let c = load(Some(&with(redis, "")), &vars).expect("the variable serves");
        assert_eq!(c.brokers.redis_url.as_deref(), Some(vars[0].1));
        let e = err(&with(redis, "redis_url='http://:hunter2@cache'"));
        assert!(
            e.contains("redis_url: not a redis://") && !e.contains("hunter2"),
            "{e}"
        );
        for (table, expected) in [
            ("redis_stream='s'\nurl='http://x/h'", "exactly one of url"),
            (
                "redis_stream='s'\nstream='S'",
                "stream: only for a NATS destination",
            ),
            (
                "subject='a'\nredis_max_len=5",
                "redis_max_len: only for a Redis",
            ),
            ("redis_stream='s'\nredis_max_len=0", "redis_max_len: 0"),
            ("redis_stream='a{}b'", "no {hash tag}"),
        ] {
            let e = err(&with(table, "redis_url='redis://r'\nnats_url='nats://n'"));
            assert!(
                e.contains("destinations[0]") && e.contains(expected),
                "{table}: {e}"
            );
        }
    }

    #[test]
    fn secret_file_one_per_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("s");
        std::fs::write(&f, "one\n\ntwo\n").expect("write");
        let toml = format!(
            "[[sources]]\nname='n'\nprovider='notifly'\nsecret_file={:?}",
            f.display().to_string()
        );
        let c = load(Some(&toml), &[]).expect("loads");
        assert_eq!(
            c.sources[0].secrets,
            vec![Secret::new("one"), Secret::new("two")]
        );
    }

    /// Files holding secrets: the config file only when a secret is written
    /// in it, and each `secret_file`; start-up warns of those others can read.
    #[cfg(unix)]
    #[test]
    fn files_holding_secrets_are_known_and_checked_for_others_access() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("smshook.toml");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s").expect("write");
        let overrides = |path: &Path| Overrides {
            config_file: Some(path.to_path_buf()),
            listen: None,
            database: None,
            env: &|k| (k == "V").then(|| "from-env".into()),
        };
        let by_env = "[[sources]]\nname='a'\nprovider='msgine'\nsecret_env='V'";
        std::fs::write(&config, by_env).expect("write");
        let c = Config::load(&overrides(&config)).expect("loads");
        assert!(c.secret_files.is_empty(), "{:?}", c.secret_files);

        let written = format!(
            "{by_env}\n[[sources]]\nname='b'\nprovider='msgine'\nsecrets=['s']\n\
             [[sources]]\nname='c'\nprovider='msgine'\nsecret_file={:?}",
            secret.display().to_string()
        );
        std::fs::write(&config, written).expect("write");
        let c = Config::load(&overrides(&config)).expect("loads");
        assert_eq!(c.secret_files, vec![config.clone(), secret.clone()]);

        let chmod = |f: &Path, mode| {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        chmod(&config, 0o600);
        chmod(&secret, 0o644);
        assert_eq!(
            open_to_others(&c.secret_files),
            vec![(secret.as_path(), 0o644)]
        );
        chmod(&secret, 0o640);
        assert_eq!(
            open_to_others(&c.secret_files),
            vec![(secret.as_path(), 0o640)]
        );
        chmod(&secret, 0o400);
        assert!(open_to_others(&c.secret_files).is_empty());
    }
}
