//! `smshook bench`: a load generator. Keeps `--concurrency` keep-alive
//! connections busy with distinct, correctly signed sample events until
//! `--requests` are sent or `--duration` passes, then prints accepted
//! events/s and latency percentiles. Works against any receiver that takes
//! the provider's webhooks, so competitors are measured the same way.
//!
//! Without `--rate` it floods (a closed loop: each connection sends its next
//! request as soon as the last is answered), which measures capacity; its
//! latency then only restates the concurrency (Little's law). With `--rate`
//! requests leave on a fixed schedule, as a provider's do, whatever the
//! server's answers, and a request's latency counts from the moment the
//! schedule meant it to leave: a request held back because every connection
//! was still waiting counts that wait too (no coordinated omission, as in
//! wrk2).
//!
//! `https://` URLs are measured over TLS (rustls, as the server uses): each
//! connection's handshake happens before the clock starts, like its connect,
//! so the figures are the cost of encrypted requests on open connections.
//! `--ca` trusts a self-signed server's certificate; without it the
//! system's roots apply.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::providers::{self, Provider};
use crate::signature::{Secret, sign_hex};
use crate::tls_client::{Verify, client_config};

mod template;
use template::Template;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Webhook URL (http:// or https://host:port/path). Repeat it to spread
    /// the connections over several replicas.
    #[arg(long, required = true)]
    url: Vec<String>,
    /// PEM certificate(s) to trust for https:// URLs, such as a self-signed
    /// server's own; without it, the system's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<String>,
    #[arg(long, default_value = "integify")]
    provider: String,
    #[arg(long, default_value = "sms.delivered")]
    event_type: String,
    #[arg(long, env = "SMSHOOK_SEND_SECRET", hide_env_values = true)]
    secret: String,
    /// Stop after this many requests…
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// …or after this long, whichever comes first.
    #[arg(long, default_value = "60s")]
    duration: humantime::Duration,
    /// Connections kept busy at once (with --rate: the most open at once;
    /// give at least rate x expected latency).
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Send this many requests per second on a fixed schedule instead of
    /// flooding; latency then counts from each request's scheduled time.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Print the result as one JSON object (for scripts).
    #[arg(long)]
    json: bool,
}

/// What one connection saw; merged at the end.
struct Tally {
    latency: Histogram<u64>,
    accepted: u64,
    refused: u64,
    errors: u64,
}

impl Tally {
    fn new() -> Result<Self> {
        let latency = Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")?;
        Ok(Self {
            latency,
            accepted: 0,
            refused: 0,
            errors: 0,
        })
    }

    fn merge(&mut self, other: &Tally) {
        let _ = self.latency.add(&other.latency);
        self.accepted += other.accepted;
        self.refused += other.refused;
        self.errors += other.errors;
    }
}

/// One URL, split for a raw HTTP/1 connection.
struct Target {
    addr: String,
    host: String,
    path: String,
    /// For https: the name the server's certificate must carry.
    tls: Option<ServerName<'static>>,
}

/// Everything a connection task needs, shared.
struct Plan {
    provider: &'static Provider,
    /// Each request's body: the sample with fresh ids.
    template: Template,
    secret: Secret,
    /// A Basic provider's `Authorization`, the same on every request.
    credentials: Option<String>,
    /// Where connection `i` sends: `targets[i % len]`.
    targets: Vec<Target>,
    /// The TLS client, when a target is https.
    tls: Option<TlsConnector>,
    requests: u64,
    deadline: Instant,
    /// `Some`: the open loop's schedule (request `k` leaves at
    /// `started + k / rate`).
    schedule: Option<Schedule>,
    /// Requests claimed so far; a task claims before sending.
    claimed: AtomicU64,
    /// Requests answered so far (for the progress bar).
    done: AtomicU64,
    /// The number in request 0's body (`Template::fill`).
    first_number: u64,
}

impl Plan {
    fn new(
        args: &BenchArgs,
        provider: &'static Provider,
        template: Template,
        targets: Vec<Target>,
        tls: Option<TlsConnector>,
        started: Instant,
    ) -> Self {
        Self {
            provider,
            template,
            secret: Secret::new(args.secret.clone()),
            credentials: matches!(
                provider.scheme,
                providers::Scheme::Basic | providers::Scheme::BasicOrNonceHmac
            )
            .then(|| crate::signature::basic::header_value(&args.secret)),
            targets,
            tls,
            requests: args.requests,
            deadline: started + *args.duration,
            schedule: args.rate.map(|per_sec| Schedule { started, per_sec }),
            claimed: AtomicU64::new(0),
            done: AtomicU64::new(0),
            first_number: rand::random(),
        }
    }
}

pub async fn bench(args: &BenchArgs) -> Result<ExitCode> {
    let provider = providers::find(&args.provider)
        .with_context(|| format!("unknown provider {:?}", args.provider))?;
    if !matches!(
        provider.scheme,
        providers::Scheme::Hmac
            | providers::Scheme::Basic
            | providers::Scheme::BasicOrNonceHmac
            | providers::Scheme::DecodedKeyHmac
    ) {
        // Each request would need its own Ed25519 signature or JWT, made
        // at send time: the load generator would measure itself.
        let why = if provider.signs_url() {
            "signs the URL it posts to with each body (a form's parameters, a JSON body's hash), and its samples' SIDs are no ids bench can vary"
        } else if provider.scheme == providers::Scheme::SnsCertificate {
            "signs each message with an RSA key of AWS's, inside the body"
        } else if provider.signs_in_body() {
            "signs each request's parameters, with the time, inside the body"
        } else {
            "signs each request anew with the time, which would measure the load generator itself"
        };
        anyhow::bail!(
            "bench floods providers that sign the body with HMAC or send Basic credentials; {} {why}",
            provider.name
        );
    }
    if provider.scheme == providers::Scheme::DecodedKeyHmac
        && !crate::signature::telesign::is_api_key(&args.secret)
    {
        anyhow::bail!("--secret: {}", crate::signature::telesign::not_a_key());
    }
    let template = Template::new(provider, &args.event_type)?;
    // One file descriptor per connection, as for the server.
    super::raise_open_file_limit();
    let targets = args
        .url
        .iter()
        .map(|u| split_url(u))
        .collect::<Result<Vec<_>>>()?;
    let tls = tls_connector(&targets, args.ca.as_deref())?;
    // Every connection is open before the clock starts: connecting hundreds
    // at once takes a while, and it is not what a request costs.
    let senders = connect_all(&targets, tls.as_ref(), args.concurrency.max(1)).await;
    let started = Instant::now();
    let cpu_before = process_cpu();
    let plan = Arc::new(Plan::new(args, provider, template, targets, tls, started));
    let progress = spawn_progress(plan.clone(), args.json);
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, sender)| tokio::spawn(connection(plan.clone(), i, sender)))
        .collect();
    let mut total = Tally::new()?;
    for task in tasks {
        total.merge(&task.await.context("bench connection task")??);
    }
    let elapsed = started.elapsed();
    progress.abort();
    let client = client_busy(cpu_before, elapsed);
    report(&total, elapsed, client, args)
}

/// Past this share of its cores busy, the load generator may be what
/// limits the rate, not the server.
const CLIENT_SATURATED: f64 = 0.9;

/// This process's CPU time so far (Linux).
fn process_cpu() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// The share of the cores this process may run on that it kept busy since
/// `before`, over `elapsed`: near 1, the load generator was the bottleneck.
fn client_busy(before: Option<Duration>, elapsed: Duration) -> Option<f64> {
    let used = process_cpu()?.checked_sub(before?)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some(used.as_secs_f64() / (elapsed.as_secs_f64() * cores as f64).max(1e-9))
}

/// `http://host:port/path` → address `host:port`, Host header, `/path`;
/// for `https://`, also the name to check the certificate against.
fn split_url(url: &str) -> Result<Target> {
    let (rest, default_port, https) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, "80", false)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, "443", true)
    } else {
        bail!("--url: only http:// and https:// URLs can be benchmarked (got {url:?})");
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (name, port) = split_authority(authority);
    let addr = format!("{name}:{}", port.unwrap_or(default_port));
    let tls = match https {
        false => None,
        true => Some(
            ServerName::try_from(name.trim_matches(['[', ']']).to_string())
                .with_context(|| format!("--url: {name:?} is not a host name or address"))?,
        ),
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    Ok(Target {
        addr,
        host: authority.to_string(),
        path,
        tls,
    })
}

/// `host:port` → host and port; `[::1]:8443` keeps its brackets.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    }
}

/// The TLS client for https targets (none without one).
fn tls_connector(targets: &[Target], ca: Option<&str>) -> Result<Option<TlsConnector>> {
    if targets.iter().all(|t| t.tls.is_none()) {
        return Ok(None);
    }
    let roots = ca.map(|path| (path.to_string(), "--ca"));
    let config = client_config(Verify::Roots(roots))?;
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

fn spawn_progress(plan: Arc<Plan>, quiet: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return;
        }
        let bar = indicatif::ProgressBar::new(plan.requests);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        loop {
            bar.set_position(plan.done.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The open loop's timetable.
struct Schedule {
    started: Instant,
    per_sec: f64,
}

impl Schedule {
    fn due(&self, k: u64) -> Instant {
        self.started + Duration::from_secs_f64(k as f64 / self.per_sec)
    }

    /// Waits for request `k`'s turn and returns the instant its latency
    /// counts from: its scheduled time if it is already late (it waited for
    /// a connection, and that wait is part of what a provider would see),
    /// else the moment it leaves (the timer wakes up to a millisecond late,
    /// which is the generator's delay, not the server's).
    async fn wait_turn(&self, k: u64) -> Instant {
        let due = self.due(k);
        if Instant::now() >= due {
            return due;
        }
        tokio::time::sleep_until(due.into()).await;
        Instant::now()
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of requests per second"
        )),
    }
}

/// One keep-alive connection sending requests back to back (or on the
/// schedule); reconnects after an error.
async fn connection(plan: Arc<Plan>, index: usize, mut sender: Option<Sender>) -> Result<Tally> {
    let target = &plan.targets[index % plan.targets.len()];
    let mut tally = Tally::new()?;
    while let Some(k) = claim(&plan) {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = connect(target, plan.tls.as_ref()).await.ok();
        }
        let Some(s) = sender.as_mut() else {
            tally.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let request = build_request(&plan, target, k)?;
        let started = match &plan.schedule {
            Some(schedule) => schedule.wait_turn(k).await,
            None => Instant::now(),
        };
        match send(s, request).await {
            Ok(status) if (200..300).contains(&status) => tally.accepted += 1,
            Ok(_) => tally.refused += 1,
            Err(_) => {
                tally.errors += 1;
                sender = None;
            }
        }
        let _ = tally
            .latency
            .record(started.elapsed().as_micros().max(1) as u64);
        plan.done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(tally)
}

/// The next request's number, while any are left to send.
fn claim(plan: &Plan) -> Option<u64> {
    if Instant::now() >= plan.deadline {
        return None;
    }
    let k = plan.claimed.fetch_add(1, Ordering::Relaxed);
    let in_time = plan
        .schedule
        .as_ref()
        .is_none_or(|s| s.due(k) < plan.deadline);
    (k < plan.requests && in_time).then_some(k)
}

type Sender = SendRequest<Full<Bytes>>;

/// Opens connection `i` to `targets[i % len]`, all at once; one that fails
/// is `None`, and its task tries again (counting an error).
async fn connect_all(
    targets: &[Target],
    tls: Option<&TlsConnector>,
    n: usize,
) -> Vec<Option<Sender>> {
    let opening: Vec<_> = (0..n)
        .map(|i| tokio::spawn(connect(&targets[i % targets.len()], tls)))
        .collect();
    let mut senders = Vec::with_capacity(n);
    for task in opening {
        senders.push(task.await.ok().and_then(Result::ok));
    }
    senders
}

/// Opens a connection to `target` (with its TLS handshake, for https).
fn connect(
    target: &Target,
    tls: Option<&TlsConnector>,
) -> impl Future<Output = Result<Sender>> + Send + 'static {
    let addr = target.addr.clone();
    let tls = tls.cloned().zip(target.tls.clone());
    async move {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        match tls {
            None => handshake(stream).await,
            Some((connector, name)) => {
                let stream = connector.connect(name, stream).await?;
                handshake(stream).await
            }
        }
    }
}

async fn handshake<T>(io: T) -> Result<Sender>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Request `k`: a distinct event, its number `k` past a random start so
/// that runs against one database rarely meet.
fn build_request(plan: &Plan, target: &Target, k: u64) -> Result<Request<Full<Bytes>>> {
    let body = plan.template.fill(plan.first_number.wrapping_add(k));
    // Basic credentials are the same on every request (made once, in `Plan`).
    let signature = match (&plan.credentials, plan.provider.scheme) {
        (Some(credentials), _) => credentials.clone(),
        (None, providers::Scheme::DecodedKeyHmac) => {
            crate::signature::telesign::sign(plan.secret.expose(), &body)
                .map_err(anyhow::Error::msg)?
        }
        (None, _) => sign_hex(&plan.secret, &body, plan.provider.signature_prefix),
    };
    Ok(Request::post(&target.path)
        .header(hyper::header::HOST, &target.host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(plan.provider.signature_header, signature)
        .body(Full::new(Bytes::from(body)))?)
}

async fn send(sender: &mut SendRequest<Full<Bytes>>, request: Request<Full<Bytes>>) -> Result<u16> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

fn report(t: &Tally, elapsed: Duration, client: Option<f64>, args: &BenchArgs) -> Result<ExitCode> {
    let secs = elapsed.as_secs_f64();
    let rate = t.accepted as f64 / secs;
    let ms = |q: f64| t.latency.value_at_quantile(q) as f64 / 1000.0;
    if args.json {
        let out = serde_json::json!({
            "url": args.url, "concurrency": args.concurrency, "rate": args.rate, "seconds": secs,
            "accepted": t.accepted, "refused": t.refused, "errors": t.errors,
            "accepted_per_sec": rate, "p50_ms": ms(0.50), "p99_ms": ms(0.99), "max_ms": ms(1.0),
            "client_cpu_share": client,
        });
        println!("{out}");
    } else {
        let paced = args
            .rate
            .map(|r| format!(", scheduled at {r:.0}/s"))
            .unwrap_or_default();
        println!(
            "{} requests in {secs:.2} s over {} connections{paced}",
            t.accepted + t.refused + t.errors,
            args.concurrency
        );
        println!(
            "accepted {}  refused {}  errors {}",
            t.accepted, t.refused, t.errors
        );
        println!("throughput  {rate:.0} accepted events/s");
        println!(
            "latency     p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            ms(0.50),
            ms(0.99),
            ms(1.0)
        );
        if let Some(share) = client {
            println!("load gen.   {:.0}% of its CPU busy", share * 100.0);
        }
    }
    let saturated = client.filter(|share| *share >= CLIENT_SATURATED && args.rate.is_none());
    if let Some(share) = saturated {
        eprintln!(
            "note: the load generator kept its CPU {:.0}% busy: the server may answer faster than this measured (give the load generator more cores, or run it elsewhere)",
            share * 100.0
        );
    }
    Ok(if t.accepted > 0 && t.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::split_url;
    use rustls::pki_types::ServerName;

    #[test]
    fn urls_split_into_address_and_path() {
        let t = split_url("http://127.0.0.1:8080/webhooks/ig").expect("valid");
        assert_eq!(
            (t.addr.as_str(), t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "127.0.0.1:8080", "/webhooks/ig")
        );
        assert_eq!(
            split_url("http://localhost").expect("valid").addr,
            "localhost:80"
        );
        let t = split_url("https://localhost:8443/webhooks/ig").expect("valid");
        assert_eq!(t.addr, "localhost:8443");
        assert_eq!(
            t.tls,
            Some(ServerName::try_from("localhost").expect("name"))
        );
        let t = split_url("https://[::1]/w").expect("valid");
        assert_eq!((t.addr.as_str(), t.host.as_str()), ("[::1]:443", "[::1]"));
        assert!(t.tls.is_some());
        assert!(
            split_url("http://[::1]:8080/w")
                .expect("valid")
                .tls
                .is_none()
        );
        assert!(split_url("ftp://x").is_err());
    }
}
