//! The `smshook` binary's helper commands: `config`, `check`, `providers`,
//! `sign`, `send`, `events`, `requests`, `stats`, `replay`, `bench`,
//! `backup` and `completions`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::support::{Backend, PUBLIC_URL, TestApp, secret_for};

/// The binary with `args`, its output piped, and no configuration from
/// this process's environment.
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smshook"));
    command
        .args(args)
        .env_remove("SMSHOOK_CONFIG")
        .env_remove("SMSHOOK_DATABASE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

pub fn smshook(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run smshook");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

/// `smshook` from an async test: off the runtime, which the server under
/// test runs on.
async fn smshook_beside_server(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        smshook(&args, None)
    })
    .await
    .expect("task")
}

/// A command that succeeds and prints one JSON object per line: the
/// objects, and what it said on stderr.
fn json_lines(args: &[&str]) -> (Vec<Value>, String) {
    let out = smshook(args, None);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let lines = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    (lines, stderr)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn config_prints_the_commented_default() {
    let out = smshook(&["config"], None);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("ack_deadline = \"4s\"") && text.contains("# [[sources]]"));
    toml::from_str::<toml::Table>(&text).expect("the printed config is valid TOML");
}

/// `providers` lists every provider with what its source takes; `--json`
/// says the same as data.
#[test]
fn providers_says_what_each_source_takes() {
    let out = smshook(&["providers"], None);
    assert!(out.status.success());
    let text = stdout(&out);
    for p in smshook::providers::ALL {
        assert!(text.contains(&format!("{}\n  signs", p.name)), "{}", p.name);
        assert!(text.contains(&p.secret_env_var()), "{}", p.name);
    }
    assert!(text.contains("SMSHOOK_PLIVO_PUBLIC_URL"));
    let out = smshook(&["providers", "--json"], None);
    let all: Vec<Value> = serde_json::from_str(&stdout(&out)).expect("a JSON array");
    assert_eq!(all.len(), smshook::providers::ALL.len());
    let telesign = all
        .iter()
        .find(|p| p["name"] == "telesign")
        .expect("telesign");
    assert_eq!(telesign["secret"], "the API key, base64");
    assert_eq!(telesign["answer_timeout_secs"], 5.0);
}

/// A reader that stops early (`| head`) ends a command quietly, status 0,
/// not with a panic's backtrace.
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::io::{BufRead, BufReader};
    for args in [&["completions", "bash"][..], &["providers"]] {
        let mut child = command(args).spawn().expect("run smshook");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        out.read_line(&mut first).expect("a line");
        drop(out);
        let done = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(done.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn sign_prints_the_header_a_provider_would_send() {
    // echo -n 'hello' | openssl dgst -sha256 -hmac 'key'
    let out = smshook(&["sign", "integify", "--secret", "key"], Some(b"hello"));
    assert_eq!(
        stdout(&out).trim(),
        "X-Integify-Signature: sha256=9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"
    );
    let out = smshook(&["sign", "textus", "--secret", "key"], Some(b"hello"));
    assert!(stdout(&out).starts_with("X-TextUs-Signature: 9307b3"));
    // Bandwidth sends its callback credentials (RFC 7617's example).
    let out = smshook(
        &["sign", "bandwidth", "--secret", "Aladdin:open sesame"],
        Some(b"[]"),
    );
    assert_eq!(
        stdout(&out).trim(),
        "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    // Twilio's own libraries' example: token 12345, this URL and form.
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let form = b"CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
    let out = smshook(
        &["sign", "twilio", "--secret", "12345", "--url", url],
        Some(form),
    );
    assert_eq!(
        stdout(&out).trim(),
        "X-Twilio-Signature: RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
    let out = smshook(&["sign", "twilio", "--secret", "12345"], Some(form));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--url"));
    // A Webhook Rule's SharedKey: HMAC-SHA256 (Python's hmac), and the
    // header that says so.
    let shared = [
        "--shared-key",
        "KS1",
        "--secret",
        "shared-secret",
        "--url",
        url,
    ];
    let out = smshook(&[&["sign", "twilio"][..], &shared].concat(), Some(form));
    assert_eq!(
        stdout(&out).trim(),
        "X-Twilio-Signature: iwOZCFCgsf1lZRuIVob5xh6MS+e56XvT2JyqSGp3ZtY=\n\
         X-Twilio-Webhooks-Signature-Settings: key=KS1,algorithm=HMAC_SHA256"
    );
    let out = smshook(&[&["sign", "integify"][..], &shared].concat(), Some(b"x"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shared-key"));
}

/// Vonage's SMS API signs inside the body: `sign` prints the body with its
/// `timestamp` and `sig`, JSON or a form as given, and the source takes it.
#[tokio::test]
async fn sign_and_send_put_vonage_sms_signatures_in_the_body() {
    let secret = secret_for("vonage-sms");
    let json = br#"{"msisdn":"447700900001","to":"447700900000","messageId":"0A0000001234567B","text":"Hi","type":"text"}"#;
    let out = smshook(&["sign", "vonage-sms", "--secret", &secret], Some(json));
    assert!(out.status.success());
    let signed: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(signed["text"], "Hi");
    let sig = signed["sig"].as_str().expect("a sig");
    assert_eq!(sig.len(), 64, "HMAC-SHA256 hex");
    assert!(
        signed["timestamp"]
            .as_str()
            .is_some_and(|t| t.parse::<i64>().is_ok())
    );
    let form = b"msisdn=447700900001&to=447700900000&messageId=0A0000001234567C&text=Hi";
    let out = smshook(&["sign", "vonage-sms", "--secret", &secret], Some(form));
    let form_out = stdout(&out);
    assert!(form_out.starts_with("msisdn=447700900001&"), "{form_out}");
    assert!(form_out.contains("&timestamp=") && form_out.contains("&sig="));

    let app = TestApp::on(Backend::Sqlite).await;
    let answer = app
        .post_with(
            "vonage-sms",
            &[],
            stdout(&smshook(
                &["sign", "vonage-sms", "--secret", &secret],
                Some(json),
            ))
            .trim()
            .as_bytes(),
        )
        .await;
    assert_eq!(answer.status(), 200, "what sign prints is taken");
    let url = app.url("/webhooks/vonage-sms");
    let args = [
        "send",
        "vonage-sms",
        "delivered",
        "--url",
        &url,
        "--secret",
        &secret,
    ];
    let out = smshook_beside_server(args.iter().map(|a| a.to_string()).collect()).await;
    assert!(stdout(&out).starts_with("200 OK"), "{}", stdout(&out));
    // As the dashboard's default: a GET, signed in the query.
    let mut get: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    get[2] = "inbound".into();
    get.push("--get".into());
    let out = smshook_beside_server(get).await;
    assert!(stdout(&out).starts_with("200 OK"), "{}", stdout(&out));
    let events = app.events("source=vonage-sms").await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[1]["type"], "message.delivered");
    assert_eq!(events[2]["type"], "message.received");
    assert!(
        events[2]["payload"]["sig"].is_string(),
        "stored from the query"
    );
    let integify_url = app.url("/webhooks/integify");
    let args = [
        "send",
        "integify",
        "sms.delivered",
        "--url",
        &integify_url,
        "--secret",
        "s",
        "--get",
    ];
    let out = smshook_beside_server(args.iter().map(|a| a.to_string()).collect()).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not send webhooks as GET"));
    app.stop().await;
}

/// `send twilio` posts a form signed for the URL registered with Twilio,
/// which is not the address it posts to when a proxy is in between.
#[tokio::test]
async fn send_signs_twilio_forms_for_the_public_url() {
    let app = TestApp::on(Backend::Sqlite).await;
    let url = app.url("/webhooks/twilio");
    let send = |extra: &[&str]| {
        let args = ["send", "twilio", "received", "--url", &url, "--secret"];
        let args = args
            .iter()
            .map(|a| a.to_string())
            .chain([secret_for("twilio")])
            .chain(extra.iter().map(|a| a.to_string()));
        smshook_beside_server(args.collect())
    };
    let out = send(&["--public-url", PUBLIC_URL]).await;
    assert!(stdout(&out).starts_with("200 OK"), "{}", stdout(&out));
    assert!(stdout(&out).contains("<Response></Response>"));
    let unproxied = send(&[]).await;
    assert!(
        stdout(&unproxied).starts_with("401"),
        "signed for --url, not the public URL"
    );
    // As a Webhook Rule signs, with --secret as the SharedKey's secret.
    let shared = ["--public-url", PUBLIC_URL, "--shared-key", "KS1"];
    let out = send(&shared).await;
    assert!(stdout(&out).starts_with("200 OK"), "{}", stdout(&out));
    let events = app.events("source=twilio").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["type"], "message.received");
    app.stop().await;
}

/// Bird and Plivo sign the URL they post to too: `send` signs for
/// `--public-url`, and a webhook signed for `--url` alone is refused by a
/// source behind a proxy; `--get` sends Plivo's parameters in the query.
#[tokio::test]
async fn send_signs_bird_and_plivo_for_the_public_url() {
    let app = TestApp::on(Backend::Sqlite).await;
    for (provider, event_type, answer) in [
        ("bird", "sms.inbound", "\"duplicate\":false"),
        ("plivo", "inbound", "<Response></Response>"),
    ] {
        let url = app.url(&format!("/webhooks/{provider}"));
        let send = |extra: &[&str]| {
            let args = ["send", provider, event_type, "--url", &url, "--secret"];
            let args = args
                .iter()
                .map(|a| a.to_string())
                .chain([secret_for(provider)])
                .chain(extra.iter().map(|a| a.to_string()));
            smshook_beside_server(args.collect())
        };
        let out = send(&["--public-url", PUBLIC_URL]).await;
        assert!(stdout(&out).starts_with("200 OK"), "{}", stdout(&out));
        assert!(stdout(&out).contains(answer), "{}", stdout(&out));
        let unproxied = send(&[]).await;
        assert!(
            stdout(&unproxied).starts_with("401"),
            "{provider}: signed for --url, not the public URL"
        );
        let events = app.events(&format!("source={provider}")).await;
        assert_eq!(events.len(), 1, "{provider}");
        assert_eq!(events[0]["type"], "message.received");
    }
    // Plivo's callbacks may come by GET: --get puts the form in the query.
    let url = app.url("/webhooks/plivo");
    let args = [
        "send",
        "plivo",
        "delivered",
        "--get",
        "--url",
        &url,
        "--public-url",
    ];
    let args = args.iter().map(|a| a.to_string()).chain([
        PUBLIC_URL.to_string(),
        "--secret".into(),
        secret_for("plivo"),
    ]);
    let out = smshook_beside_server(args.collect()).await;
    assert!(stdout(&out).starts_with("200 OK"), "{}", stdout(&out));
    assert_eq!(
        app.events("source=plivo&type=message.delivered")
            .await
            .len(),
        1
    );
    app.stop().await;
}

/// `send twilio-events` posts a batch of one CloudEvent, its hash in the
/// query that is signed; `sign` says where to post what it signed.
#[tokio::test]
async fn send_and_sign_twilio_event_streams_batches() {
    let app = TestApp::on(Backend::Sqlite).await;
    let url = app.url("/webhooks/twilio-events");
    let secret = secret_for("twilio-events");
    let args = [
        "send",
        "twilio-events",
        "com.twilio.messaging.message.delivered",
        "--url",
        &url,
        "--public-url",
        PUBLIC_URL,
        "--secret",
        &secret,
    ];
    let out = smshook_beside_server(args.iter().map(|a| a.to_string()).collect()).await;
    assert!(stdout(&out).starts_with("200 OK"), "{}", stdout(&out));
    assert!(stdout(&out).contains(r#""events":[{"#), "{}", stdout(&out));
    let events = app.events("source=twilio-events").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "message.delivered");
    app.stop().await;

    let body = br#"[{"id":"EZ1"}]"#;
    let out = smshook(
        &[
            "sign",
            "twilio-events",
            "--secret",
            "12345",
            "--url",
            "https://h.test/x",
        ],
        Some(body),
    );
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
    let signed_for = format!("https://h.test/x?bodySHA256={hash}");
    let expected = smshook::signature::twilio::sign("12345", &signed_for, body);
    assert_eq!(
        stdout(&out).trim(),
        format!("X-Twilio-Signature: {expected}")
    );
    let told = String::from_utf8_lossy(&out.stderr);
    assert!(told.contains(&signed_for), "{told}");
}

crate::on_both_backends!(send_delivers_a_signed_sample_and_events_reads_it_back);

async fn send_delivers_a_signed_sample_and_events_reads_it_back(backend: Backend) {
    let app = TestApp::on(backend).await;
    let url = app.url("/webhooks/textus");
    let send = |secret: String| {
        let args = ["send", "textus", "contact.opted_out", "--url", &url];
        let args = args
            .iter()
            .map(|a| a.to_string())
            .chain(["--secret".into(), secret]);
        smshook_beside_server(args.collect())
    };
    let out = send(secret_for("textus")).await;
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).starts_with("200 OK"));
    let bad = send("x".into()).await;
    assert!(!bad.status.success(), "a refused send exits non-zero");
    let db = app.database.clone();
    let _keep = app.dir.clone();
    app.stop().await;

    let (events, _) = json_lines(&["events", "--database", &db, "--json"]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "contact.opted_out");
    assert_eq!(events[0]["payload"]["action"], "contact.opted_out");

    let table = stdout(&smshook(
        &["events", "--database", &db, "--type", "contact.opted_out"],
        None,
    ));
    assert!(
        table.starts_with("ID") && table.contains("contact.opted_out"),
        "{table}"
    );
    let requests = stdout(&smshook(&["requests", "--database", &db], None));
    assert!(
        requests.contains("accepted") && requests.contains("invalid_signature"),
        "{requests}"
    );
    let refused = stdout(&smshook(
        &["requests", "--database", &db, "--refused"],
        None,
    ));
    assert!(
        refused.contains("invalid_signature") && !refused.contains("accepted"),
        "{refused}"
    );
    let by_reason = stdout(&smshook(
        &[
            "requests",
            "--database",
            &db,
            "--reason",
            "accepted",
            "--json",
        ],
        None,
    ));
    assert!(
        !by_reason.is_empty()
            && by_reason
                .lines()
                .all(|l| l.contains(r#""reason":"accepted""#)),
        "{by_reason}"
    );
}

crate::on_both_backends!(
    events_lists_the_newest_page_and_pages_back_or_from_the_first,
    replay_queues_stored_events_again_by_id_or_since_a_time
);

/// Five events stored through a server that is then stopped, three
/// received before an instant and two after: the database, the directory
/// that holds it (SQLite), the event ids and the instant.
async fn five_events_around_an_instant(
    backend: Backend,
) -> (
    String,
    std::sync::Arc<tempfile::TempDir>,
    Vec<String>,
    String,
) {
    let app = TestApp::on(backend).await;
    let p = crate::support::provider("integify");
    let mut sent = Vec::new();
    let mut instant = String::new();
    for i in 0..5 {
        if i == 3 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            instant = smshook::event::now_rfc3339();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (_, status, answer) = app.send_sample(p, "sms.delivered").await;
        assert_eq!(status, 200);
        sent.push(answer["event_id"].as_str().expect("id").to_string());
    }
    let (db, dir) = (app.database.clone(), app.dir.clone());
    app.stop().await;
    (db, dir, sent, instant)
}

async fn events_lists_the_newest_page_and_pages_back_or_from_the_first(backend: Backend) {
    let (db, _dir, sent, instant) = five_events_around_an_instant(backend).await;
    // The ids `smshook events` prints with `how` and `extra`, and its hints.
    let listed = |how: &[&str], extra: &[&str]| {
        let mut args = vec!["events", "--database", &db, "--json"];
        args.extend_from_slice(how);
        args.extend_from_slice(extra);
        let (events, stderr) = json_lines(&args);
        let ids: Vec<String> = events
            .iter()
            .map(|e| e["id"].as_str().expect("id").to_string())
            .collect();
        (ids, stderr)
    };
    let page = |extra: &[&str]| listed(&["--limit", "2"], extra);

    let (newest, hint) = page(&[]);
    assert_eq!(newest, sent[3..], "the newest page, oldest of it first");
    let before = hint
        .lines()
        .find_map(|l| l.strip_prefix("(earlier rows: --before "))
        .and_then(|h| h.strip_suffix(')'))
        .unwrap_or_else(|| panic!("a hint to the earlier page: {hint}"))
        .to_string();
    let (earlier, _) = page(&["--before", &before]);
    assert_eq!(earlier, sent[1..3], "the page before it");
    let (first, hint) = page(&["--after", "0"]);
    assert_eq!(first, sent[..2], "--after 0: from the first");
    assert!(hint.contains("(more may follow: --after "), "{hint}");

    let (since, _) = page(&["--since", &instant]);
    assert_eq!(since, sent[3..], "--since: from then on, in arrival order");
    let (until, _) = page(&["--until", &instant]);
    assert_eq!(until, sent[1..3], "--until: the newest page before it");
    let every = |extra: &[&str]| listed(&["--all"], extra).0;
    assert_eq!(every(&[]), sent, "--all: every event, in arrival order");
    assert_eq!(every(&["--since", &instant]), sent[3..]);
    let (hour, _) = page(&["--since", "1h"]);
    assert_eq!(hour, sent[..2], "--since 1h: from an hour ago");
    let (none, _) = page(&["--since", "1h", "--until", "1h"]);
    assert!(none.is_empty());
    let (stats, _) = json_lines(&["stats", "--database", &db, "--since", &instant, "--json"]);
    assert_eq!(stats[0]["events"][0]["count"], 2, "{}", stats[0]);
    let day = smshook(&["stats", "--database", &db], None);
    let said = stdout(&day);
    assert!(
        said.contains("integify: 100.0% delivered (5 delivered, 0 failed)"),
        "{said}"
    );
    let wrong = smshook(&["events", "--database", &db, "--since", "soon"], None);
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && said.contains("an age (90s, 15m, 2h, 7d"),
        "{said}"
    );

    let both = smshook(
        &["events", "--database", &db, "--after", "1", "--before", "3"],
        None,
    );
    assert!(
        !both.status.success(),
        "--after and --before together are refused"
    );
}

/// `replay` writes a pending delivery for each event named, or for each
/// received since a time, to a configured destination (the server sends
/// them); an unknown id or destination is an error that says which.
async fn replay_queues_stored_events_again_by_id_or_since_a_time(backend: Backend) {
    let (db, dir, sent, instant) = five_events_around_an_instant(backend).await;
    let config = dir.path().join("replay.toml");
    let toml = format!(
        "database = {db:?}\n[[destinations]]\nname = \"app\"\n\
         url = \"http://127.0.0.1:9/hooks\"\nsecret = \"whsec_{}\"\n",
        "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
    );
    std::fs::write(&config, toml).expect("config");
    let config = config.display().to_string();
    let replay = |extra: &[&str]| {
        let mut args = vec!["replay", "--config", &config, "--destination"];
        args.extend_from_slice(extra);
        let out = smshook(&args, None);
        let said = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), said)
    };
    let queued = |ids: &[String]| {
        let (deliveries, _) = json_lines(&["deliveries", "--database", &db, "--json"]);
        let events: Vec<&str> = deliveries
            .iter()
            .map(|d| d["event_id"].as_str().expect("event id"))
            .collect();
        assert_eq!(events, ids);
    };

    assert_eq!(
        replay(&["app", "--since", &instant]),
        (true, "2 deliveries queued for app\n".into())
    );
    queued(&sent[3..]);
    let (ok, said) = replay(&["app", &sent[0], "evt_missing"]);
    assert!(
        !ok && said.contains("no such events: evt_missing"),
        "{said}"
    );
    let mut expected = sent[3..].to_vec();
    expected.push(sent[0].clone());
    queued(&expected);
    let (ok, said) = replay(&["nowhere", &sent[0]]);
    assert!(
        !ok && said.contains("\"nowhere\" is not a configured destination"),
        "{said}"
    );
}

/// The bash completion script, sourced by bash, completes a command and
/// its options. Skipped without bash.
#[test]
fn bash_completes_commands_and_options() {
    let script = stdout(&smshook(&["completions", "bash"], None));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("smshook.bash");
    std::fs::write(&path, script).expect("script");
    let complete = |words: &str, current: usize| {
        let line = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={current}; \
             _smshook smshook \"${{COMP_WORDS[{current}]}}\" \"${{COMP_WORDS[{}]}}\"; \
             echo \"${{COMPREPLY[@]}}\"",
            path.display(),
            current - 1
        );
        Command::new("bash").arg("-c").arg(line).output().ok()
    };
    let Some(out) = complete("smshook ev", 1) else {
        eprintln!("SKIPPED the completion test: needs bash");
        return;
    };
    assert_eq!(stdout(&out).trim(), "events");
    let out = complete("smshook events --si", 2).expect("bash");
    assert_eq!(stdout(&out).trim(), "--since");
}

#[test]
fn bad_config_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[sources]]\nname = \"x\"\nprovider = \"clicksend\"\nsecrets = [\"s\"]\n",
    )
    .expect("write");
    let out = smshook(&["serve", "--config", &path.display().to_string()], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sources[0]") && err.contains("provider") && err.contains("clicksend"),
        "{err}"
    );
}

#[test]
fn check_prints_what_would_run_and_never_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("ig.secrets");
    std::fs::write(&secrets, "old-s3cret\nnew-s3cret\n").expect("write");
    let path = dir.path().join("smshook.toml");
    let config = format!(
        "nats_url = \"nats://127.0.0.1:4222\"\nredis_url = \"redis://:r3dispa55@cache:6379\"\n\
         [[sources]]\nname = \"ig\"\nprovider = \"integify\"\nsecret_file = {:?}\n\
         [[sources]]\nname = \"mg\"\nprovider = \"msgine\"\nsecrets = [\"m5ecret\"]\n\
         allowed_ips = [\"52.89.214.238\", \"10.0.0.0/8\"]\n\
         [[sources]]\nname = \"vs\"\nprovider = \"vonage-sms\"\nsecrets = [\"v5ecret\"]\n\
         [[destinations]]\nname = \"app\"\nurl = \"https://u:pa55@app.internal/hooks?token=t0k\"\n\
         secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\
         [[destinations]]\nname = \"q\"\nsubject = \"sms.{{type}}\"\n\
         [[destinations]]\nname = \"r\"\nredis_stream = \"sms:events\"\n",
        secrets.display().to_string()
    );
    std::fs::write(&path, config).expect("write");
    // The config holds a secret: readable by others, it is warned about.
    let open = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    std::fs::set_permissions(&path, open).expect("chmod");
    let out = smshook(&["check", "--config", &path.display().to_string()], None);
    let text = stdout(&out);
    assert!(
        text.contains("warning:") && text.contains("chmod 600"),
        "{text}"
    );
    // Listening on loopback with no trusted proxy, a limited source warns.
    assert!(
        text.contains("warning: source mg: allowed_ips is set"),
        "{text}"
    );
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "configuration OK",
        "source: POST /webhooks/ig (integify, 2 secrets, from any address)",
        "source: POST /webhooks/mg (msgine, 1 secret, from 52.89.214.238/32, 10.0.0.0/8)",
        "source: GET|POST /webhooks/vs (vonage-sms, 1 secret, from any address)",
        "destination: app -> https://app.internal/hooks (1 signing secret)",
        "destination: q -> NATS subject sms.{type} at nats://127.0.0.1:4222",
        "destination: r -> Redis stream sms:events at redis://cache:6379",
        "query API: off",
        "limits: bodies up to 1048576 bytes, 67108864 bytes being read at once, \
         1024 connections, 4s to answer",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    for secret in [
        "s3cret",
        "m5ecret",
        "v5ecret",
        "pa55",
        "t0k",
        "MfKQ9r8G",
        "r3dispa55",
    ] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
}

#[test]
fn check_refuses_what_serve_would_refuse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("smshook.toml");
    let missing = dir.path().join("missing.secrets");
    std::fs::write(
        &path,
        format!(
            "[[sources]]\nname = \"ig\"\nprovider = \"integify\"\nsecret_file = {:?}\n",
            missing.display().to_string()
        ),
    )
    .expect("write");
    let out = smshook(&["check", "--config", &path.display().to_string()], None);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty(), "nothing is called OK");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret_file") && err.contains("missing.secrets"),
        "{err}"
    );
}

/// `smshook keypair` makes the keys to try a Telnyx source: the public one
/// configures the source (`check` calls it that, and says the source
/// answers within Telnyx's 2 s), the private one signs what `send` and
/// `sign` make. A source given something else, an HMAC secret say, is
/// refused at start-up without the value being shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypair_signs_for_a_telnyx_source_that_verifies_with_its_public_key() {
    let out = smshook(&["keypair"], None);
    assert!(out.status.success());
    let pair: toml::Table = toml::from_str(&stdout(&out)).expect("TOML");
    let public = pair["public_key"].as_str().expect("public_key").to_string();
    let private = pair["private_key"]
        .as_str()
        .expect("private_key")
        .to_string();

    let dir = tempfile::tempdir().expect("tempdir");
    let config = |secret: &str| {
        let path = dir.path().join("smshook.toml");
        let text =
            format!("[[sources]]\nname = \"tx\"\nprovider = \"telnyx\"\nsecrets = [{secret:?}]\n");
        std::fs::write(&path, text).expect("write");
        smshook(&["check", "--config", &path.display().to_string()], None)
    };
    let good = config(&public);
    assert!(
        stdout(&good).contains(
            "source: POST /webhooks/tx (telnyx, 1 public key, from any address; 1s 500ms to answer, as telnyx waits 2s)"
        ),
        "{}{}",
        stdout(&good),
        String::from_utf8_lossy(&good.stderr)
    );
    let bad = config("whsec-hmac-s3cret");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("sources[0]") && err.contains("secrets") && err.contains("public key"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");

    let signed = smshook(&["sign", "telnyx", "--secret", &private], Some(b"{}"));
    let text = stdout(&signed);
    let header = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_string()
    };
    let signature = header("Telnyx-Signature-Ed25519: ");
    let timestamp = header("Telnyx-Timestamp: ");
    let now: i64 = timestamp.parse().expect("Unix seconds");
    let keys = [smshook::signature::Secret::new(public.clone())];
    let verified = smshook::signature::ed25519::verify(
        Some(signature.as_bytes()),
        Some(timestamp.as_bytes()),
        b"{}",
        &keys,
        now,
    );
    assert_eq!(verified, Ok(()));

    // `send` against a server whose telnyx source verifies with the public
    // key of the test's own private key.
    let app = TestApp::on(Backend::Sqlite).await;
    let url = app.url("/webhooks/telnyx");
    let args = [
        "send",
        "telnyx",
        "message.finalized",
        "--url",
        &url,
        "--secret",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(secret_for("telnyx"));
    let sent = smshook_beside_server(args.clone()).await;
    assert!(stdout(&sent).starts_with("200 OK"), "{}", stdout(&sent));
    *args.last_mut().expect("secret") = private;
    let other_key = smshook_beside_server(args).await;
    assert!(
        stdout(&other_key).starts_with("401"),
        "{}",
        stdout(&other_key)
    );
    let events = app.events("source=telnyx").await;
    assert_eq!(events[0]["type"], "message.delivered");
    app.stop().await;
}

/// `keypair aws-sns` makes an RSA pair: a source pinning its public key
/// takes what `send aws-sns` and `sign aws-sns` sign with its private key,
/// and `check` says what the source takes.
#[tokio::test]
async fn keypair_signs_for_an_sns_source_that_pins_its_public_key() {
    let out = smshook(&["keypair", "aws-sns"], None);
    assert!(out.status.success());
    let text = stdout(&out);
    let block = |label: &str| {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----\n");
        let start = text
            .find(&begin)
            .unwrap_or_else(|| panic!("{label} in {text}"));
        let stop = text[start..].find(&end).expect("its end") + start + end.len();
        text[start..stop].to_string()
    };
    let (public, private) = (block("PUBLIC KEY"), block("PRIVATE KEY"));
    let dir = tempfile::tempdir().expect("tempdir");
    let public_file = dir.path().join("sns.pem");
    let private_file = dir.path().join("sns.key");
    std::fs::write(&public_file, &public).expect("write");
    std::fs::write(&private_file, &private).expect("write");
    let topic = smshook::signature::sns::SAMPLE_TOPIC_ARN;
    let config = dir.path().join("smshook.toml");
    let source = format!(
        "[[sources]]\nname = \"sms\"\nprovider = \"aws-sns\"\nsecrets = [{topic:?}]\nsigning_certificates = [{:?}]\n",
        public_file.display().to_string()
    );
    std::fs::write(&config, source).expect("write");
    let checked = smshook(&["check", "--config", &config.display().to_string()], None);
    assert!(
        stdout(&checked).contains("source: POST /webhooks/sms (aws-sns, 1 topic ARN, from any address, pinned certificates"),
        "{}{}",
        stdout(&checked),
        String::from_utf8_lossy(&checked.stderr)
    );

    let mine = smshook::config::Source {
        name: "sns-mine".into(),
        provider: smshook::providers::find("aws-sns").expect("aws-sns"),
        secrets: vec![smshook::signature::Secret::new(topic)],
        allowed: None,
        public_url: None,
        certificates: Some(crate::support::pinned(&[public])),
    };
    let app = TestApp::spawn_with(crate::support::TestOptions {
        extra_sources: vec![mine],
        ..Default::default()
    })
    .await;
    let key = private_file.display().to_string();
    let send = |source: &str, event_type: &str| {
        let url = app.url(&format!("/webhooks/{source}"));
        let args = [
            "send", "aws-sns", event_type, "--url", &url, "--secret", &key,
        ];
        smshook_beside_server(args.iter().map(|a| a.to_string()).collect())
    };
    let sent = send("sns-mine", "inbound").await;
    assert!(stdout(&sent).starts_with("200 OK"), "{}", stdout(&sent));
    let sent = send("sns-mine", "TEXT_DELIVERED").await;
    assert!(stdout(&sent).starts_with("200 OK"), "{}", stdout(&sent));
    let elsewhere = send("aws-sns", "inbound").await;
    assert!(
        stdout(&elsewhere).starts_with("401"),
        "{}",
        stdout(&elsewhere)
    );
    let events = app.events("source=sns-mine").await;
    assert_eq!(events[0]["type"], "message.received");
    assert_eq!(events[1]["type"], "message.delivered");

    let unsigned = serde_json::to_vec(&json!({
        "Type": "Notification", "MessageId": "m-1", "TopicArn": topic, "Message": "hi",
        "Timestamp": "2026-12-04T00:00:00Z",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem",
    }))
    .expect("json");
    let signed = smshook(&["sign", "aws-sns", "--secret", &key], Some(&unsigned));
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let body = stdout(&signed);
    let keys = [smshook::signature::Secret::new(topic)];
    let pinned = crate::support::pinned(&[block("PUBLIC KEY")]);
    let verified = smshook::signature::sns::verify(body.trim().as_bytes(), &keys, Some(&pinned));
    assert_eq!(verified, Ok(()));
    let missing = smshook(
        &["sign", "aws-sns", "--secret", "/nope.key"],
        Some(&unsigned),
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nope.key"));
    app.stop().await;
}

/// Runs `smshook bench` against `url` off the runtime and returns its JSON.
async fn bench(url: &str, extra: &[&str]) -> Value {
    let secret = secret_for("integify");
    let args = ["bench", "--url", url, "--json", "--secret", &secret];
    let args = args.iter().chain(extra).map(|a| a.to_string()).collect();
    let out = smshook_beside_server(args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout(&out)).expect("bench prints one JSON object")
}

#[tokio::test]
async fn bench_floods_or_keeps_a_schedule_and_every_event_is_stored() {
    let app = TestApp::spawn().await;
    let url = app.url("/webhooks/integify");
    let flood = bench(&url, &["--requests", "150", "--concurrency", "8"]).await;
    assert_eq!(
        (&flood["accepted"], &flood["errors"], &flood["rate"]),
        (&json!(150), &json!(0), &Value::Null),
        "{flood}"
    );
    // 200 requests at 1,000/s: the last is due 199 ms after the start, so
    // the run cannot be shorter, however fast the server is.
    let paced = bench(&url, &["--requests", "200", "--rate", "1000"]).await;
    assert_eq!(
        (&paced["accepted"], &paced["rate"]),
        (&json!(200), &json!(1000.0))
    );
    assert!(
        paced["seconds"].as_f64().expect("seconds") >= 0.199,
        "{paced}"
    );
    // How busy the load generator kept its CPU: some, while flooding; little,
    // sending 200 requests on a schedule (near 1: it, not the server, was
    // the limit).
    let busy = |run: &Value| run["client_cpu_share"].as_f64().expect("client_cpu_share");
    assert!(busy(&flood) > 0.0 && busy(&paced) < 0.5, "{flood} {paced}");
    let ids: std::collections::HashSet<_> = app
        .events("")
        .await
        .iter()
        .map(|e| e["provider_event_id"].clone())
        .collect();
    assert_eq!(
        ids.len(),
        350,
        "every accepted event is a distinct stored row"
    );
}

/// Bandwidth's Basic credentials are the same on every request, and
/// Telesign's signature is the body's HMAC under its API key: bench floods
/// their sources too, each request a distinct event (Bandwidth's a batch of
/// one).
#[tokio::test]
async fn bench_floods_basic_credentials_and_telesign_sources() {
    let app = TestApp::spawn().await;
    for (provider, event_type) in [
        ("bandwidth", "message-delivered"),
        ("telesign", "delivery_report"),
    ] {
        let url = app.url(&format!("/webhooks/{provider}"));
        let secret = secret_for(provider);
        let args = [
            "bench",
            "--url",
            &url,
            "--json",
            "--secret",
            &secret,
            "--provider",
            provider,
            "--event-type",
            event_type,
            "--requests",
            "100",
            "--concurrency",
            "4",
        ];
        let out = smshook_beside_server(args.iter().map(|a| a.to_string()).collect()).await;
        assert!(
            out.status.success(),
            "{provider}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run: Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
        assert_eq!(
            (&run["accepted"], &run["errors"]),
            (&json!(100), &json!(0)),
            "{provider}: {run}"
        );
        let stored = app.events(&format!("source={provider}")).await;
        assert_eq!(stored.len(), 100, "{provider}");
    }
}

#[test]
fn bench_refuses_a_rate_that_is_not_positive() {
    for rate in ["0", "-5", "fast"] {
        let rate = format!("--rate={rate}");
        let out = smshook(
            &[
                "bench",
                "--url",
                "http://127.0.0.1:9/x",
                "--secret",
                "s",
                &rate,
            ],
            None,
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--rate") && err.contains("positive"), "{err}");
    }
}

/// `smshook backup` copies the database while the server writes to it: the
/// copy holds every event acknowledged before it began, passes SQLite's
/// integrity check, is private to its owner, and never overwrites a file.
#[tokio::test]
async fn backup_copies_a_database_the_server_is_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("events.db").display().to_string();
    let server = crate::durability::start_binary(dir.path(), &database);
    let (before, failed) = crate::durability::flood(&server.addr, 200).await;
    assert_eq!((before.len(), failed), (200, 0));

    let target = dir.path().join("copy.db").display().to_string();
    let args: Vec<String> = ["backup", &target, "--database", &database]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let during = tokio::spawn({
        let addr = server.addr.clone();
        async move { crate::durability::flood(&addr, 300).await }
    });
    let out = smshook_beside_server(args.clone()).await;
    let (after, _) = during.await.expect("flood");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("events"), "{}", stdout(&out));

    let copy = rusqlite::Connection::open(&target).expect("open copy");
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let ids: std::collections::HashSet<String> = copy
        .prepare("SELECT id FROM events")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("ids");
    assert!(ids.is_superset(&before), "every event acknowledged before");
    assert!(
        ids.len() <= before.len() + after.len()
            && ids
                .iter()
                .all(|id| before.contains(id) || after.contains(id))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let again = smshook_beside_server(args).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let postgres = smshook(&["backup", "x.db", "--database", "postgres://u@h/db"], None);
    assert!(String::from_utf8_lossy(&postgres.stderr).contains("pg_dump"));
}

/// A `smshook … --follow` child: its stdout lines, and its stderr's first
/// line (the cursor it follows from), arrive on channels.
struct Follower {
    /// `None` once interrupted; a follower dropped by a failing test is
    /// killed, not left running.
    child: Option<std::process::Child>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    started: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Follower {
    fn spawn(args: &[&str]) -> Follower {
        let mut child = command(args).spawn().expect("run smshook");
        let pipe = |from: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            std::thread::spawn(move || {
                for line in std::io::BufRead::lines(std::io::BufReader::new(from)) {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            rx
        };
        let lines = pipe(Box::new(child.stdout.take().expect("stdout")));
        let started = pipe(Box::new(child.stderr.take().expect("stderr")));
        Follower {
            child: Some(child),
            lines,
            started,
        }
    }

    /// Waits until it has read where to start: rows stored after this are
    /// printed.
    async fn started(&mut self) -> String {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), self.started.recv());
        line.await.expect("started in time").expect("a first line")
    }

    async fn line(&mut self) -> String {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), self.lines.recv());
        line.await.expect("a line in time").expect("a line")
    }

    /// Ctrl-C, as a user would stop it: it exits 0.
    async fn interrupt(mut self) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status();
        assert!(sent.expect("kill").success());
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait");
        assert!(status.success(), "{status}");
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn follow_prints_the_newest_page_then_what_a_running_server_stores() {
    let app = TestApp::on(Backend::Sqlite).await;
    let p = crate::support::provider("integify");
    let mut sent = Vec::new();
    for _ in 0..2 {
        let (_, status, answer) = app.send_sample(p, "sms.delivered").await;
        assert_eq!(status, 200);
        sent.push(answer["event_id"].as_str().expect("id").to_string());
    }
    // Of the two stored before, the newest page (`--limit 1`) is printed.
    sent.remove(0);

    let db = app.database.clone();
    let args = ["events", "-f", "--json", "--limit", "1", "--database", &db];
    let mut events = Follower::spawn(&args);
    let started = events.started().await;
    assert!(started.starts_with("following after cursor 2"), "{started}");
    // A refusal logged before: `--limit 0` leaves it out, as `tail -f -n 0`.
    app.post_unsigned("/webhooks/ghost").await;
    let logged = async {
        while !app.requests().await.iter().any(|r| r["source"] == "ghost") {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), logged)
        .await
        .expect("the refusal logged");
    let args = [
        "requests",
        "-f",
        "--refused",
        "--limit",
        "0",
        "--database",
        &db,
    ];
    let mut refusals = Follower::spawn(&args);
    refusals.started().await;
    assert!(refusals.line().await.starts_with("AT "), "the header first");

    for event_type in ["sms.received", "sms.failed"] {
        let (_, status, answer) = app.send_sample(p, event_type).await;
        assert_eq!(status, 200);
        sent.push(answer["event_id"].as_str().expect("id").to_string());
    }
    app.post_signed("integify", p, b"{}", "wrong-secret").await;
    let mut followed = Vec::new();
    for _ in 0..3 {
        let event: Value = serde_json::from_str(&events.line().await).expect("a JSON line");
        followed.push(event["id"].as_str().expect("id").to_string());
    }
    assert_eq!(
        followed, sent,
        "the newest, then each new event once, in order"
    );
    let refused = refusals.line().await;
    let cells: Vec<&str> = refused.split_whitespace().collect();
    assert_eq!(
        cells[1..4],
        ["integify", "401", "invalid_signature"],
        "{refused}"
    );
    events.interrupt().await;
    refusals.interrupt().await;
    app.stop().await;
}
