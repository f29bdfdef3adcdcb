//! `smshook send` and `smshook sign`: make webhooks exactly as a provider
//! would — a realistic sample with fresh ids, signed the provider's way — to
//! test a receiver (this one or any other) without the provider; and
//! `smshook keypair`, the keys to do that for a provider that signs with a
//! private key of its own: Ed25519 for Telnyx, RSA for Amazon SNS.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::providers::{self, Provider, SampleIds};
use crate::signature::ed25519::KeyPair;
use crate::tls_client::{Verify, client_config};

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Provider whose webhook to imitate.
    provider: String,
    /// Provider event type, e.g. sms.delivered (see the error for the list).
    event_type: String,
    /// Webhook URL, e.g. http://127.0.0.1:8080/webhooks/integify.
    #[arg(long)]
    url: String,
    /// Secret to sign with (for telnyx, a private key from `smshook keypair`;
    /// for twilio, twilio-events and plivo, the Auth Token; for bandwidth,
    /// the callback credentials as user:password; for sinch-sms, those
    /// credentials, or else the HMAC secret; for telesign, the API key,
    /// base64; for aws-sns, the file of an RSA private key in PEM, from
    /// `smshook keypair aws-sns`).
    #[arg(long, env = "SMSHOOK_SEND_SECRET", hide_env_values = true)]
    secret: String,
    /// The URL a provider that signs its URL (twilio, twilio-events, bird, plivo) is registered with,
    /// query included, where it is not --url (a proxy in between, say): the
    /// source's public_url. Default: --url.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Send this file's bytes instead of a generated sample.
    #[arg(long)]
    body: Option<PathBuf>,
    /// PEM certificate(s) to trust for an https:// URL, such as a
    /// self-signed server's own; without it, the system's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Send a GET, its parameters in the query: as Vonage's SMS API does
    /// unless its dashboard says otherwise (signed in the query), or Plivo
    /// where a callback's method is GET (vonage-sms, plivo).
    #[arg(long)]
    get: bool,
    /// Sign as a Twilio Webhook Rule does with a SharedKey: HMAC-SHA256
    /// under --secret (the SharedKey's secret), naming this SharedKey SID in
    /// X-Twilio-Webhooks-Signature-Settings (twilio only).
    #[arg(long, value_name = "SID")]
    shared_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    provider: String,
    /// Secret to sign with (for telnyx, a private key from `smshook keypair`;
    /// for bandwidth, the callback credentials as user:password; for
    /// sinch-sms, those credentials, or else the HMAC secret; for telesign,
    /// the API key, base64; for aws-sns, the file of an RSA private key in
    /// PEM: the message on stdin is printed signed).
    #[arg(long, env = "SMSHOOK_SEND_SECRET", hide_env_values = true)]
    secret: String,
    /// The URL the webhook is posted to, as registered with the provider,
    /// query included: twilio, twilio-events and bird sign it with the body,
    /// plivo without its query, with a nonce.
    #[arg(long)]
    url: Option<String>,
    /// Sign as a Twilio Webhook Rule does with a SharedKey: HMAC-SHA256
    /// under --secret (the SharedKey's secret), naming this SharedKey SID in
    /// X-Twilio-Webhooks-Signature-Settings (twilio only).
    #[arg(long, value_name = "SID")]
    shared_key: Option<String>,
}

/// The provider named `name`; `shared_key` only for one that signs with
/// SharedKeys (Twilio).
fn provider(name: &str, shared_key: Option<&str>) -> Result<&'static Provider> {
    let provider = providers::find(name)
        .with_context(|| format!("unknown provider {name:?} (known: {})", providers::names()))?;
    if shared_key.is_some() && provider.scheme != providers::Scheme::SignedUrl {
        bail!("--shared-key: {name} does not sign with SharedKeys (twilio does)");
    }
    Ok(provider)
}

/// A provider's sample payload for `event_type`, as the provider sends it:
/// compact JSON, or a form.
pub fn sample_body(provider: &Provider, event_type: &str, ids: &SampleIds) -> Result<Vec<u8>> {
    if !provider.event_types.contains(&event_type) {
        bail!(
            "{} has no sample for {event_type:?} (known: {})",
            provider.name,
            provider.event_types.join(", ")
        );
    }
    Ok(provider.encode(&(provider.sample)(event_type, ids)))
}

pub async fn send(args: &SendArgs) -> Result<ExitCode> {
    let provider = provider(&args.provider, args.shared_key.as_deref())?;
    let body = match &args.body {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => sample_body(provider, &args.event_type, &SampleIds::fresh())?,
    };
    let request = if args.get {
        get_request(args, provider, &body)?
    } else {
        post_request(args, provider, &body)?
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("sending to {}", args.url))?;
    let status = response.status();
    println!("{status}");
    println!("{}", response.text().await.unwrap_or_default());
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `body`, signed as `provider` signs, POSTed to `--url`.
fn post_request(
    args: &SendArgs,
    provider: &Provider,
    body: &[u8],
) -> Result<reqwest::RequestBuilder> {
    let body = signed_body(provider, &args.secret, body)?;
    // Twilio names a JSON body by its hash in the query it signs.
    let url = provider.url_for(&args.url, &body);
    let mut request = client(args.ca.as_deref())?
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, provider.content_type());
    let signed_for = provider.url_for(args.public_url.as_ref().unwrap_or(&args.url), &body);
    let key = (args.secret.as_str(), args.shared_key.as_deref());
    for (name, value) in signed(provider, key, &body, Some(&signed_for))? {
        request = request.header(name, value);
    }
    Ok(request.body(body))
}

/// `body`'s parameters as the query of a GET to `--url`: signed among them
/// (Vonage's SMS API), or beside them in headers (Plivo, which signs the
/// URL without its query).
fn get_request(
    args: &SendArgs,
    provider: &Provider,
    body: &[u8],
) -> Result<reqwest::RequestBuilder> {
    if !provider.takes_get() {
        bail!("--get: {} does not send webhooks as GET", provider.name);
    }
    let (params, _) = crate::signature::vonage_sms::params(None, body)
        .map_err(|e| anyhow::anyhow!("the body cannot be sent as a query: {e}"))?;
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(&params);
    let query = signed_body(provider, &args.secret, form.finish().as_bytes())?;
    let query = String::from_utf8_lossy(&query);
    let joiner = if args.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{joiner}{query}", args.url);
    let mut request = client(args.ca.as_deref())?.get(url);
    if !provider.signs_in_body() {
        let signed_for = args.public_url.as_ref().unwrap_or(&args.url);
        let key = (args.secret.as_str(), args.shared_key.as_deref());
        for (name, value) in signed(provider, key, b"", Some(signed_for))? {
            request = request.header(name, value);
        }
    }
    Ok(request)
}

/// An HTTP client trusting the system's roots, or `ca`'s certificates: the
/// same rustls settings as `bench` (`tls_client`).
fn client(ca: Option<&std::path::Path>) -> Result<reqwest::Client> {
    let roots = ca.map(|path| (path.display().to_string(), "--ca"));
    let tls = client_config(Verify::Roots(roots))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .context("building the HTTP client")
}

pub fn sign(args: &SignArgs) -> Result<ExitCode> {
    let provider = provider(&args.provider, args.shared_key.as_deref())?;
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("reading the body from stdin")?;
    if provider.signs_in_body() {
        // The signature is a parameter: the body, signed, is the answer.
        let signed = signed_body(provider, &args.secret, &body)?;
        println!("{}", String::from_utf8_lossy(&signed));
        return Ok(ExitCode::SUCCESS);
    }
    let url = args.url.as_deref().map(|url| provider.url_for(url, &body));
    if let Some(url) = url.as_deref().filter(|&u| Some(u) != args.url.as_deref()) {
        eprintln!("# post it to {url}: the signature covers the body's hash in the query");
    }
    let key = (args.secret.as_str(), args.shared_key.as_deref());
    for (name, value) in signed(provider, key, &body, url.as_deref())? {
        println!("{}: {value}", header_name(name));
    }
    Ok(ExitCode::SUCCESS)
}

/// `body` with what `provider` signs inside it (Vonage's SMS API: its
/// `timestamp` and `sig`), now; any other body as it is.
fn signed_body(provider: &Provider, secret: &str, body: &[u8]) -> Result<Vec<u8>> {
    let now = chrono::Utc::now().timestamp();
    let key;
    let secret = if provider.scheme == providers::Scheme::SnsCertificate {
        key = std::fs::read_to_string(secret)
            .with_context(|| format!("--secret: reading the private key {secret}"))?;
        key.as_str()
    } else {
        secret
    };
    provider
        .sign_body(secret, body, now)
        .map_err(|e| anyhow::anyhow!("the body cannot be signed as {}: {e}", provider.name))
}

/// The headers `provider` signs `body` in, now, posted to `url`, under
/// `secret`: for Twilio, the secret of the SharedKey `shared_key` if given.
fn signed(
    provider: &Provider,
    (secret, shared_key): (&str, Option<&str>),
    body: &[u8],
    url: Option<&str>,
) -> Result<Vec<(&'static str, String)>> {
    let url = match url {
        Some(url) => url,
        None if provider.signs_url() => bail!(
            "{} signs the URL it posts to: give it with --url",
            provider.name
        ),
        None => "",
    };
    if let Some(sid) = shared_key {
        return Ok(crate::signature::twilio::sign_shared(sid, secret, url, body).to_vec());
    }
    let now = chrono::Utc::now().timestamp();
    provider
        .sign(secret, body, now, url)
        .map_err(|e| anyhow::anyhow!("--secret: {e}"))
}

#[derive(Debug, Args)]
pub struct KeypairArgs {
    /// The provider whose signatures to imitate: telnyx or aws-sns.
    #[arg(default_value = "telnyx")]
    provider: String,
}

/// `smshook keypair`: a fresh key pair, to try a source without its
/// provider. Telnyx and Amazon SNS sign with their own private keys; yours
/// signs only what `smshook send` makes.
pub fn keypair(args: &KeypairArgs) -> Result<ExitCode> {
    match args.provider.as_str() {
        "telnyx" => Ok(ed25519_keypair()),
        "aws-sns" => rsa_keypair(),
        other => bail!(
            "{other:?}: keypair makes keys for telnyx (Ed25519) and aws-sns (RSA); the others sign with a shared secret"
        ),
    }
}

/// An RSA key pair, in PEM, for an Amazon SNS source that pins the public
/// key (`signing_certificates`).
fn rsa_keypair() -> Result<ExitCode> {
    use crate::signature::sns;
    let private = sns::new_private_key().map_err(anyhow::Error::msg)?;
    let public = sns::public_key_pem(&private).map_err(anyhow::Error::msg)?;
    println!("# Save the public key to a file and name it in the aws-sns source's");
    println!("# signing_certificates; save the private key to another, which signs test");
    println!("# messages: smshook send aws-sns ... --secret <private key file>.");
    println!("# A real SNS source pins nothing (SNS's certificates are fetched) or SNS's own.");
    print!("{public}{private}");
    Ok(ExitCode::SUCCESS)
}

fn ed25519_keypair() -> ExitCode {
    let (private, public) = KeyPair::generate();
    println!("# The public key goes in the source's secrets (or SMSHOOK_TELNYX_PUBLIC_KEY);");
    println!(
        "# the private key signs test webhooks: smshook send telnyx ... --secret <private key>."
    );
    println!("# A real Telnyx source takes the public key from Telnyx's portal instead.");
    println!("public_key = \"{public}\"");
    println!("private_key = \"{private}\"");
    ExitCode::SUCCESS
}

/// `x-integify-signature` → `X-Integify-Signature`, as documented.
pub(super) fn header_name(lower: &str) -> String {
    let special = [
        ("textus", "TextUs"),
        ("msgine", "MsGine"),
        ("messagebird", "MessageBird"),
        ("ts", "TS"),
    ];
    lower
        .split('-')
        .map(|part| {
            if let Some((_, s)) = special.iter().find(|(k, _)| *k == part) {
                return s.to_string();
            }
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_read_as_documented() {
        assert_eq!(header_name("telnyx-timestamp"), "Telnyx-Timestamp");
        assert_eq!(header_name("x-textus-signature"), "X-TextUs-Signature");
        assert_eq!(header_name("x-webhook-signature"), "X-Webhook-Signature");
    }

    #[test]
    fn unknown_sample_type_lists_known_ones() {
        let e = sample_body(
            &providers::msgine::PROVIDER,
            "message.read",
            &SampleIds::fresh(),
        )
        .expect_err("no sample");
        assert!(e.to_string().contains("message.delivered"));
    }
}
