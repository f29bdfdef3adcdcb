//! The URL a provider that signs its URL posts to (Twilio, Bird), as a
//! source names it (`public_url`). smshook cannot rebuild it from the
//! request behind a reverse proxy or a TLS terminator, so a source of such a
//! provider must name it; the query each request carries is appended.

/// The URL a source is registered at with its provider, as the provider
/// signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// As configured, for messages.
    pub text: String,
    /// Without a port, and with one (the scheme's default where it names
    /// none): Twilio signs one or the other.
    pub(super) without_port: String,
    pub(super) with_port: String,
}

impl PublicUrl {
    /// Reads a configured URL: `http://` or `https://`, a host, and neither
    /// query, fragment nor credentials (the error says why each is left out).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{text:?}: give the http:// or https:// URL the provider posts to"
            ));
        }
        if url.query().is_some() {
            return Err(format!(
                "{text:?}: leave the query out; smshook appends the one each webhook's request carries"
            ));
        }
        if url.fragment().is_some() {
            return Err(format!(
                "{text:?}: leave the #fragment (Twilio's connection overrides, say) out; providers neither send nor sign it"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{text:?}: leave user:password@ out; providers do not sign it"
            ));
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?}: write it as scheme://host/path"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = split_port(authority);
        let port = port.map_or_else(|| default_port(scheme), str::to_string);
        Ok(Self {
            text: text.to_string(),
            without_port: format!("{scheme}://{host}{path}"),
            with_port: format!("{scheme}://{host}:{port}{path}"),
        })
    }

    /// The URL as configured with the request's `query`, if it carries one.
    pub fn with_query(&self, query: Option<&str>) -> String {
        match query.filter(|q| !q.is_empty()) {
            Some(query) => format!("{}?{query}", self.text),
            None => self.text.clone(),
        }
    }
}

/// `host[:port]` as host and port; an IPv6 host keeps its brackets.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let host_end = if authority.starts_with('[') {
        authority.find(']').map_or(authority.len(), |i| i + 1)
    } else {
        authority.rfind(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    (host, rest.strip_prefix(':').filter(|p| !p.is_empty()))
}

fn default_port(scheme: &str) -> String {
    if scheme.eq_ignore_ascii_case("https") {
        "443".into()
    } else {
        "80".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_is_what_the_provider_is_given() {
        for (bad, says) in [
            ("hooks.example.com/webhooks/twilio", "not a URL"),
            ("ftp://hooks.example.com/x", "http:// or https://"),
            (
                "https://hooks.example.com/x?tenant=1",
                "leave the query out",
            ),
            ("https://hooks.example.com/x#rc=3", "connection overrides"),
            ("https://u:p@hooks.example.com/x", "user:password@"),
        ] {
            let e = PublicUrl::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_query_a_request_carries_is_appended() {
        let url = PublicUrl::parse(" https://hooks.example.com/webhooks/bird ").expect("a URL");
        assert_eq!(
            url.with_query(None),
            "https://hooks.example.com/webhooks/bird"
        );
        assert_eq!(
            url.with_query(Some("")),
            "https://hooks.example.com/webhooks/bird"
        );
        assert_eq!(
            url.with_query(Some("tenant=1")),
            "https://hooks.example.com/webhooks/bird?tenant=1"
        );
    }
}
