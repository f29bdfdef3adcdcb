//! The command line: raw arguments become one validated configuration, then
//! one command runs. Errors are printed with their cause chain.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};

mod backup;
mod bench;
mod check;
mod providers;
mod query;
mod send;
mod serve;
mod stats;
mod when;

#[derive(Debug, Parser)]
#[command(
    name = "smshook",
    version,
    about = "Receive, verify, normalize and durably store SMS providers' webhooks"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the webhook server.
    Serve(ConfigArgs),
    /// Print a commented default configuration file.
    Config,
    /// Load the configuration as `serve` would (secrets and TLS files
    /// included) and print what would run; exit 1 with the reason if it
    /// does not load.
    Check(ConfigArgs),
    /// Write a consistent copy of the SQLite database to a new file, while
    /// the server runs.
    Backup(backup::BackupArgs),
    /// Apply pending schema migrations to the database, then exit
    /// (`serve` also applies them at start-up).
    Migrate(ConfigArgs),
    /// List stored events, the newest page by default (reads the database directly).
    Events(query::EventsArgs),
    /// List the request log, the newest page by default: every webhook request and how it was answered.
    Requests(query::RequestsArgs),
    /// A message's current status and the timeline of events about it.
    Message(query::MessageArgs),
    /// Numbers currently opted out (STOP and the like).
    Optouts(query::OptoutsArgs),
    /// Deliveries to destinations and their state; `--retry-dead` retries dead ones.
    Deliveries(query::DeliveriesArgs),
    /// What arrived in a time range (the last day by default), counted: events by source and type, requests by answer, and each source's share of messages delivered.
    Stats(stats::StatsArgs),
    /// Send stored events to a destination again (one, several, or all since a time).
    Replay(query::ReplayArgs),
    /// Send a realistic, correctly signed sample webhook to a URL.
    Send(send::SendArgs),
    /// Print the signature header(s) a provider would send for the body on stdin.
    Sign(send::SignArgs),
    /// Print a fresh key pair for trying a source with `send`: Ed25519 for
    /// telnyx (the default), RSA for aws-sns.
    Keypair(send::KeypairArgs),
    /// List the providers: what each signs, what its source takes as a
    /// secret (and from which variable without a config file), and the
    /// samples `send` makes.
    Providers(providers::ProvidersArgs),
    /// Flood a server with distinct signed events and print throughput and latency.
    Bench(bench::BenchArgs),
    /// Print a completion script for a shell, e.g. `smshook completions bash
    /// > ~/.local/share/bash-completion/completions/smshook`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Where the configuration comes from; shared by the commands that need it.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "SMSHOOK_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (overrides the file).
    #[arg(long)]
    listen: Option<String>,
    /// Database: a SQLite path, sqlite://path, or postgres://… (overrides the file).
    #[arg(long)]
    database: Option<String>,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<Config> {
        let env = |k: &str| std::env::var(k).ok();
        Config::load(&Overrides {
            config_file: self.config.clone(),
            listen: self.listen.clone(),
            database: self.database.clone(),
            env: &env,
        })
    }
}

/// `smshook events | head`: once the reader goes, printing fails, and
/// `println!` (or clap's completion writer) panics with a backtrace. A command whose output nobody reads
/// any more has nothing left to do: it exits 0, as `cat` would (Rust
/// ignores SIGPIPE, which would end it quietly). Any other panic is
/// reported as before. Not for `serve`, whose output is its logs.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("Broken pipe") || message.contains("BrokenPipe") {
            std::process::exit(0);
        }
        report(info);
    }));
}

/// Parses the arguments, runs the command, and turns an error into exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    no_transparent_huge_pages();
    if !matches!(cli.command, Command::Serve(_)) {
        quiet_on_closed_stdout();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMSHOOK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Turns transparent huge pages off for this process (the server and the
/// load generator alike). mimalloc asks for them, so the first touch of each
/// 2 MiB of heap had the kernel zero 2 MiB while requests waited: a load
/// generator opening 512 connections spent its first 260 ms doing nothing
/// else, and a fresh server's resident memory was 44-48 MB instead of 29 MB.
/// Events/s did not change measurably without them (docs/performance.md,
/// "Latency at a steady rate").
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "could not turn transparent huge pages off");
    }
}

/// The soft limit on open files before and after [`raise_open_file_limit`],
/// `None` where it is unlimited or unknown.
type OpenFiles = Option<(u64, u64)>;

/// Raises this process's soft limit on open files to its hard limit, as Go's
/// runtime and nginx do (the server and the load generator alike). Every
/// connection takes a file descriptor, and the soft limit a service manager
/// often starts a process with, 1024 (systemd's default, with a hard limit
/// of 524,288), would stop accepts at about a thousand concurrent
/// connections: a provider draining its retry queue after an outage opens
/// hundreds at once.
fn raise_open_file_limit() -> OpenFiles {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let before = limit.current?;
        // "Unlimited" is not a valid soft limit for files: the kernel's
        // own ceiling (fs.nr_open) is, by default, 2^20.
        let hard = limit.maximum.unwrap_or(1 << 20);
        if hard > before {
            let raised = Rlimit {
                current: Some(hard),
                maximum: limit.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                return Some((before, hard));
            }
        }
        Some((before, before))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// One core available (e.g. under `taskset`): a single-threaded runtime,
/// which skips work stealing and cross-thread wake-ups; otherwise one worker
/// per core.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Config => {
            print!("{}", crate::config::DEFAULT_TOML);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Providers(args) => return providers::providers(&args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "smshook", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let runtime = runtime()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::serve(&args).await,
            Command::Check(args) => check::check(&args),
            Command::Migrate(args) => serve::migrate(&args).await,
            Command::Backup(args) => backup::backup(&args),
            Command::Events(args) => query::events(&args).await,
            Command::Requests(args) => query::requests(&args).await,
            Command::Message(args) => query::message(&args).await,
            Command::Optouts(args) => query::optouts(&args).await,
            Command::Deliveries(args) => query::deliveries(&args).await,
            Command::Replay(args) => query::replay(&args).await,
            Command::Stats(args) => stats::stats(&args).await,
            Command::Send(args) => send::send(&args).await,
            Command::Sign(args) => send::sign(&args),
            Command::Keypair(args) => send::keypair(&args),
            Command::Bench(args) => bench::bench(&args).await,
            Command::Config | Command::Completions { .. } | Command::Providers(_) => {
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// A database URL or connection string without its password, for logs and
/// output: the one in `user:password@`, and the value of any `password=`
/// parameter (in a URL's query, or a `key=value` connection string).
pub fn redact_url(url: &str) -> String {
    redact_password_params(&redact_userinfo(url))
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme) = url.find("://") else {
        return url.to_string();
    };
    let start = scheme + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let Some(at) = url[start..end].rfind('@') else {
        return url.to_string();
    };
    match url[start..start + at].split_once(':') {
        Some((user, _)) => format!("{}{user}:***{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

fn redact_password_params(text: &str) -> String {
    const KEY: &str = "password=";
    // ASCII lowercasing keeps every byte where it was.
    let lower = text.to_ascii_lowercase();
    let (mut out, mut copied, mut from) = (String::new(), 0, 0);
    while let Some(found) = lower[from..].find(KEY) {
        let key = from + found;
        let value = key + KEY.len();
        from = value;
        let starts_param =
            key == 0 || matches!(text.as_bytes()[key - 1], b'?' | b'&' | b' ' | b'\t');
        if starts_param {
            out.push_str(&text[copied..value]);
            out.push_str("***");
            copied = value_end(text, value);
            from = copied;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Where a parameter's value starting at `start` ends: after its closing
/// quote when quoted (`password='a b'`), else at the next separator.
fn value_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    if bytes.get(start) == Some(&b'\'') {
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'\'' => return i + 1,
                _ => i += 1,
            }
        }
        return bytes.len();
    }
    bytes[start..]
        .iter()
        .position(|b| matches!(b, b'&' | b' ' | b'\t' | b'#'))
        .map_or(bytes.len(), |p| start + p)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("smshook.db"), "smshook.db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://u:p@ss@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&Password=s3cret&x=1"),
            "postgres://u@h/db?sslmode=require&Password=***&x=1"
        );
        assert_eq!(
            redact_url("host=h user=u password='a b\\' c' dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(redact_url("host=h password=s3cret"), "host=h password=***");
        assert_eq!(
            redact_url("/var/lib/old_password=x.db"),
            "/var/lib/old_password=x.db"
        );
    }
}
