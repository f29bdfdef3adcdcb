//! The `smshook` binary's helper commands: `config`, `sign`, `send`,
//! `events` and `requests`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{Backend, TestApp, secret_for};

fn smshook(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smshook"))
        .args(args)
        .env_remove("SMSHOOK_CONFIG")
        .env_remove("SMSHOOK_DATABASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
}

crate::on_both_backends!(send_delivers_a_signed_sample_and_events_reads_it_back);

async fn send_delivers_a_signed_sample_and_events_reads_it_back(backend: Backend) {
    let app = TestApp::on(backend).await;
    let url = app.url("/webhooks/textus");
    let send = |secret: String| {
        let args = [
            "send",
            "textus",
            "contact.opted_out",
            "--url",
            &url,
            "--secret",
            &secret,
        ]
        .map(String::from);
        // Off the runtime: the server under test runs on it.
        tokio::task::spawn_blocking(move || smshook(&args.each_ref().map(String::as_str), None))
    };
    let out = send(secret_for("textus")).await.expect("task");
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).starts_with("200 OK"));
    let bad = send("x".into()).await.expect("task");
    assert!(!bad.status.success(), "a refused send exits non-zero");
    let db = app.database.clone();
    let _keep = app.dir.clone();
    app.stop().await;

    let out = smshook(&["events", "--database", &db, "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
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
}

#[test]
fn bad_config_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[sources]]\nname = \"x\"\nprovider = \"twilio\"\nsecrets = [\"s\"]\n",
    )
    .expect("write");
    let out = smshook(&["serve", "--config", &path.display().to_string()], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sources[0]") && err.contains("provider") && err.contains("twilio"),
        "{err}"
    );
}
