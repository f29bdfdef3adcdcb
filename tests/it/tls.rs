//! HTTPS without a proxy: the binary serving a webhook over TLS (and
//! `smshook bench` measuring it), renewed certificates read again, and
//! unusable ones refused with a clear error.
//! Test certificates come from the `openssl` command; without it these
//! tests skip, saying so.

use std::path::Path;
use std::time::Duration;

use smshook::config::TlsFiles;
use smshook::http::tls::Certificates;
use smshook::signature::{Secret, sign_hex};

use crate::durability::{Server, serve_command, start};
use crate::support::{provider, sample_bytes, secret_for};

/// A self-signed certificate for 127.0.0.1, or `None` (said on stderr).
pub fn self_signed(dir: &Path, name: &str) -> Option<TlsFiles> {
    let files = TlsFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // A leaf, not a CA: rustls's clients refuse a CA as a server's certificate.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert)
        .output();
    match made {
        Ok(out) if out.status.success() => Some(files),
        _ => {
            eprintln!("SKIPPED a TLS test: needs the openssl command to make a certificate");
            None
        }
    }
}

/// The binary serving HTTPS with a fresh self-signed certificate, its files
/// and its database; `None` without openssl (said on stderr).
fn https_binary(dir: &Path) -> Option<(Server, TlsFiles, String)> {
    let files = self_signed(dir, "server")?;
    let database = dir.join("events.db").display().to_string();
    let mut command = serve_command(dir, &database, "");
    command
        .env("SMSHOOK_TLS_CERT", &files.cert)
        .env("SMSHOOK_TLS_KEY", &files.key);
    Some((start(command), files, database))
}

#[tokio::test]
async fn the_binary_serves_webhooks_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((server, files, _)) = https_binary(dir.path()) else {
        return;
    };

    let pem = std::fs::read(&files.cert).expect("cert");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .build()
        .expect("client");
    let p = provider("integify");
    let body = sample_bytes(p, "sms.delivered");
    let signature = sign_hex(&Secret::new(secret_for("integify")), &body, "sha256=");
    let answer = client
        .post(format!("https://{}/webhooks/integify", server.addr))
        .header(p.signature_header, signature)
        .body(body)
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(answer.status(), 200);

    // `smshook send --ca` trusts the self-signed certificate too.
    let url = format!("https://{}/webhooks/integify", server.addr);
    let cert = files.cert.display().to_string();
    let sent = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_smshook"))
            .args(["send", "integify", "sms.delivered", "--url", &url])
            .args(["--secret", &secret_for("integify"), "--ca", &cert])
            .output()
            .expect("run send")
    })
    .await
    .expect("send");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(String::from_utf8_lossy(&sent.stdout).starts_with("200"));

    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP is not served on the TLS port: {plain:?}"
    );
}

/// `smshook bench` speaks HTTPS: with `--ca` every event is accepted and
/// stored; without it the self-signed certificate is refused, and the run
/// fails rather than measure nothing.
#[test]
fn bench_measures_a_server_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((server, files, database)) = https_binary(dir.path()) else {
        return;
    };
    let url = format!("https://{}/webhooks/integify", server.addr);
    let bench = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_smshook"))
            .args(["bench", "--url", &url, "--json", "--requests", "120"])
            .args(["--concurrency", "4", "--secret", &secret_for("integify")])
            .args(extra)
            .output()
            .expect("run bench")
    };

    let out = bench(&["--ca", &files.cert.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (&result["accepted"], &result["errors"]),
        (&120.into(), &0.into()),
        "{result}"
    );
    let stored: i64 = rusqlite::Connection::open(&database)
        .expect("open")
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count");
    assert_eq!(stored, 120);

    let untrusted = bench(&[]);
    assert!(
        !untrusted.status.success(),
        "a certificate no root vouches for is refused"
    );
    let result: serde_json::Value = serde_json::from_slice(&untrusted.stdout).expect("JSON");
    assert_eq!(result["accepted"], 0, "{result}");
}

/// A renewal is read again; one that cannot be used is not, and the
/// certificate in use stays.
#[test]
fn renewed_files_are_read_again_and_bad_ones_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (Some(first), Some(second)) = (
        self_signed(dir.path(), "first"),
        self_signed(dir.path(), "second"),
    ) else {
        return;
    };
    let certificates = Certificates::load(&first).expect("loads");
    certificates.acceptor().expect("acceptor");
    let before = certificates.leaf_der();
    assert!(!certificates.reload_if_changed(), "nothing changed");

    std::thread::sleep(Duration::from_millis(20));
    std::fs::copy(&second.cert, &first.cert).expect("renew cert");
    std::fs::copy(&second.key, &first.key).expect("renew key");
    assert!(certificates.reload_if_changed(), "renewal read");
    let renewed = certificates.leaf_der();
    assert_ne!(renewed, before);

    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&first.cert, "not a certificate").expect("break");
    assert!(!certificates.reload_if_changed(), "bad file ignored");
    assert_eq!(
        certificates.leaf_der(),
        renewed,
        "the certificate in use stays"
    );
}

#[test]
fn unusable_files_are_clear_errors_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (Some(a), Some(b)) = (self_signed(dir.path(), "a"), self_signed(dir.path(), "b")) else {
        return;
    };
    let err = |files: &TlsFiles| format!("{:#}", Certificates::load(files).expect_err("refused"));
    let cases = [
        (a.cert.clone(), b.key.clone(), "does not fit"),
        (dir.path().join("none.crt"), a.key.clone(), "cannot read"),
        (a.key.clone(), a.cert.clone(), "tls_cert"),
    ];
    for (cert, key, says) in cases {
        let e = err(&TlsFiles { cert, key });
        assert!(e.contains(says), "{e}");
    }
}

#[test]
fn check_refuses_a_key_that_does_not_fit_the_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (Some(a), Some(b)) = (self_signed(dir.path(), "a"), self_signed(dir.path(), "b")) else {
        return;
    };
    let check = |cert: &Path, key: &Path| {
        let cert = format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        );
        let path = dir.path().join("smshook.toml");
        std::fs::write(&path, cert).expect("write");
        crate::cli::smshook(&["check", "--config", &path.display().to_string()], None)
    };
    let good = check(&a.cert, &a.key);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("HTTPS, certificate"));
    let bad = check(&a.cert, &b.key);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("does not fit"), "{err}");
}

/// SNS's signing certificates are fetched over HTTPS that the platform's
/// roots vouch for: from a server whose own certificate is self-signed the
/// fetch fails, and the same server, once trusted, serves the key.
#[tokio::test]
async fn sns_certificates_come_only_from_a_server_the_platform_trusts() {
    use smshook::signature::sns;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(files) = self_signed(dir.path(), "sns") else {
        return;
    };
    let acceptor = Certificates::load(&files)
        .expect("load")
        .acceptor()
        .expect("acceptor");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let pem = sns::public_key_pem(&sns::new_private_key().expect("key")).expect("pem");
    let served = pem.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                continue; // The untrusting client hung up.
            };
            let mut head = vec![0; 4096];
            let _ = tls.read(&mut head).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{served}",
                served.len()
            );
            let _ = tls.write_all(answer.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    let url = format!("https://{addr}/SimpleNotificationService-test.pem");
    let refused = sns::certificates::fetch_key(&sns::certificates::client(), &url).await;
    let e = refused.expect_err("a self-signed server");
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    let own = std::fs::read(&files.cert).expect("cert");
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&own).expect("pem"))
        .build()
        .expect("client");
    let key = sns::certificates::fetch_key(&trusting, &url).await;
    assert_eq!(key, sns::public_key_from_pem(pem.as_bytes()));
}
