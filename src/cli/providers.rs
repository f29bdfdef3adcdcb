//! `smshook providers`: every provider smshook understands, what it signs,
//! what its source takes as a secret (and the variable that gives one
//! without a config file), whether the source names its public URL, and
//! the samples `smshook send` makes: the README's provider table, in the
//! terminal.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::providers::{ALL, Ack, Format, Provider, Scheme};

#[derive(Debug, Args)]
pub struct ProvidersArgs {
    /// One JSON object per provider, in an array.
    #[arg(long)]
    json: bool,
}

pub fn providers(args: &ProvidersArgs) -> Result<ExitCode> {
    if args.json {
        let all: Vec<Value> = ALL.iter().map(|p| describe(p)).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for p in ALL {
            print!("{}", block(p));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One provider, as JSON.
fn describe(p: &Provider) -> Value {
    json!({
        "name": p.name,
        "signature_header": p.signature_header,
        "signs": p.scheme.signs(),
        "secret": p.scheme.secret(),
        "secret_env": p.secret_env_var(),
        "public_url_env": p.signs_url().then(|| p.public_url_env_var()),
        "body": body(p),
        "answer": answer(p),
        "answer_timeout_secs": p.answer_timeout.map(|t| t.as_secs_f64()),
        "send_samples": p.event_types,
    })
}

/// One provider, as a few indented lines.
fn block(p: &Provider) -> String {
    let mut out = format!("{}\n", p.name);
    let header = match (p.signs_in_body(), p.scheme) {
        (true, Scheme::SnsCertificate) => format!("its {} field", p.signature_header),
        (true, _) => format!("its {} parameter", p.signature_header),
        (false, _) => super::send::header_name(p.signature_header),
    };
    out += &format!("  signs      {} ({header})\n", p.scheme.signs());
    out += &format!(
        "  secret     {} ({})\n",
        p.scheme.secret(),
        p.secret_env_var()
    );
    if p.signs_url() {
        let var = p.public_url_env_var();
        out += &format!("  public_url the URL the provider posts to, required ({var})\n");
    }
    let within = p
        .answer_timeout
        .map_or_else(String::new, |t| format!(" within {} s", t.as_secs()));
    out += &format!("  body       {}; answered {}{within}\n", body(p), answer(p));
    out += &format!("  send       {}\n\n", p.event_types.join(", "));
    out
}

fn body(p: &Provider) -> &'static str {
    match p.format {
        Format::Object => "a JSON object",
        Format::Form => "a form",
        Format::Batch => "a JSON array of events",
    }
}

fn answer(p: &Provider) -> &'static str {
    match p.ack {
        Ack::Json => "JSON",
        Ack::EmptyXml => "an empty <Response/>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_says_what_its_source_takes() {
        for p in ALL {
            let text = block(p);
            assert!(text.starts_with(p.name), "{text}");
            assert!(text.contains(&p.secret_env_var()), "{text}");
            assert_eq!(text.contains("public_url"), p.signs_url(), "{text}");
            let json = describe(p);
            assert_eq!(
                json["send_samples"].as_array().map(Vec::len),
                Some(p.event_types.len())
            );
        }
        let bird = describe(&crate::providers::bird::PROVIDER);
        assert_eq!(bird["public_url_env"], "SMSHOOK_BIRD_PUBLIC_URL");
        assert_eq!(bird["secret"], "the webhook subscription's signing key");
    }
}
