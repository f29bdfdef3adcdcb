//! The web console: its page, script and style are served under a policy
//! that lets nothing else run, every element its script looks up is on the
//! page, and every API call it makes is documented and answers what it
//! reads.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{TOKEN, TestApp, TestOptions};

const PAGE: &str = include_str!("../../src/http/console/index.html");
const SCRIPT: &str = include_str!("../../src/http/console/app.js");
const SPEC: &str = include_str!("../../docs/openapi.json");

#[tokio::test]
async fn the_console_is_served_under_a_policy_that_runs_only_its_own_script() {
    let app = TestApp::spawn_with(TestOptions {
        api_token: None,
        ..Default::default()
    })
    .await;
    let assets = [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
        ("/console/icon.svg", "image/svg+xml"),
    ];
    for (path, kind) in assets {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}, with the API off too");
        let headers = response.headers();
        assert!(
            headers["content-type"]
                .to_str()
                .expect("text")
                .starts_with(kind),
            "{path}"
        );
        assert_eq!(
            headers["content-security-policy"],
            smshook::http::console::POLICY
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let policy = smshook::http::console::POLICY;
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe"),
        "{policy}"
    );
    assert_eq!(app.get("/console").await.text().await.expect("page"), PAGE);
    // The policy would block anything inline: there is none.
    assert!(!PAGE.contains("<style") && !PAGE.contains(" style="));
    let handlers = PAGE
        .split_whitespace()
        .filter(|word| word.starts_with("on") && word.contains('='));
    assert_eq!(handlers.count(), 0, "no inline event handlers");
    assert_eq!(PAGE.matches("<script").count(), 1);
    assert!(PAGE.contains(r#"<script src="console/app.js" defer></script>"#));
    assert!(
        !SCRIPT.contains("innerHTML") && !SCRIPT.contains("eval("),
        "textContent only"
    );

    let root = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url("/"))
        .send()
        .await
        .expect("send");
    assert_eq!(root.status(), 303);
    assert_eq!(
        root.headers()["location"],
        "console",
        "relative, for a proxy's path"
    );
    app.stop().await;
}

/// The ids the script looks up: `$('…')`, and each listing's form, rows
/// and "more" button.
fn script_ids() -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = SCRIPT
        .split("$('")
        .skip(1)
        .map(|rest| rest.split('\'').next().expect("an id").to_string())
        .collect();
    for listing in ["events", "requests", "optouts", "deliveries"] {
        for part in ["filter", "more", "rows"] {
            ids.insert(format!("{listing}-{part}"));
        }
    }
    ids
}

#[test]
fn every_element_the_script_looks_up_is_on_the_page() {
    let ids = script_ids();
    assert!(ids.len() > 15, "{ids:?}");
    for id in ids {
        assert!(PAGE.contains(&format!(r#"id="{id}""#)), "no element #{id}");
    }
    for view in [
        "events",
        "requests",
        "stats",
        "optouts",
        "deliveries",
        "sources",
    ] {
        assert!(PAGE.contains(&format!(r#"<section id="{view}" class="view""#)));
        assert!(PAGE.contains(&format!(r##"href="#{view}" data-view="{view}""##)));
    }
}

/// The API paths the script calls: in a string or template, `api/` (a
/// path relative to the page's) and what follows up to a quote, `?` or `$`
/// (comments left out).
fn script_paths() -> BTreeSet<String> {
    let code: String = SCRIPT
        .lines()
        .filter(|line| !["//", "/*", "*"].iter().any(|c| line.trim().starts_with(c)))
        .collect::<Vec<_>>()
        .join("\n");
    let after = |quote| code.split(quote).skip(1);
    assert!(
        !SCRIPT.contains("'/api") && !SCRIPT.contains("`/api"),
        "relative paths only"
    );
    after("`api/")
        .chain(after("'api/"))
        .filter_map(|rest| {
            let end = rest.find(['`', '\'', '?', '$'])?;
            Some(format!("/api/{}", &rest[..end]))
        })
        .collect()
}

#[tokio::test]
async fn every_api_call_of_the_console_is_documented_and_answers_what_it_reads() {
    let spec: Value = serde_json::from_str(SPEC).expect("json");
    let documented: Vec<&String> = spec["paths"].as_object().expect("paths").keys().collect();
    let paths = script_paths();
    assert!(paths.len() >= 6, "{paths:?}");
    for path in &paths {
        let templated = path.ends_with('/');
        let found = documented.iter().any(|d| {
            *d == path
                || (templated && d.starts_with(path.as_str()) && d[path.len()..].starts_with('{'))
        });
        assert!(found, "{path} is not in docs/openapi.json");
    }

    let app = TestApp::spawn().await;
    let integify = crate::support::provider("integify");
    app.send_sample(integify, "sms.delivered").await;
    let (_, status, stop) = app.send_sample(integify, "sms.received").await;
    assert_eq!(status, 200);
    let stop = app.event_answered(&stop).await;
    assert_eq!(stop["opt_out"], true, "the sample is a STOP");
    // Each listing as the console asks for it, with what it reads.
    let calls = [
        ("/api/events?order=desc&limit=50", &["events", "next"][..]),
        (
            "/api/requests?order=desc&limit=100&refused=true",
            &["requests", "next"],
        ),
        ("/api/stats", &["since", "events", "requests", "outcomes"]),
        (
            "/api/deliveries?state=dead&limit=100",
            &["deliveries", "next"],
        ),
    ];
    for (call, keys) in calls {
        let (status, answer) = app.api(call).await;
        assert_eq!(status, 200, "{call}: {answer}");
        for key in keys {
            assert!(answer.get(key).is_some(), "{call}: no {key} in {answer}");
        }
    }
    let (_, events) = app.api("/api/events?order=desc&limit=50").await;
    let event = &events["events"][0];
    for field in [
        "id",
        "received_at",
        "source",
        "type",
        "from",
        "to",
        "body",
        "payload",
    ] {
        assert!(event.get(field).is_some(), "an event's {field}");
    }
    let (_, sources) = app.api("/api/sources").await;
    for field in [
        "name",
        "provider",
        "path",
        "methods",
        "credentials",
        "credential_kind",
    ] {
        assert!(
            sources["sources"][0].get(field).is_some(),
            "a source's {field}"
        );
    }
    let (_, optouts) = app.api("/api/optouts?limit=100").await;
    let optout = &optouts["optouts"][0];
    for field in ["number", "source", "changed_at", "event_id"] {
        assert!(
            optout.get(field).is_some(),
            "an opt-out's {field}: {optouts}"
        );
    }
    let number = stop["from"].as_str().expect("from").replace('+', "%2B");
    let (status, checked) = app.api(&format!("/api/optouts/{number}")).await;
    assert_eq!((status, &checked["opted_out"]), (200, &Value::Bool(true)));
    let stream = app
        .client
        .get(app.url("/api/stream?type=message.delivered"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .expect("text")
            .starts_with("text/event-stream")
    );
    drop(stream);
    app.stop().await;
}
