//! The configured sources as the webhook handler sees them, replaceable
//! while serving: a reload (SIGHUP, or a changed secret file) gives running
//! sources their new secrets (and allowed addresses, and public URL)
//! without a restart, so a secret can be rotated with no gap in which a
//! provider's webhooks are refused.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, Source};
use crate::snapshot::{Reload, Snapshot};

/// What the query API says of a source (`GET /api/sources`): how a
/// provider is to be set up to post to it, never a secret.
pub fn describe(source: &Source) -> serde_json::Value {
    let methods: &[&str] = if source.provider.takes_get() {
        &["GET", "POST"]
    } else {
        &["POST"]
    };
    let certificates = source
        .certificates
        .as_ref()
        .map(|c| if c.is_pinned() { "pinned" } else { "fetched" });
    serde_json::json!({
        "name": source.name,
        "provider": source.provider.name,
        "path": format!("/webhooks/{}", source.name),
        "methods": methods,
        "credentials": source.secrets.len(),
        "credential_kind": source.provider.secret_noun(),
        "allowed_ips": source.allowed.as_ref().map(ToString::to_string),
        "public_url": source.public_url.as_ref().map(|u| u.text.clone()),
        "certificates": certificates,
    })
}

/// Sources by name, as they appear in `/webhooks/<name>`.
pub struct Sources(Snapshot<HashMap<String, Source>>);

impl Sources {
    pub fn new(sources: &[Source]) -> Self {
        let map = sources
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect();
        Self(Snapshot::new(map))
    }

    /// The sources now. A request keeps the snapshot it took: a reload
    /// meanwhile applies from the next request on.
    pub fn current(&self) -> Arc<HashMap<String, Source>> {
        self.0.current()
    }

    /// Gives each source the secrets, `allowed_ips`, `public_url` and
    /// pinned certificates `config` has for the source of the same name and provider. Sources added, removed or
    /// given another provider need a restart (the metrics and the routes
    /// are set up for the sources at start-up).
    pub fn reload(&self, config: &Config) -> Reload {
        let mut map = (*self.current()).clone();
        let mut reload = Reload::default();
        for new in &config.sources {
            match map.get_mut(&new.name) {
                Some(old) if old.provider.name == new.provider.name => {
                    // What verifies a webhook reloads together: a
                    // `public_url` moves with the host, as a secret rotates.
                    // An SNS source that fetches keeps its certificates
                    // (and what it fetched): they compare equal.
                    if old.secrets != new.secrets
                        || old.allowed != new.allowed
                        || old.public_url != new.public_url
                        || old.certificates != new.certificates
                    {
                        old.secrets = new.secrets.clone();
                        old.allowed = new.allowed.clone();
                        old.public_url = new.public_url.clone();
                        old.certificates = new.certificates.clone();
                        reload.changed.push((new.name.clone(), new.secrets.len()));
                    }
                }
                _ => reload.need_restart.push(new.name.clone()),
            }
        }
        for name in map.keys() {
            if !config.sources.iter().any(|s| &s.name == name) {
                reload.need_restart.push(name.clone());
            }
        }
        self.0.replace(map);
        reload.sorted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Secret;

    fn source(name: &str, provider: &str, secrets: &[&str]) -> Source {
        Source {
            name: name.into(),
            provider: crate::providers::find(provider).expect("provider"),
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            allowed: None,
            public_url: None,
            certificates: None,
        }
    }

    fn config(sources: Vec<Source>) -> Config {
        let mut config = Config::load(&crate::config::Overrides {
            config_file: None,
            listen: None,
            database: None,
            env: &|_| None,
        })
        .expect("defaults");
        config.sources = sources;
        config
    }

    #[test]
    fn new_secrets_apply_to_the_next_request_and_other_changes_wait() {
        let sources = Sources::new(&[
            source("ig", "integify", &["old"]),
            source("tx", "textus", &["t"]),
        ]);
        let before = sources.current();
        let reload = sources.reload(&config(vec![
            source("ig", "integify", &["old", "new"]),
            source("tx", "msgine", &["t"]),
            source("added", "notifly", &["n"]),
        ]));
        assert_eq!(
            reload,
            Reload {
                changed: vec![("ig".into(), 2)],
                need_restart: vec!["added".into(), "tx".into()],
            }
        );
        let now = sources.current();
        assert_eq!(now["ig"].secrets, [Secret::new("old"), Secret::new("new")]);
        assert_eq!(now["tx"].provider.name, "textus", "kept until a restart");
        assert!(!now.contains_key("added"));
        assert_eq!(
            before["ig"].secrets.len(),
            1,
            "a snapshot taken before stays"
        );

        let removed = sources.reload(&config(vec![source("ig", "integify", &["new"])]));
        assert_eq!(removed.need_restart, ["tx"]);
        assert_eq!(sources.current()["ig"].secrets, [Secret::new("new")]);
        assert_eq!(
            sources
                .reload(&config(vec![source("ig", "integify", &["new"])]))
                .changed,
            []
        );
    }

    #[test]
    fn allowed_addresses_reload_like_secrets() {
        let sources = Sources::new(&[source("mg", "msgine", &["s"])]);
        let ip = |text: &str| Some(text.parse().expect("an address"));
        assert!(sources.current()["mg"].admits(ip("198.51.100.1")));

        let mut limited = source("mg", "msgine", &["s"]);
        limited.allowed = Some(crate::http::Networks::parse(&["52.89.214.238"]).expect("ok"));
        let reload = sources.reload(&config(vec![limited.clone()]));
        assert_eq!(reload.changed, vec![("mg".to_string(), 1)]);
        let now = sources.current();
        assert!(!now["mg"].admits(ip("198.51.100.1")));
        assert!(now["mg"].admits(ip("52.89.214.238")));
        assert!(!now["mg"].admits(None), "an unknown address is refused");

        assert_eq!(sources.reload(&config(vec![limited])).changed, []);
        let open = sources.reload(&config(vec![source("mg", "msgine", &["s"])]));
        assert_eq!(open.changed.len(), 1);
        assert!(sources.current()["mg"].admits(ip("198.51.100.1")));
    }

    /// A Twilio source moved to another host keeps taking webhooks signed
    /// for the new URL from the next request on.
    #[test]
    fn a_public_url_reloads_like_secrets() {
        use crate::signature::public_url::PublicUrl;
        let at = |url: &str| {
            let mut s = source("tw", "twilio", &["token"]);
            s.public_url = Some(PublicUrl::parse(url).expect("a URL"));
            s
        };
        let sources = Sources::new(&[at("https://old.example/webhooks/tw")]);
        let reload = sources.reload(&config(vec![at("https://new.example/webhooks/tw")]));
        assert_eq!(reload.changed, vec![("tw".to_string(), 1)]);
        let now = sources.current();
        let url = now["tw"].public_url.as_ref().map(|u| u.text.as_str());
        assert_eq!(url, Some("https://new.example/webhooks/tw"));
    }
}
