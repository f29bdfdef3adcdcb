//! Secrets rotated while serving: on SIGHUP the binary reads its
//! configuration again and running sources take their new secrets, with no
//! restart and so no moment in which webhooks are refused; a configuration
//! that no longer loads changes nothing. A rewritten secret file is also
//! noticed with no signal (checked every `file_check_interval`, 1 s here).
//! Destinations take their new signing secrets the same way.

use std::path::Path;
use std::time::{Duration, Instant};

use smshook::signature::{Secret, sign_hex};

use crate::durability::{Server, send_event, serve_command, start, start_binary_with};
use crate::receiver::{SECRET, TestReceiver};
use crate::support::{provider, sample_bytes};

/// The status of a fresh Integify webhook to `/webhooks/rotating`, signed
/// with `secret`.
async fn status_signed_with(server: &Server, secret: &str) -> u16 {
    let p = provider("integify");
    let body = sample_bytes(p, "sms.delivered");
    let signature = sign_hex(&Secret::new(secret), &body, "sha256=");
    reqwest::Client::new()
        .post(format!("http://{}/webhooks/rotating", server.addr))
        .header(p.signature_header, signature)
        .body(body)
        .send()
        .await
        .expect("answer")
        .status()
        .as_u16()
}

fn hangup(server: &Server) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

/// Waits until a webhook signed with `secret` gets `status`.
async fn until(server: &Server, secret: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_signed_with(server, secret).await != status {
        assert!(Instant::now() < deadline, "{secret} never got {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write secret file");
}

#[tokio::test]
async fn sighup_rotates_a_secret_file_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("rotating.secret");
    write(&secrets, "first\n");
    let database = dir.path().join("events.db").display().to_string();
    let source = format!(
        "[[sources]]\nname = \"rotating\"\nprovider = \"integify\"\nsecret_file = {:?}\n",
        secrets.display().to_string()
    );
    let server = start_binary_with(dir.path(), &database, &source);
    assert_eq!(status_signed_with(&server, "first").await, 200);
    assert_eq!(status_signed_with(&server, "second").await, 401);

    // Rotation: both at once, then only the new one.
    write(&secrets, "first\nsecond\n");
    hangup(&server);
    until(&server, "second", 200).await;
    assert_eq!(status_signed_with(&server, "first").await, 200);
    write(&secrets, "second\n");
    hangup(&server);
    until(&server, "first", 401).await;

    // A configuration that no longer loads changes nothing.
    std::fs::remove_file(&secrets).expect("remove");
    hangup(&server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_signed_with(&server, "second").await, 200);
}

/// The binary with the source `rotating` reading `secrets`, checking files
/// for changes every second.
fn start_watching(dir: &Path, secrets: &Path) -> Server {
    let database = dir.join("events.db").display().to_string();
    let mut command = serve_command(dir, &database, &rotating_source(secrets));
    command.env("SMSHOOK_FILE_CHECK_INTERVAL", "1s");
    start(command)
}

fn rotating_source(secrets: &Path) -> String {
    format!(
        "[[sources]]\nname = \"rotating\"\nprovider = \"integify\"\nsecret_file = {:?}\n",
        secrets.display().to_string()
    )
}

#[tokio::test]
async fn a_rewritten_secret_file_is_picked_up_with_no_signal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("rotating.secret");
    write(&secrets, "first\n");
    let server = start_watching(dir.path(), &secrets);
    assert_eq!(status_signed_with(&server, "first").await, 200);

    write(&secrets, "second\n");
    until(&server, "second", 200).await;
    assert_eq!(status_signed_with(&server, "first").await, 401);
}

#[tokio::test]
async fn a_secret_file_named_by_a_reload_is_watched_from_then_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old, new) = (dir.path().join("old.secret"), dir.path().join("new.secret"));
    write(&old, "first\n");
    write(&new, "second\n");
    let server = start_watching(dir.path(), &old);
    assert_eq!(status_signed_with(&server, "first").await, 200);

    // The config now names the other file: read on SIGHUP...
    let config = dir.path().join("smshook.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let renamed = text.replace(&rotating_source(&old), &rotating_source(&new));
    assert_ne!(text, renamed, "the source's secret_file is in the config");
    write(&config, &renamed);
    hangup(&server);
    until(&server, "second", 200).await;

    // ...and watched: its next change needs no signal.
    write(&new, "third\n");
    until(&server, "third", 200).await;
    assert_eq!(status_signed_with(&server, "second").await, 401);
}

/// A second Standard Webhooks secret for the application's rotation.
const NEXT_SECRET: &str = "whsec_c2Vjb25kLXRlc3Qta2V5LTI0Ynl0ZXMh";

/// Stores fresh events until one reaches `receiver` signed by exactly
/// `secrets` (the reload has applied).
async fn until_signed_by(server: &Server, receiver: &mut TestReceiver, secrets: &[&str]) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = send_event(&client, &server.addr).await.expect("answer");
        assert_eq!(answer.status(), 200);
        if receiver.next().await.signed_by(secrets) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never signed by {} secrets",
            secrets.len()
        );
    }
}

#[tokio::test]
async fn sighup_rotates_a_destinations_signing_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut receiver = TestReceiver::start(vec![]).await;
    let keys = dir.path().join("app.whsec");
    write(&keys, &format!("{SECRET}\n"));
    let destination = format!(
        "[[destinations]]\nname = \"app\"\nurl = {:?}\nsecret_file = {:?}\n",
        receiver.url,
        keys.display().to_string()
    );
    let database = dir.path().join("events.db").display().to_string();
    let server = start_binary_with(dir.path(), &database, &destination);
    until_signed_by(&server, &mut receiver, &[SECRET]).await;

    // The application's rotation: both secrets, then the new one alone.
    write(&keys, &format!("{SECRET}\n{NEXT_SECRET}\n"));
    hangup(&server);
    until_signed_by(&server, &mut receiver, &[SECRET, NEXT_SECRET]).await;
    write(&keys, &format!("{NEXT_SECRET}\n"));
    hangup(&server);
    until_signed_by(&server, &mut receiver, &[NEXT_SECRET]).await;
}

/// An SNS source's pinned certificate is read again when its file is
/// rewritten, with no signal: AWS's new certificate replaces the old one
/// with no restart.
#[tokio::test]
async fn a_rewritten_pinned_certificate_is_picked_up_with_no_signal() {
    use smshook::signature::sns;
    let dir = tempfile::tempdir().expect("tempdir");
    let (old, new) = (
        sns::new_private_key().expect("key"),
        sns::new_private_key().expect("key"),
    );
    let pinned = dir.path().join("sns.pem");
    write(&pinned, &sns::public_key_pem(&old).expect("public"));
    let source = format!(
        "[[sources]]\nname = \"sns\"\nprovider = \"aws-sns\"\nsecrets = [{:?}]\nsigning_certificates = [{:?}]\n",
        sns::SAMPLE_TOPIC_ARN,
        pinned.display().to_string()
    );
    let database = dir.path().join("events.db").display().to_string();
    let mut command = serve_command(dir.path(), &database, &source);
    command.env("SMSHOOK_FILE_CHECK_INTERVAL", "1s");
    let server = start(command);
    let status = |key: String| {
        let url = format!("http://{}/webhooks/sns", server.addr);
        async move {
            let p = provider("aws-sns");
            let body = p
                .sign_body(&key, &sample_bytes(p, "inbound"), 0)
                .expect("signed");
            let response = reqwest::Client::new().post(url).body(body).send().await;
            response.expect("answer").status().as_u16()
        }
    };
    assert_eq!(status(old.clone()).await, 200);
    assert_eq!(status(new.clone()).await, 401);

    write(&pinned, &sns::public_key_pem(&new).expect("public"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(new.clone()).await != 200 {
        assert!(
            Instant::now() < deadline,
            "the new certificate never verified"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(old).await, 401);
}
