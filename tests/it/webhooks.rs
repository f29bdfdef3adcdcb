//! Every answer of `POST /webhooks/<source>`, for every provider, over HTTP.

use serde_json::{Value, json};
use smshook::providers::{self, SampleIds};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    Backend, PUBLIC_URL, TestApp, TestOptions, answer_json, old_secret_for, provider, sample_bytes,
    secret_for, sent_payload, vonage_part, wrong_secret_for,
};

crate::on_both_backends!(
    every_provider_and_type_is_accepted_normalized_and_kept_verbatim,
    normalized_fields_per_provider,
    unknown_fields_and_types_are_stored_and_answered_200,
    bad_signatures_are_401_for_every_provider,
    rotated_secrets_both_verify_and_case_is_ignored,
    malformed_json_is_400_after_a_valid_signature,
    oversize_bodies_are_413_with_or_without_content_length,
    unknown_source_is_404_and_other_methods_405,
    a_retry_is_stored_once_and_answered_with_the_original_id,
    every_providers_retries_are_stored_once,
    textus_payload_without_an_id_is_deduplicated_by_body_hash,
    sixty_four_simultaneous_copies_store_one_row,
    a_nul_character_in_any_field_is_stored_on_every_backend,
    a_nul_in_an_unknown_source_name_is_logged_and_breaks_nothing,
    unusual_but_valid_json_is_stored_verbatim,
    telnyx_timestamps_are_signed_and_must_be_recent,
    a_telnyx_retry_with_its_next_attempt_number_is_a_duplicate,
    vonage_tokens_bind_the_body_and_an_unsigned_webhook_is_retried,
    twilio_signs_its_public_url_and_is_answered_in_twiml,
    twilio_json_bodies_are_bound_by_their_hash,
    twilio_webhook_rules_sign_with_a_shared_key,
    twilio_event_streams_batches_are_stored_event_by_event,
    twilio_conversations_updates_are_events_of_their_own,
    bandwidth_callbacks_come_in_batches_with_basic_credentials,
    sinch_signs_the_body_with_a_nonce_and_a_timestamp,
    sinch_sms_reports_each_recipients_status_and_batch_summaries,
    bird_signs_a_timestamp_its_url_and_the_bodys_hash,
    telesign_signs_with_its_api_key_and_reports_by_status_code,
    plivo_signs_its_url_and_a_nonce_under_either_accounts_token,
    aws_sns_messages_are_verified_by_topic_and_awss_key,
    an_sns_certificate_that_cannot_be_fetched_is_a_503_to_retry,
    vonage_sms_is_signed_in_its_parameters_however_sent,
    vonage_sms_refuses_what_its_secret_did_not_sign,
    vonage_sms_long_messages_are_joined_once_every_part_is_in,
);

async fn every_provider_and_type_is_accepted_normalized_and_kept_verbatim(backend: Backend) {
    let app = TestApp::on(backend).await;
    for p in providers::ALL {
        for t in p.event_types {
            let (body, status, answer) = app.send_sample(p, t).await;
            assert_eq!(status, 200, "{} {t}: {answer}", p.name);
            assert_eq!(answer["ok"], true);
            assert_eq!(answer["duplicate"], false);
            let id = answer["event_id"].as_str().expect("event_id");
            let (status, event) = app.api(&format!("/api/events/{id}")).await;
            assert_eq!(status, 200);
            assert_eq!(event["source"], p.name);
            assert_eq!(event["provider"], p.name);
            assert_eq!(event["provider_type"], *t);
            assert_eq!(
                event["payload"],
                sent_payload(p, &body),
                "payload is the original"
            );
            for field in [
                "provider_event_id",
                "message_id",
                "from",
                "to",
                "body",
                "status",
                "error_code",
                "error_reason",
                "occurred_at",
            ] {
                assert!(
                    event.get(field).is_some(),
                    "{field} present (null if absent)"
                );
            }
        }
    }
    app.stop().await;
}

async fn normalized_fields_per_provider(backend: Backend) {
    let app = TestApp::on(backend).await;
    let cases = [
        ("integify", "sms.failed", "message.failed"),
        ("integify", "DELIVERY_REPORT", "message.delivered"),
        ("msgine", "message.sent", "message.sent"),
        ("textus", "message.received", "message.received"),
        ("textus", "contact.opted_out", "contact.opted_out"),
        ("private-number", "sms.received", "message.received"),
        ("notifly", "conversation.updated", "conversation.updated"),
        ("telnyx", "message.finalized", "message.delivered"),
        ("telnyx", "message.received", "message.received"),
    ];
    for (name, provider_type, normalized) in cases {
        let (_, status, answer) = app.send_sample(provider(name), provider_type).await;
        assert_eq!(status, 200);
        let event = app.event_answered(&answer).await;
        assert_eq!(event["type"], normalized, "{name} {provider_type}");
    }
    let failed = &app.events("type=message.failed&source=integify").await[0];
    assert_eq!(failed["error_code"], "30003");
    assert!(
        failed["message_id"]
            .as_str()
            .is_some_and(|m| m.starts_with("msg_"))
    );
    let inbound = &app.events("source=private-number").await[0];
    assert_eq!(inbound["from"], "+14155551234");
    assert_eq!(inbound["body"], "Hello, this is a test message");
    let telnyx = &app.events("source=telnyx&type=message.received").await[0];
    assert_eq!(telnyx["from"], "+13125550123");
    assert_eq!(telnyx["to"], "+18445550001");
    assert_eq!(telnyx["body"], "Is my order on its way?");
    let opt_out = &app.events("type=contact.opted_out").await[0];
    assert_eq!(opt_out["from"], "+13035551234");
    app.stop().await;
}

async fn unknown_fields_and_types_are_stored_and_answered_200(backend: Backend) {
    let app = TestApp::on(backend).await;
    let body = br#"{"id":"evt_new_1","type":"sms.clicked","data":{"link":"https://x.test","shiny":[1,2]},"extra":true}"#;
    let (status, answer) = app.send_body(provider("integify"), body).await;
    assert_eq!(status, 200, "{answer}");
    let event = app.event_answered(&answer).await;
    assert_eq!(event["type"], "sms.clicked");
    assert_eq!(event["payload"]["data"]["shiny"], json!([1, 2]));
    assert_eq!(event["payload"]["extra"], true);

    // Every provider: its sample with a type it never documented and a
    // field it never sent, wherever its type field is.
    for p in providers::ALL {
        let mut body = (p.sample)(p.event_types[0], &SampleIds::fresh());
        // Sinch names a callback's trigger by the key that holds it, or by
        // a `trigger` field, which wins.
        if p.name == "sinch" {
            body["trigger"] = json!("");
        }
        // Telesign names none: a report's `sub_resource` stands for one
        // where its status code means nothing smshook knows.
        if p.name == "telesign" {
            (body["sub_resource"], body["status"]["code"]) = (json!(""), json!(1));
        }
        // Amazon SNS's is the carried message's `eventType`, in a string.
        if p.name == "aws-sns" {
            body = (p.sample)("TEXT_DELIVERED", &SampleIds::fresh());
            let carried = body["Message"].as_str().expect("a message");
            let mut message: Value = serde_json::from_str(carried).expect("json");
            message["eventType"] = json!("x.never_seen");
            body["Message"] = json!(message.to_string());
        }
        let key = [
            "/sub_resource",
            "/type",
            "/event",
            "/action",
            "/data/event_type",
            "/status",
            "/MessageStatus",
            "/Status",
            "/trigger",
        ]
        .into_iter()
        .find(|k| body.pointer(k).is_some());
        match key {
            Some(key) => *body.pointer_mut(key).expect("type field") = json!("x.never_seen"),
            None => assert_eq!(p.name, "aws-sns", "no type field in its sample"),
        }
        // A form's parameters are strings, and so are Vonage SMS API's.
        let extra = if p.signs_url() || p.signs_in_body() {
            json!("a parameter never sent before")
        } else {
            json!({"nested": [1, 2]})
        };
        body["unknown_extra"] = extra.clone();
        let body = p.encode(&body);
        let (status, answer) = app.send_body(p, &body).await;
        assert_eq!(status, 200, "{}: {answer}", p.name);
        let id = answer["event_id"].as_str().expect("id");
        let (_, event) = app.api(&format!("/api/events/{id}")).await;
        assert_eq!(event["provider_type"], "x.never_seen", "{}", p.name);
        assert_eq!(event["type"], "x.never_seen", "{}: kept as sent", p.name);
        assert_eq!(event["payload"]["unknown_extra"], extra);
    }
    app.stop().await;
}

/// GSM 03.38 codes `@` as 0x00, and some gateways pass it on as `\u0000`.
/// PostgreSQL's `text` cannot hold that character: it would refuse the row,
/// and the provider would retry a 503 until it gave up. The normalized
/// fields carry U+FFFD instead, on every backend alike; the payload keeps
/// the `\u0000` as sent. A retry of the event is still recognised.
async fn a_nul_character_in_any_field_is_stored_on_every_backend(backend: Backend) {
    let app = TestApp::on(backend).await;
    let body = br#"{"id":"evt_\u0000nul","type":"sms.received","created_at":"2026-04-10T12:05:00Z","data":{"message_id":"msg_\u0000","from":"+220\u00007654321","to":"+2203001234","body":"Meet me \u0000 the station"}}"#;
    let (status, answer) = app.send_body(provider("integify"), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicate"], false);
    let id = answer["event_id"].as_str().expect("id");
    let (_, event) = app.api(&format!("/api/events/{id}")).await;
    assert_eq!(event["body"], "Meet me \u{fffd} the station");
    assert_eq!(event["from"], "+220\u{fffd}7654321");
    assert_eq!(event["message_id"], "msg_\u{fffd}");
    assert_eq!(event["provider_event_id"], "evt_\u{fffd}nul");
    assert_eq!(
        event["payload"]["data"]["body"],
        "Meet me \u{0} the station"
    );
    let (status, again) = app.send_body(provider("integify"), body).await;
    assert_eq!(
        (status, &again["duplicate"]),
        (200, &json!(true)),
        "{again}"
    );
    assert_eq!(again["event_id"], id);
    app.stop().await;
}

/// Anyone can POST to `/webhooks/%00`: the name goes to the request log,
/// which PostgreSQL writes in the same transaction as the next events. Its
/// NUL is logged as U+FFFD, and the events beside it are stored.
async fn a_nul_in_an_unknown_source_name_is_logged_and_breaks_nothing(backend: Backend) {
    let app = TestApp::on(backend).await;
    let response = app.post_unsigned("/webhooks/%00evil").await;
    assert_eq!(response.status(), 404);
    for _ in 0..3 {
        let (_, status, answer) = app.send_sample(provider("integify"), "sms.delivered").await;
        assert_eq!(status, 200, "{answer}");
    }
    let requests = app.requests().await;
    assert!(
        requests
            .iter()
            .any(|r| r["source"] == "\u{fffd}evil" && r["status"] == 404),
        "{requests:?}"
    );
    app.stop().await;
}

/// JSON that is valid but rare, which each backend must store as sent
/// (PostgreSQL keeps the payload in a `json` column, which checks it again).
async fn unusual_but_valid_json_is_stored_verbatim(backend: Backend) {
    let app = TestApp::on(backend).await;
    let nested = format!("{}1{}", "[".repeat(120), "]".repeat(120));
    let extras = [
        r#""dup":1,"dup":2"#.to_string(),
        r#""nul":"a\u0000b""#.to_string(),
        r#""emoji":"\ud83d\ude00 \u00e9 \/ \b\f\n\r\t""#.to_string(),
        r#""numbers":[1e308,-0,-0.0,123456789012345678901234567890,1E-300]"#.to_string(),
        r#""":"empty key""#.to_string(),
        format!(r#""{}":true"#, "k".repeat(5000)),
        format!(r#""deep":{nested}"#),
        "\r\n\t \"spaced\" \t: \n null \r\n".to_string(),
    ];
    for (i, extra) in extras.iter().enumerate() {
        let body = format!(r#"{{"id":"evt_unusual_{i}","type":"sms.delivered",{extra}}}"#);
        let (status, answer) = app.send_body(provider("integify"), body.as_bytes()).await;
        assert_eq!(status, 200, "{extra}: {answer}");
        let id = answer["event_id"].as_str().expect("id");
        let (_, event) = app.api(&format!("/api/events/{id}")).await;
        let sent: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(event["payload"], sent, "{extra}");
    }
    app.stop().await;
}

async fn bad_signatures_are_401_for_every_provider(backend: Backend) {
    let app = TestApp::on(backend).await;
    for p in providers::ALL {
        let body = sample_bytes(p, p.event_types[0]);
        let now = chrono::Utc::now().timestamp();
        // Vonage's SMS API signs inside the body: the body changes.
        let wrongly = p.sign_body(&wrong_secret_for(p.name), &body, now);
        let wrong = app
            .post_signed(
                p.name,
                p,
                &wrongly.expect("signed"),
                &wrong_secret_for(p.name),
            )
            .await;
        assert_eq!(wrong.status(), 401, "{} wrong secret", p.name);
        assert_eq!(
            wrong.json::<Value>().await.expect("json")["error"],
            "invalid_signature"
        );

        let mut tampered = body.clone();
        let last = tampered.len() - 2;
        tampered[last] ^= 1;
        let headers = p
            .sign(&secret_for(p.name), &body, now, PUBLIC_URL)
            .expect("signed");
        let response = app.post_with(p.name, &headers, &tampered).await;
        if p.scheme == providers::Scheme::Basic {
            // Credentials do not bind the body (only HTTPS keeps it whole):
            // the damaged JSON is refused as such.
            assert_eq!(response.status(), 400, "{} tampered", p.name);
        } else if p.scheme == providers::Scheme::NonceUrlHmac {
            // Plivo's V2 signs the URL and a nonce, not the body (as its
            // README section says): any bytes are a form, and are stored.
            assert_eq!(response.status(), 200, "{} tampered", p.name);
        } else {
            assert_eq!(response.status(), 401, "{} tampered", p.name);
        }
        if p.signs_in_body() {
            continue; // No header: its own test.
        }

        let missing = app
            .client
            .post(app.url(&format!("/webhooks/{}", p.name)))
            .body(body.clone())
            .send()
            .await
            .expect("send");
        if p.scheme == providers::Scheme::Jwt {
            // Vonage sends a webhook unsigned only after an error of its
            // own, and asks for a 5xx so that it signs the retry.
            assert_eq!(missing.status(), 503, "{} unsigned", p.name);
            assert!(missing.headers().contains_key("retry-after"));
            let answer: Value = missing.json().await.expect("json");
            assert_eq!(answer["error"], "unsigned");
            continue;
        }
        assert_eq!(missing.status(), 401, "{} missing header", p.name);
        if matches!(
            p.scheme,
            providers::Scheme::Basic | providers::Scheme::BasicOrNonceHmac
        ) {
            // Asked for, as HTTP asks for credentials.
            assert_eq!(
                missing.headers()["www-authenticate"],
                "Basic realm=\"smshook\""
            );
        }
        let answer: Value = missing.json().await.expect("json");
        let expected = match p.scheme {
            providers::Scheme::Basic => {
                smshook::signature::SignatureError::MissingCredentials.to_string()
            }
            providers::Scheme::BasicOrNonceHmac => {
                smshook::signature::SignatureError::MissingCredentialsOrHmac.to_string()
            }
            _ => "the signature header is missing".into(),
        };
        assert_eq!(
            answer["message"],
            format!("{expected} ({})", p.signature_header),
            "the header it looked for"
        );
        let malformed = app
            .client
            .post(app.url(&format!("/webhooks/{}", p.name)))
            .header(p.signature_header, "sha256=not-hex")
            .body(body.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(malformed.status(), 401, "{} malformed header", p.name);
    }
    // MsGine's webhook sent to the Integify source: which provider it
    // seems to come from, so a source set up with the wrong one shows.
    let msgine = provider("msgine");
    let body = sample_bytes(msgine, "message.sent");
    let crossed = app
        .post_signed("integify", msgine, &body, &secret_for("msgine"))
        .await;
    assert_eq!(crossed.status(), 401);
    let answer: Value = crossed.json().await.expect("json");
    assert_eq!(
        answer["message"],
        "the signature header is missing (x-integify-signature); \
         it is signed as msgine signs: is the source's provider right?"
    );
    // Its own header, empty, is missing, and no other provider's.
    let empty = app
        .client
        .post(app.url("/webhooks/integify"))
        .header("x-integify-signature", "")
        .body(body)
        .send()
        .await
        .expect("send");
    let answer: Value = empty.json().await.expect("json");
    assert_eq!(
        answer["message"],
        "the signature header is missing (x-integify-signature)"
    );
    // Only the form posted to Plivo's source with another body: V2 does
    // not sign the body, so it was taken, not refused.
    let stored = app.events("").await;
    assert!(
        stored.len() == 1 && stored[0]["source"] == "plivo",
        "nothing refused was stored: {stored:?}"
    );
    app.stop().await;
}

async fn rotated_secrets_both_verify_and_case_is_ignored(backend: Backend) {
    let app = TestApp::on(backend).await;
    for p in providers::ALL {
        for secret in [old_secret_for(p.name), secret_for(p.name)] {
            let body = sample_bytes(p, p.event_types[0]);
            let status = app.post_signed(p.name, p, &body, &secret).await.status();
            assert_eq!(status, 200, "{} with {secret}", p.name);
        }
    }
    let p = provider("private-number");
    let body = sample_bytes(p, "sms.received");
    let signature = smshook::signature::sign_hex(
        &smshook::signature::Secret::new(secret_for(p.name)),
        &body,
        "",
    );
    let response = app
        .client
        .post(app.url("/webhooks/private-number"))
        .header("X-WEBHOOK-SIGNATURE", signature.to_uppercase())
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "no prefix, upper-case hex");
    app.stop().await;
}

async fn malformed_json_is_400_after_a_valid_signature(backend: Backend) {
    let app = TestApp::on(backend).await;
    let bodies = [&b"{not json"[..], b"[1,2,3]", b"", b"\"str\""];
    // Any bytes are a form: Twilio's JSON bodies are in its own test. A
    // body Vonage's SMS API could not have signed is refused as unsigned
    // (its own test).
    let json_providers = providers::ALL
        .iter()
        .filter(|p| !p.signs_url() && !p.signs_in_body());
    for (p, body) in json_providers.flat_map(|p| bodies.map(|b| (p, b))) {
        let response = app.post_signed(p.name, p, body, &secret_for(p.name)).await;
        assert_eq!(
            response.status(),
            400,
            "{} {:?}",
            p.name,
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            response.json::<Value>().await.expect("json")["error"],
            "malformed_json"
        );
    }
    app.stop().await;
}

async fn oversize_bodies_are_413_with_or_without_content_length(backend: Backend) {
    let app = TestApp::spawn_with(TestOptions {
        backend,
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let big = vec![b' '; 2048];
    for p in providers::ALL {
        let response = app.post_signed(p.name, p, &big, &secret_for(p.name)).await;
        assert_eq!(response.status(), 413, "{}", p.name);
        assert_eq!(
            response.json::<Value>().await.expect("json")["error"],
            "payload_too_large"
        );
    }

    // Chunked: no Content-Length, so the limit must hold while reading.
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = "POST /webhooks/integify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Integify-Signature: sha256=00\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");
    for _ in 0..4 {
        let _ = stream
            .write_all(format!("400\r\n{}\r\n", " ".repeat(1024)).as_bytes())
            .await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 512];
    let n = stream.read(&mut answer).await.expect("read");
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    app.stop().await;
}

/// Bodies are read before their signature can be checked, so a flood of
/// slow, large bodies could take all the memory: the bodies being read
/// hold at most `max_body_bytes_in_flight`. Two slow clients hold the
/// whole 2 KiB here: one declares 1 KiB, and one sends a body with no
/// length, which reserves the most a body may be (1 KiB). A webhook then
/// is 503 with Retry-After (504 for TextUs), logged as `server_busy`, and
/// is taken once they are gone; a GET, which has no body, is taken at once.
#[tokio::test]
async fn slow_bodies_cannot_hold_more_than_the_body_budget() {
    let app = TestApp::spawn_with(TestOptions {
        max_body_bytes: 1024,
        max_body_bytes_in_flight: 2048,
        ..Default::default()
    })
    .await;
    // One declares 1 KiB and sends half; one sends chunks with no length,
    // reserving the 1 KiB a body may be at most.
    let starts: [(&str, &[u8]); 2] = [
        ("Content-Length: 1024", &[b' '; 512]),
        ("Transfer-Encoding: chunked", b"100\r\n"),
    ];
    let mut slow = Vec::new();
    for (framing, part) in starts {
        let mut stream = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        let head = format!("POST /webhooks/integify HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(part).await.expect("part of a body");
        slow.push(stream);
    }
    // The server reserves as it reads each head: wait until both have.
    let mut tries = 0;
    let refused = loop {
        tries += 1;
        assert!(
            tries < 500,
            "never refused: the slow bodies reserved too little"
        );
        let (_, status, answer) = app
            .send_sample(provider("textus"), "message.delivered")
            .await;
        if status != 200 {
            break (status, answer);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(refused.0, 504, "TextUs retries a 504: {}", refused.1);
    assert_eq!(refused.1["error"], "server_busy");
    let p = provider("integify");
    let body = serde_json::to_vec(&(p.sample)(
        "sms.delivered",
        &smshook::providers::SampleIds::fresh(),
    ))
    .expect("json");
    let busy = app
        .post_signed("integify", p, &body, &secret_for("integify"))
        .await;
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["retry-after"], "5");
    // A GET (Vonage's SMS API) has no body and needs no room: still taken.
    let (_, query) = vonage_sms_form("delivered");
    let query = String::from_utf8(query).expect("text");
    let get = app.get(&format!("/webhooks/vonage-sms?{query}")).await;
    assert_eq!(get.status(), 200, "a request with no body waits for none");
    // What /metrics tells an operator meanwhile.
    let metrics = app.metrics().await.text().await.expect("metrics");
    for series in [
        "smshook_body_bytes_reading 2048",
        "smshook_body_bytes_reading_max 2048",
        "smshook_connections_max 1024",
    ] {
        assert!(metrics.lines().any(|l| l == series), "{series}:\n{metrics}");
    }
    let open = metrics
        .lines()
        .find_map(|l| l.strip_prefix("smshook_connections_open "))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("connections open");
    assert!(open >= 3, "the two slow clients and this scrape: {open}");
    drop(slow);
    let taken = loop {
        let (status, answer) = app.send_body(p, &body).await;
        if status == 200 {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(taken["duplicate"], false, "the 503 stored nothing");
    let reasons: Vec<String> = app
        .requests()
        .await
        .iter()
        .map(|r| r["reason"].as_str().expect("reason").to_string())
        .collect();
    assert!(reasons.iter().any(|r| r == "server_busy"), "{reasons:?}");
    app.stop().await;
}

async fn unknown_source_is_404_and_other_methods_405(backend: Backend) {
    let app = TestApp::on(backend).await;
    let response = app.post_unsigned("/webhooks/nope").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "unknown_source"
    );
    // A configured source's route and the catch-all for other names alike.
    for name in ["integify", "nope"] {
        let response = app.get(&format!("/webhooks/{name}")).await;
        assert_eq!(response.status(), 405, "{name}");
        assert_eq!(response.headers()["allow"], "POST");
    }
    // A stored event flushes the refusals logged before it.
    app.send_sample(provider("integify"), "sms.delivered").await;
    let log: Vec<(String, u64)> = app
        .requests()
        .await
        .iter()
        .map(|r| {
            (
                r["source"].as_str().expect("source").to_string(),
                r["status"].as_u64().expect("status"),
            )
        })
        .collect();
    let expected = [
        ("nope", 404),
        ("integify", 405),
        ("nope", 405),
        ("integify", 200),
    ];
    let expected: Vec<(String, u64)> = expected.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    assert_eq!(log, expected);
    app.stop().await;
}

async fn a_retry_is_stored_once_and_answered_with_the_original_id(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("msgine");
    let body = sample_bytes(p, "message.delivered");
    let (_, first) = app.send_body(p, &body).await;
    let (status, second) = app.send_body(p, &body).await;
    assert_eq!(status, 200);
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["event_id"], first["event_id"]);
    // Same message, next event: a different event.
    let mut next: Value = serde_json::from_slice(&body).expect("json");
    next["event"] = json!("message.failed");
    let (_, third) = app
        .send_body(p, &serde_json::to_vec(&next).expect("json"))
        .await;
    assert_eq!(third["duplicate"], false);
    assert_eq!(app.events("source=msgine").await.len(), 2);
    app.stop().await;
}

/// Every provider's every event type, sent twice: the retry is recognised
/// by that provider's key and answered with the first one's id.
async fn every_providers_retries_are_stored_once(backend: Backend) {
    let app = TestApp::on(backend).await;
    for p in providers::ALL {
        for event_type in p.event_types {
            let body = sample_bytes(p, event_type);
            let (_, first) = app.send_body(p, &body).await;
            let (status, again) = app.send_body(p, &body).await;
            assert_eq!(status, 200, "{} {event_type}", p.name);
            assert_eq!(first["duplicate"], false, "{} {event_type}", p.name);
            assert_eq!(again["duplicate"], true, "{} {event_type}", p.name);
            assert_eq!(again["event_id"], first["event_id"]);
        }
        let stored = app.events(&format!("source={}", p.name)).await;
        assert_eq!(stored.len(), p.event_types.len(), "{}", p.name);
    }
    app.stop().await;
}

async fn sixty_four_simultaneous_copies_store_one_row(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::on(backend).await);
    for p in providers::ALL {
        let body = sample_bytes(p, p.event_types[0]);
        let answers = sixty_four_at_once(&app, p, body).await;
        assert!(answers.iter().all(|(s, _)| *s == 200), "{}", p.name);
        let fresh = answers
            .iter()
            .filter(|(_, a)| a["duplicate"] == false)
            .count();
        assert_eq!(fresh, 1, "{}: exactly one copy is the original", p.name);
        let ids: std::collections::HashSet<_> =
            answers.iter().map(|(_, a)| a["event_id"].clone()).collect();
        assert_eq!(ids.len(), 1, "{}: every copy names the same event", p.name);
        let stored = app.events(&format!("source={}", p.name)).await;
        assert_eq!(stored.len(), 1, "{}", p.name);
    }
    std::sync::Arc::into_inner(app)
        .expect("no task holds the app")
        .stop()
        .await;
}

/// 64 copies of `body`, sent together once all 64 tasks are ready.
async fn sixty_four_at_once(
    app: &std::sync::Arc<TestApp>,
    p: &'static providers::Provider,
    body: Vec<u8>,
) -> Vec<(u16, Value)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (app, body, barrier) = (app.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.send_body(p, &body).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task"));
    }
    answers
}

async fn textus_payload_without_an_id_is_deduplicated_by_body_hash(backend: Backend) {
    let app = TestApp::on(backend).await;
    let body = br#"{"event":"message.received","data":{"from":"+15550001","body":"hello"}}"#;
    let (_, first) = app.send_body(provider("textus"), body).await;
    let (_, second) = app.send_body(provider("textus"), body).await;
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    app.stop().await;
}

/// A client that sends half a request head, or connects and sends nothing,
/// is disconnected after `idle_timeout` instead of holding its connection.
/// MsGine publishes the addresses it sends from; a source can be limited to
/// them. Behind a trusted proxy the client it names is what is checked.
#[tokio::test]
async fn a_source_limited_to_addresses_refuses_others_with_403() {
    let app = TestApp::spawn_with(TestOptions {
        trusted_proxies: &["127.0.0.1"],
        allowed_ips: &[("msgine", &["52.89.214.238", "10.0.0.0/8"])],
        ..Default::default()
    })
    .await;
    let send = |p: &'static providers::Provider, from: Option<&'static str>| {
        let app = &app;
        async move {
            let body = sample_bytes(p, p.event_types[0]);
            let signature = smshook::signature::sign_hex(
                &smshook::signature::Secret::new(secret_for(p.name)),
                &body,
                p.signature_prefix,
            );
            let mut request = app
                .client
                .post(app.url(&format!("/webhooks/{}", p.name)))
                .header(p.signature_header, signature)
                .body(body);
            if let Some(from) = from {
                request = request.header("x-forwarded-for", from);
            }
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    let msgine = provider("msgine");
    assert_eq!(
        send(msgine, Some("52.89.214.238")).await.0,
        200,
        "a listed address"
    );
    assert_eq!(
        send(msgine, Some("10.1.2.3")).await.0,
        200,
        "a listed network"
    );
    let (status, refused) = send(msgine, Some("198.51.100.7")).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "forbidden_address");
    assert!(
        refused["message"]
            .as_str()
            .expect("message")
            .contains("198.51.100.7"),
        "{refused}"
    );
    assert_eq!(
        send(msgine, None).await.0,
        403,
        "the proxy itself is not listed"
    );
    let other = send(provider("integify"), Some("198.51.100.7")).await;
    assert_eq!(other.0, 200, "a source with no list takes any address");

    let (_, events) = app.api("/api/events?source=msgine").await;
    assert_eq!(events["events"].as_array().expect("events").len(), 2);
    let refusals: Vec<(String, String)> = app
        .requests()
        .await
        .iter()
        .filter(|r| r["reason"] == "forbidden_address")
        .map(|r| (r["status"].to_string(), r["remote_addr"].to_string()))
        .collect();
    assert_eq!(
        refusals,
        [
            ("403".into(), r#""198.51.100.7""#.into()),
            ("403".into(), r#""127.0.0.1""#.into())
        ],
        "both refusals logged, under the address checked"
    );
    let metrics = app.metrics().await.text().await.expect("text");
    assert!(
        metrics.contains("smshook_webhooks_total{source=\"msgine\",status=\"403\"} 2"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_connection_without_a_whole_request_head_is_closed_after_the_idle_timeout() {
    let idle = std::time::Duration::from_millis(300);
    let app = TestApp::spawn_with(TestOptions {
        idle_timeout: idle,
        ..Default::default()
    })
    .await;
    let half_head = b"POST /webhooks/integify HTTP/1.1\r\nHost: x\r\n".as_slice();
    for sent in [half_head, b""] {
        let mut tcp = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        tcp.write_all(sent).await.expect("write");
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            tcp.read_to_end(&mut answer),
        );
        // Closed (EOF, or a reset), not still waiting.
        assert!(read.await.is_ok(), "still open 20 s after sending {sent:?}");
        assert!(
            started.elapsed() >= idle / 2,
            "closed before the idle timeout"
        );
    }
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200, "new connections are still served");
    app.stop().await;
}

/// A request head still incomplete past 64 KiB is answered 431 and its
/// connection closed, so a client sending a large head slowly (it has
/// `idle_timeout`) holds at most that, not hyper's default 400 KiB; a head
/// of a few KiB is served as ever. (hyper checks the limit while the head
/// is incomplete, so one that arrives whole in a single read is parsed.)
#[tokio::test]
async fn a_slow_request_head_over_64_kib_is_431() {
    let app = TestApp::on(Backend::Sqlite).await;
    for (padding, expected) in [(4 * 1024, "HTTP/1.1 200"), (100 * 1024, "HTTP/1.1 431")] {
        let mut tcp = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        let head = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
            "a".repeat(padding)
        );
        for piece in head.as_bytes().chunks(8 * 1024) {
            if tcp.write_all(piece).await.is_err() {
                break; // answered and closed before the rest
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tcp.read_buf(&mut answer),
        );
        match read.await.expect("answered or closed") {
            Ok(_) => {
                let said = String::from_utf8_lossy(&answer);
                assert!(said.starts_with(expected), "{padding} bytes: {said}");
            }
            // The rest of the head, sent after the 431 and the close, can
            // make the kernel reset the connection before the 431 is read.
            Err(e) => assert!(
                expected.ends_with("431") && e.kind() == std::io::ErrorKind::ConnectionReset,
                "{padding} bytes: {e}"
            ),
        }
    }
    app.stop().await;
}

/// At most `max_connections` are served at once: with both of two taken by
/// clients that send nothing, a third waits (in the listen queue) and is
/// served as soon as one of them goes.
#[tokio::test]
async fn connections_past_max_connections_wait_for_one_to_close() {
    let app = TestApp::spawn_with(TestOptions {
        max_connections: 2,
        ..Default::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        idle.push(tcp);
    }
    let client = reqwest::Client::new();
    let health = || client.get(app.url("/healthz")).send();
    let waited = tokio::time::timeout(std::time::Duration::from_millis(500), health()).await;
    assert!(waited.is_err(), "served with both slots taken: {waited:?}");
    drop(idle.pop());
    let served = tokio::time::timeout(std::time::Duration::from_secs(10), health()).await;
    let response = served.expect("served once a slot is free").expect("send");
    assert_eq!(response.status(), 200);
    app.stop().await;
}

/// The timeout counts from the last request: a kept-alive connection whose
/// requests come closer together than it is served for longer than it, and
/// is closed once it has sat idle that long.
#[tokio::test]
async fn a_kept_alive_connection_is_closed_only_after_sitting_idle() {
    let idle = std::time::Duration::from_millis(1200);
    let app = TestApp::spawn_with(TestOptions {
        idle_timeout: idle,
        ..Default::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let mut last_request = started;
    // Requests a quarter of the timeout apart, until one goes out after the
    // timeout has passed since the first.
    while last_request.duration_since(started) <= idle {
        tokio::time::sleep(idle / 4).await;
        last_request = std::time::Instant::now();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("the connection is still open");
        let mut answer = [0u8; 512];
        let n = tcp.read(&mut answer).await.expect("read");
        assert!(
            answer[..n].starts_with(b"HTTP/1.1 200"),
            "served on the same connection: {:?}",
            String::from_utf8_lossy(&answer[..n])
        );
    }
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tcp.read_to_end(&mut rest),
    );
    assert!(
        closed.await.is_ok(),
        "still open 20 s after its last request"
    );
    app.stop().await;
}

/// Telnyx signs `{timestamp}|{body}`: a webhook is refused without its
/// timestamp, with one moved after signing (a replay made to look fresh),
/// or with one more than five minutes from the server's clock (a replay
/// of a captured webhook); each answer says which.
async fn telnyx_timestamps_are_signed_and_must_be_recent(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("telnyx");
    let body = sample_bytes(p, "message.received");
    let key = secret_for("telnyx");
    let now = chrono::Utc::now().timestamp();
    let refusal = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 401);
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["error"], "invalid_signature");
        answer["message"].as_str().expect("message").to_string()
    };

    let signed = p.sign(&key, &body, now, "").expect("signed");
    let without_timestamp = &signed[..1];
    let message = refusal(app.post_with("telnyx", without_timestamp, &body).await).await;
    assert!(message.contains("timestamp header is missing"), "{message}");

    let mut moved = signed.clone();
    moved[1].1 = (now + 1).to_string();
    let message = refusal(app.post_with("telnyx", &moved, &body).await).await;
    assert!(message.contains("does not match"), "{message}");

    // Well past the window either way: the server's clock reads a moment later.
    for skew in [-400, 400] {
        let stale = p.sign(&key, &body, now + skew, "").expect("signed");
        let message = refusal(app.post_with("telnyx", &stale, &body).await).await;
        assert!(message.contains("more than 5 minutes"), "{skew}: {message}");
    }
    let late_but_within = p.sign(&key, &body, now - 240, "").expect("signed");
    let response = app.post_with("telnyx", &late_but_within, &body).await;
    assert_eq!(
        response.status(),
        200,
        "four minutes old is within the window"
    );

    // The refusals are logged with the next commit, the 200's.
    let log = app.requests().await;
    let refused = log.iter().filter(|r| r["status"] == 401).count();
    assert_eq!(refused, 4, "every refusal is in the request log: {log:?}");
    app.stop().await;
}

/// Telnyx's retry carries the same event id with `meta.attempt` counted up:
/// a different body, the same event, stored once.
async fn a_telnyx_retry_with_its_next_attempt_number_is_a_duplicate(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("telnyx");
    let mut event = (p.sample)("message.finalized", &SampleIds::fresh());
    let (status, first) = app
        .send_body(p, &serde_json::to_vec(&event).expect("json"))
        .await;
    assert_eq!(status, 200, "{first}");
    event["meta"]["attempt"] = json!(2);
    let (status, retry) = app
        .send_body(p, &serde_json::to_vec(&event).expect("json"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["event_id"], first["event_id"]);
    let stored = app.events("source=telnyx").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["type"], "message.delivered");
    assert_eq!(
        stored[0]["payload"]["meta"]["attempt"], 1,
        "the first copy is kept"
    );
    app.stop().await;
}

/// Vonage's token is HS256 over its claims, whose `payload_hash` is the
/// body's SHA-256: a valid token sent with another body is refused, and
/// says why. A webhook it sends unsigned (after an error of its own) is
/// answered 503, and its signed retry is stored; the message's statuses
/// arrive as separate events of one message.
async fn vonage_tokens_bind_the_body_and_an_unsigned_webhook_is_retried(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("vonage");
    let ids = SampleIds::fresh();
    let submitted = serde_json::to_vec(&(p.sample)("submitted", &ids)).expect("json");
    let delivered = serde_json::to_vec(&(p.sample)("delivered", &ids)).expect("json");
    let now = chrono::Utc::now().timestamp();

    let token_for_other_body = p
        .sign(&secret_for("vonage"), &submitted, now, "")
        .expect("signed");
    let response = app
        .post_with("vonage", &token_for_other_body, &delivered)
        .await;
    let message = refusal_message(response, 401).await;
    assert!(message.contains("payload_hash"), "{message}");

    let unsigned = app.post_with("vonage", &[], &submitted).await;
    assert_eq!(unsigned.status(), 503);
    let (status, first) = app.send_body(p, &submitted).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = app.send_body(p, &delivered).await;
    assert_eq!(status, 200);
    assert_ne!(
        first["event_id"], second["event_id"],
        "two events of one message"
    );
    let (_, again) = app.send_body(p, &delivered).await;
    assert_eq!(again["duplicate"], true);

    let (status, message) = app.api(&format!("/api/messages/{}", ids.message_id)).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["status"], "delivered");
    assert_eq!(app.events("source=vonage").await.len(), 2);
    app.stop().await;
}

/// POSTs `body` to `/webhooks/twilio` with `query`, signed for `signed_url`.
async fn post_twilio(
    app: &TestApp,
    query: &str,
    body: &[u8],
    signed_url: &str,
) -> reqwest::Response {
    let p = provider("twilio");
    let mut headers = p
        .sign(&secret_for("twilio"), body, 0, signed_url)
        .expect("signed");
    headers.push(("content-type", p.content_type().to_string()));
    app.post_with(&format!("twilio{query}"), &headers, body)
        .await
}

/// Twilio signs the URL registered with it, which smshook, behind a proxy,
/// never sees: the source's public_url, plus the query the request carries,
/// with or without the default port. An inbound message is answered with an
/// empty TwiML document, so Twilio sends no reply and logs no error.
async fn twilio_signs_its_public_url_and_is_answered_in_twiml(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("twilio");
    let body = sample_bytes(p, "received");

    let response = post_twilio(&app, "", &body, PUBLIC_URL).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/xml");
    let id = response.headers()["smshook-event-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert_eq!(response.headers()["smshook-duplicate"], "false");
    let twiml = response.text().await.expect("text");
    assert_eq!(
        twiml,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#
    );
    let (_, event) = app.api(&format!("/api/events/{id}")).await;
    assert_eq!(event["type"], "message.received");
    assert_eq!(event["from"], "+14155550101");
    assert_eq!(event["body"], "Can I move my appointment to Friday?");
    assert_eq!(event["payload"], sent_payload(p, &body));
    assert_eq!(
        event["payload"]["NumMedia"], "0",
        "every parameter, as sent"
    );

    let again = post_twilio(&app, "", &body, PUBLIC_URL).await;
    assert_eq!(again.headers()["smshook-event-id"], id.as_str());
    assert_eq!(again.headers()["smshook-duplicate"], "true");

    // Signed for the address smshook listens on, not the registered URL.
    let own = post_twilio(&app, "", &body, &app.url("/webhooks/twilio")).await;
    assert_eq!(own.status(), 401);
    let answer: Value = own.json().await.expect("json");
    assert_eq!(answer["error"], "invalid_signature");

    let status = sample_bytes(p, "delivered");
    let with_port = PUBLIC_URL.replace(".test/", ".test:443/");
    assert_eq!(
        post_twilio(&app, "", &status, &with_port).await.status(),
        200
    );

    let failed = sample_bytes(p, "failed");
    let query = "?tenant=acme&x=%2F";
    let unsigned_query = post_twilio(&app, query, &failed, PUBLIC_URL).await;
    assert_eq!(unsigned_query.status(), 401, "the query is signed too");
    let signed_query = format!("{PUBLIC_URL}{query}");
    assert_eq!(
        post_twilio(&app, query, &failed, &signed_query)
            .await
            .status(),
        200
    );

    // Advanced Opt-Out names a custom keyword's meaning: the sender is out.
    let mut arret = (p.sample)("received", &SampleIds::fresh());
    (arret["Body"], arret["OptOutType"]) = (json!("ARRET"), json!("STOP"));
    arret["From"] = json!("+14155550199");
    let arret = p.encode(&arret);
    let answer = post_twilio(&app, "", &arret, PUBLIC_URL).await;
    assert_eq!(answer.status(), 200);
    let (status, optout) = app.api("/api/optouts/+14155550199").await;
    assert_eq!((status, &optout["opted_out"]), (200, &json!(true)));
    assert_eq!(app.events("source=twilio").await.len(), 4);
    app.stop().await;
}

/// A JSON body comes with its SHA-256 in the query (`bodySHA256`) and is
/// signed without parameters: another body under the same signature is
/// refused, and one that is not a JSON object is malformed.
async fn twilio_json_bodies_are_bound_by_their_hash(backend: Backend) {
    use sha2::Digest;
    let app = TestApp::on(backend).await;
    let hashed = |body: &[u8]| format!("?bodySHA256={}", hex::encode(sha2::Sha256::digest(body)));
    let body = br#"{"MessageSid":"SM1","MessageStatus":"delivered","To":"+14155550101"}"#;
    let query = hashed(body);
    let signed = format!("{PUBLIC_URL}{query}");
    let response = post_twilio(&app, &query, body, &signed).await;
    assert_eq!(response.status(), 200);
    let id = answer_json(response).await["event_id"].clone();
    let (_, event) = app
        .api(&format!("/api/events/{}", id.as_str().expect("id")))
        .await;
    assert_eq!(event["type"], "message.delivered");
    assert_eq!(event["payload"]["To"], "+14155550101");

    let other = br#"{"MessageSid":"SM1","MessageStatus":"failed"}"#;
    let swapped = post_twilio(&app, &query, other, &signed).await;
    let message = refusal_message(swapped, 401).await;
    assert!(message.contains("bodySHA256"), "{message}");

    let array = b"[1,2]";
    let query = hashed(array);
    let response = post_twilio(&app, &query, array, &format!("{PUBLIC_URL}{query}")).await;
    assert_eq!(response.status(), 400);
    app.stop().await;
}

/// A Twilio Webhook Rule signs with a SharedKey, by the algorithm its
/// settings header names: the source holds the Auth Token and the
/// SharedKey's secret side by side, and either signs.
async fn twilio_webhook_rules_sign_with_a_shared_key(backend: Backend) {
    use smshook::signature::twilio::sign_shared;
    let app = TestApp::on(backend).await;
    let p = provider("twilio");
    let sid = "KS0123456789abcdef0123456789abcdef";
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut headers = headers;
        headers.push(("content-type", p.content_type().to_string()));
        let app = &app;
        async move { app.post_with("twilio", &headers, &body).await }
    };
    let body = sample_bytes(p, "delivered");
    let shared = |secret: &str| sign_shared(sid, secret, PUBLIC_URL, &body).to_vec();
    let response = post(shared(&old_secret_for("twilio")), body.clone()).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["smshook-event-id"].clone();
    let (_, event) = app
        .api(&format!("/api/events/{}", id.to_str().expect("id")))
        .await;
    assert_eq!(event["type"], "message.delivered");
    // The Auth Token still signs the same webhook: a duplicate.
    let by_token = p
        .sign(&secret_for("twilio"), &body, 0, PUBLIC_URL)
        .expect("signed");
    let again = post(by_token, body.clone()).await;
    assert_eq!(again.headers()["smshook-event-id"], id);
    assert_eq!(again.headers()["smshook-duplicate"], "true");

    let unknown_key = post(shared(&wrong_secret_for("twilio")), body.clone()).await;
    let message = refusal_message(unknown_key, 401).await;
    assert!(message.contains("SharedKey"), "{message}");
    let mut sha512 = shared(&secret_for("twilio"));
    sha512[1].1 = format!("key={sid},algorithm=HMAC_SHA512");
    let message = refusal_message(post(sha512, body.clone()).await, 401).await;
    assert!(message.contains("algorithm=HMAC_SHA256"), "{message}");
    let without_settings = shared(&secret_for("twilio"))[..1].to_vec();
    let message = refusal_message(post(without_settings, body.clone()).await, 401).await;
    assert!(message.contains("HMAC-SHA1"), "{message}");
    assert_eq!(app.events("source=twilio").await.len(), 1);
    app.stop().await;
}

/// Twilio Event Streams posts a JSON array of CloudEvents, named in the
/// signed query by its hash: each is stored as an event of its own and
/// deduplicated on its own id, the answer lists them in order, and the
/// request is logged once.
async fn twilio_event_streams_batches_are_stored_event_by_event(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("twilio-events");
    let secret = secret_for(p.name);
    let sample = |t: &str| (p.sample)(t, &SampleIds::fresh());
    let post = async |events: &[&Value]| {
        let body = serde_json::to_vec(events).expect("json");
        app.post_signed(p.name, p, &body, &secret).await
    };
    let delivered = sample("com.twilio.messaging.message.delivered");
    let undelivered = sample("com.twilio.messaging.message.undelivered");
    let inbound = sample("com.twilio.messaging.inbound-message.received");
    let sent = [&delivered, &undelivered, &inbound];
    let response = post(&sent).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["ok"], true);
    let answered = answer["events"].as_array().expect("events").clone();
    assert_eq!(answered.len(), 3);
    let types = ["message.delivered", "message.failed", "message.received"];
    for ((event, sent), normalized) in answered.iter().zip(sent).zip(types) {
        assert_eq!(event["duplicate"], false);
        let id = event["event_id"].as_str().expect("id");
        let (_, stored) = app.api(&format!("/api/events/{id}")).await;
        assert_eq!(stored["payload"], *sent, "each event stored as sent");
        assert_eq!(stored["type"], normalized);
        assert_eq!(stored["provider_event_id"], sent["id"]);
    }

    // Redelivered, the batch is all duplicates, with the ids first given;
    // with a new event beside a known one, each says which it is.
    let again: Value = post(&sent).await.json().await.expect("json");
    assert_eq!(
        again["events"],
        json!(
            answered
                .iter()
                .map(|e| json!({"event_id": e["event_id"], "duplicate": true}))
                .collect::<Vec<_>>()
        )
    );
    let read = sample("com.twilio.messaging.message.read");
    let mixed: Value = post(&[&delivered, &read]).await.json().await.expect("json");
    let flags: Vec<_> = mixed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["duplicate"].clone())
        .collect();
    assert_eq!(flags, [true, false]);
    // The same event twice in one batch is stored once.
    let twice = sample("com.twilio.messaging.message.sent");
    let both: Value = post(&[&twice, &twice]).await.json().await.expect("json");
    let both = both["events"].as_array().expect("events").clone();
    assert_eq!(
        (&both[0]["duplicate"], &both[1]["duplicate"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(both[0]["event_id"], both[1]["event_id"]);
    assert_eq!(app.events(&format!("source={}", p.name)).await.len(), 5);

    // One request, one log row: it names the batch's last event.
    let logged: Vec<Value> = app
        .requests()
        .await
        .into_iter()
        .filter(|r| r["source"] == p.name)
        .collect();
    assert_eq!(logged.len(), 4, "{logged:?}");
    let last = &answered[2]["event_id"];
    assert!(
        logged
            .iter()
            .any(|r| r["event_id"] == *last && r["reason"] == "duplicate"),
        "{logged:?}"
    );

    // What is not a non-empty array of objects is refused whole.
    let message = refusal_message(post(&[]).await, 400).await;
    assert!(message.contains("no events"), "{message}");
    let body = serde_json::to_vec(&json!([read, 5])).expect("json");
    let response = app.post_signed(p.name, p, &body, &secret).await;
    let message = refusal_message(response, 400).await;
    assert!(message.contains("event 2 of 2"), "{message}");
    // The largest batch taken is stored whole, one event per object.
    let most: Vec<Value> = (0..smshook::ingest::MAX_BATCH_EVENTS)
        .map(|i| json!({"id": format!("EZ{i}"), "type": "com.twilio.test"}))
        .collect();
    let body = serde_json::to_vec(&most).expect("json");
    let answer = answer_json(app.post_signed(p.name, p, &body, &secret).await).await;
    let answered = answer["events"].as_array().expect("events").clone();
    assert_eq!(answered.len(), most.len());
    assert!(answered.iter().all(|e| e["duplicate"] == false));
    let flood = vec![json!({}); smshook::ingest::MAX_BATCH_EVENTS + 1];
    let body = serde_json::to_vec(&flood).expect("json");
    let response = app.post_signed(p.name, p, &body, &secret).await;
    let message = refusal_message(response, 413).await;
    assert!(message.contains("2000 events"), "{message}");
    // A JSON body is signed with its hash in the query, or not at all.
    let body = serde_json::to_vec(&[&read]).expect("json");
    let headers = p.sign(&secret, &body, 0, PUBLIC_URL).expect("signed");
    let message = refusal_message(app.post_with(p.name, &headers, &body).await, 401).await;
    assert!(message.contains("bodySHA256"), "{message}");
    // The refused batches stored nothing: `read` is there once, as before.
    let reads = app
        .events(&format!("source={}&type=message.read", p.name))
        .await;
    assert_eq!(reads.len(), 1);
    let last = answered.last().expect("an event")["event_id"]
        .as_str()
        .expect("id");
    let (_, stored) = app.api(&format!("/api/events/{last}")).await;
    assert_eq!(stored["provider_event_id"], "EZ1999");
    app.stop().await;
}

/// A Conversations Service's webhooks at a Twilio source: a message's
/// update is stored beside its creation, and a retry of either is one.
async fn twilio_conversations_updates_are_events_of_their_own(backend: Backend) {
    let app = TestApp::on(backend).await;
    let form = |event: &str| {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs([
            ("EventType", event),
            ("ConversationSid", "CH00000000000000000000000000000001"),
            ("MessageSid", "IM00000000000000000000000000000001"),
            ("Author", "+14155550101"),
            ("Body", "Is Friday still free?"),
            ("DateCreated", "2026-12-04T10:00:00.000Z"),
        ]);
        form.finish().into_bytes()
    };
    let mut ids = Vec::new();
    for event in ["onMessageAdded", "onMessageUpdated", "onMessageAdded"] {
        let response = post_twilio(&app, "", &form(event), PUBLIC_URL).await;
        assert_eq!(response.status(), 200);
        ids.push(answer_json(response).await);
    }
    assert_ne!(ids[0]["event_id"], ids[1]["event_id"]);
    assert_eq!(ids[2]["event_id"], ids[0]["event_id"]);
    assert_eq!(ids[2]["duplicate"], true);
    let events = app.events("source=twilio").await;
    let types: Vec<_> = events.iter().map(|e| e["type"].clone()).collect();
    assert_eq!(types, ["onMessageAdded", "onMessageUpdated"]);
    assert_eq!(events[0]["from"], "+14155550101");
    assert_eq!(
        events[0]["message_id"],
        "IM00000000000000000000000000000001"
    );
    app.stop().await;
}

/// Bandwidth posts arrays of message events with the application's
/// callback credentials: each event is stored on its own, a receipt per
/// recipient; wrong or absent credentials are refused, absent ones with a
/// challenge.
async fn bandwidth_callbacks_come_in_batches_with_basic_credentials(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("bandwidth");
    let ids = SampleIds::fresh();
    let received = (p.sample)("message-received", &SampleIds::fresh());
    let delivered = (p.sample)("message-delivered", &ids);
    let mut to_another = delivered.clone();
    to_another["to"] = json!("+14155550102");
    let failed = (p.sample)("message-failed", &SampleIds::fresh());
    let body = serde_json::to_vec(&[&received, &delivered, &to_another, &failed]).expect("json");
    let response = app.post_signed(p.name, p, &body, &secret_for(p.name)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    let answered = answer["events"].as_array().expect("events").clone();
    assert_eq!(answered.len(), 4);
    assert!(answered.iter().all(|e| e["duplicate"] == false), "{answer}");
    let event = async |i: usize| {
        let id = answered[i]["event_id"].as_str().expect("id").to_string();
        app.api(&format!("/api/events/{id}")).await.1
    };
    let inbound = event(0).await;
    assert_eq!(inbound["type"], "message.received");
    assert_eq!(inbound["from"], "+14155550101");
    assert_eq!(inbound["body"], "Can I move my appointment to Friday?");
    assert_eq!(inbound["payload"], received);
    assert_eq!(
        event(2).await["to"],
        "+14155550102",
        "a receipt per recipient"
    );
    let failure = event(3).await;
    assert_eq!(failure["type"], "message.failed");
    assert_eq!(failure["error_code"], "4720");

    // Redelivered: each event a duplicate.
    let again: Value = app
        .post_signed(p.name, p, &body, &secret_for(p.name))
        .await
        .json()
        .await
        .expect("json");
    let flags: Vec<_> = again["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["duplicate"].clone())
        .collect();
    assert_eq!(flags, [true, true, true, true]);

    let wrong = app.post_signed(p.name, p, &body, "bandwidth:guess").await;
    assert_eq!(wrong.status(), 401);
    assert!(!wrong.headers().contains_key("www-authenticate"));
    let bearer = [("authorization", "Bearer abc".to_string())];
    let response = app.post_with(p.name, &bearer, &body).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"smshook\""
    );
    let message = refusal_message(response, 401).await;
    assert!(message.contains("not Basic credentials"), "{message}");
    // An Integify webhook at this source: the answer says whose it seems.
    let integify = provider("integify");
    let crossed = sample_bytes(integify, "sms.delivered");
    let crossed = app
        .post_signed(p.name, integify, &crossed, &secret_for("integify"))
        .await;
    let message = refusal_message(crossed, 401).await;
    assert!(message.contains("signed as integify signs"), "{message}");
    assert_eq!(app.events("source=bandwidth").await.len(), 4);
    app.stop().await;
}

/// Sinch's Conversation API signs body, nonce and timestamp: a retry,
/// signed anew, is a duplicate; a callback without its nonce, under an
/// algorithm Sinch does not use, or changed, is refused.
async fn sinch_signs_the_body_with_a_nonce_and_a_timestamp(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("sinch");
    let mut stop = (p.sample)("MESSAGE_INBOUND", &SampleIds::fresh());
    stop["message"]["contact_message"]["text_message"]["text"] = json!("STOP");
    let body = serde_json::to_vec(&stop).expect("json");
    let (status, first) = app.send_body(p, &body).await;
    assert_eq!(status, 200, "{first}");
    let event = app.event_answered(&first).await;
    assert_eq!(event["type"], "message.received");
    assert_eq!(event["from"], "46732001122");
    assert_eq!(event["provider_type"], "MESSAGE_INBOUND");
    let (status, optout) = app.api("/api/optouts/46732001122").await;
    assert_eq!(
        (status, &optout["opted_out"]),
        (200, &json!(true)),
        "{optout}"
    );
    // A retry comes with another nonce and time: the same event.
    let (_, again) = app.send_body(p, &body).await;
    assert_duplicate_of(&again, &first);

    let signed = p
        .sign(&secret_for(p.name), &body, 1_700_000_000, "")
        .expect("signed");
    let response = app
        .post_with(
            p.name,
            &without(&signed, "x-sinch-webhook-signature-nonce"),
            &body,
        )
        .await;
    let message = refusal_message(response, 401).await;
    assert!(message.contains("nonce"), "{message}");
    let mut md5 = without(&signed, "x-sinch-webhook-signature-algorithm");
    md5.push(("x-sinch-webhook-signature-algorithm", "HmacMD5".into()));
    let message = refusal_message(app.post_with(p.name, &md5, &body).await, 401).await;
    assert!(message.contains("HmacSHA256"), "{message}");
    let changed = replaced(&body, "STOP", "START");
    let response = app.post_with(p.name, &signed, &changed).await;
    assert_eq!(response.status(), 401);
    assert_eq!(app.events("source=sinch").await.len(), 1);
    app.stop().await;
}

/// Sinch's SMS API, with the Basic credentials or the HMAC Sinch sets on
/// callbacks: a recipient's failure carries its code, a batch's summary is
/// kept and a retry of it, however authenticated, is one.
async fn sinch_sms_reports_each_recipients_status_and_batch_summaries(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("sinch-sms");
    let mut failed = (p.sample)("recipient_delivery_report_sms", &SampleIds::fresh());
    (failed["status"], failed["code"]) = (json!("Failed"), json!(402));
    let (status, answer) = app
        .send_body(p, &serde_json::to_vec(&failed).expect("json"))
        .await;
    assert_eq!(status, 200, "{answer}");
    let event = app.event_answered(&answer).await;
    assert_eq!(
        (&event["type"], &event["error_code"]),
        (&json!("message.failed"), &json!("402"))
    );
    assert_eq!(event["to"], "46732001122");

    let summary = serde_json::to_vec(&(p.sample)("delivery_report_sms", &SampleIds::fresh()));
    let summary = summary.expect("json");
    let (_, first) = app.send_body(p, &summary).await;
    assert_eq!(
        app.event_answered(&first).await["type"],
        "delivery_report_sms"
    );
    // Signed with Sinch's HMAC (the test's secret is no user:password),
    // then sent again with Basic credentials: the same event either way.
    let signed = p
        .sign(&secret_for(p.name), &summary, 0, "")
        .expect("signed");
    assert!(
        signed
            .iter()
            .any(|(h, _)| *h == "x-sinch-webhook-signature")
    );
    let again = answer_json(app.post_with(p.name, &signed, &summary).await).await;
    assert_duplicate_of(&again, &first);
    let credentials = smshook::signature::basic::header_value(&secret_for(p.name));
    let basic = [("authorization", credentials)];
    let again = answer_json(app.post_with(p.name, &basic, &summary).await).await;
    assert_duplicate_of(&again, &first);
    let changed = replaced(&summary, "delivery_report_sms", "delivery_report_mms");
    let response = app.post_with(p.name, &signed, &changed).await;
    assert_eq!(response.status(), 401, "the HMAC binds the body");

    let unsigned = app.post_with(p.name, &[], &summary).await;
    assert!(unsigned.headers().contains_key("www-authenticate"));
    let message = refusal_message(unsigned, 401).await;
    assert!(message.contains("x-sinch-webhook-signature"), "{message}");
    assert_eq!(app.events("source=sinch-sms").await.len(), 2);
    app.stop().await;
}

/// Bird signs a timestamp, the subscription's URL (the source's
/// public_url, plus the query the request carries) and the body's hash. A
/// retry keeps its first timestamp, hours old: it is taken, and is a
/// duplicate. A webhook signed for another URL, or without its timestamp,
/// is refused with a message that says what to check.
async fn bird_signs_a_timestamp_its_url_and_the_bodys_hash(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("bird");
    let secret = secret_for(p.name);
    let mut stop = (p.sample)("sms.inbound", &SampleIds::fresh());
    stop["payload"]["body"]["text"]["text"] = json!("STOP");
    let body = serde_json::to_vec(&stop).expect("json");
    let (status, first) = app.send_body(p, &body).await;
    assert_eq!(status, 200, "{first}");
    let event = app.event_answered(&first).await;
    assert_eq!(event["type"], "message.received");
    assert_eq!(event["provider_type"], "sms.inbound");
    assert_eq!(event["from"], "+31612345678");
    let (_, optout) = app.api("/api/optouts/+31612345678").await;
    assert_eq!(optout["opted_out"], json!(true), "{optout}");
    let retry = p
        .sign(&secret, &body, 1_700_000_000, PUBLIC_URL)
        .expect("signed");
    let again = answer_json(app.post_with(p.name, &retry, &body).await).await;
    assert_duplicate_of(&again, &first);

    let mut failed = (p.sample)("sms.outbound", &SampleIds::fresh());
    failed["payload"]["status"] = json!("delivery_failed");
    failed["payload"]["failure"] = json!({"code": 15005});
    let failed = serde_json::to_vec(&failed).expect("json");
    let query = "?tenant=acme";
    let for_query = p
        .sign(
            &secret,
            &failed,
            1_700_000_000,
            &format!("{PUBLIC_URL}{query}"),
        )
        .expect("signed");
    let response = app.post_with(p.name, &for_query, &failed).await;
    let message = refusal_message(response, 401).await;
    assert!(message.contains("public_url"), "{message}");
    let response = app
        .post_with(&format!("{}{query}", p.name), &for_query, &failed)
        .await;
    let event = app.event_answered(&answer_json(response).await).await;
    assert_eq!(
        (&event["type"], &event["error_code"]),
        (&json!("message.failed"), &json!("15005"))
    );

    let untimed = without(&retry, "messagebird-request-timestamp");
    let message = refusal_message(app.post_with(p.name, &untimed, &body).await, 401).await;
    assert!(message.contains("timestamp"), "{message}");
    assert_eq!(app.events("source=bird").await.len(), 2);
    app.stop().await;
}

/// Telesign signs the body under its base64 API key, `TSA <Customer
/// ID>:<signature>`: a STOP it recognised opts the number out; each status
/// code of a message is a report of its own, a retry of one a duplicate;
/// a changed body or a missing header is refused.
async fn telesign_signs_with_its_api_key_and_reports_by_status_code(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("telesign");
    let mut stop = (p.sample)("mo_sms", &SampleIds::fresh());
    stop["user_response"]["action"] = json!("stop");
    stop["user_response"]["mo_message"] = json!("Arret");
    let (status, answer) = app
        .send_body(p, &serde_json::to_vec(&stop).expect("json"))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, optout) = app.api("/api/optouts/15558675310").await;
    assert_eq!(optout["opted_out"], json!(true), "{optout}");

    let ids = SampleIds::fresh();
    let report = |code: u64, description: &str| {
        let mut v = (p.sample)("delivery_report", &ids);
        (v["status"]["code"], v["status"]["description"]) = (json!(code), json!(description));
        serde_json::to_vec(&v).expect("json")
    };
    let (_, sent) = app.send_body(p, &report(203, "Delivered to gateway")).await;
    let failed = report(211, "Permanent phone error");
    let (_, first) = app.send_body(p, &failed).await;
    assert_ne!(first["event_id"], sent["event_id"]);
    let event = app.event_answered(&first).await;
    assert_eq!(
        (&event["type"], &event["error_code"], &event["error_reason"]),
        (
            &json!("message.failed"),
            &json!("211"),
            &json!("Permanent phone error")
        )
    );
    let (_, again) = app.send_body(p, &failed).await;
    assert_duplicate_of(&again, &first);

    let signed = p.sign(&secret_for(p.name), &failed, 0, "").expect("signed");
    let changed = replaced(&failed, "211", "200");
    let response = app.post_with(p.name, &signed, &changed).await;
    assert_eq!(response.status(), 401);
    let unsigned = without(&signed, "x-ts-authorization");
    let message = refusal_message(app.post_with(p.name, &unsigned, &failed).await, 401).await;
    assert!(message.contains("x-ts-authorization"), "{message}");
    assert_eq!(app.events("source=telesign").await.len(), 3);
    app.stop().await;
}

/// Plivo signs the source's public_url (its query left out) and a nonce,
/// under the number's account's token (V2) and the main account's (Ma-V2):
/// either verifies. An inbound message is answered with an empty Plivo XML
/// document and stored as its form's parameters; a status callback is an
/// event of its own, by POST or GET; a nonce that was not signed, or none,
/// is refused.
async fn plivo_signs_its_url_and_a_nonce_under_either_accounts_token(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("plivo");
    let body = sample_bytes(p, "inbound");
    let response = app
        .post_signed(
            &format!("{}?from=app", p.name),
            p,
            &body,
            &secret_for(p.name),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/xml");
    let id = response.headers()["smshook-event-id"]
        .to_str()
        .expect("id")
        .to_string();
    let (_, event) = app.api(&format!("/api/events/{id}")).await;
    assert_eq!(
        (&event["type"], &event["from"], &event["body"]),
        (
            &json!("message.received"),
            &json!("14155550123"),
            &json!("Can I move my appointment to Friday?")
        )
    );
    assert_eq!(event["payload"]["Type"], "sms", "the form, as JSON");

    // A subaccount's number: V2 under a token no source holds, Ma-V2 under
    // the main account's, which the source holds.
    let failed = sample_bytes(p, "undelivered");
    let nonce = "05429567804466091622";
    let [(_, main), _] = smshook::signature::plivo::sign(&secret_for(p.name), PUBLIC_URL, nonce);
    let [(_, sub), _] = smshook::signature::plivo::sign("subaccount-token", PUBLIC_URL, nonce);
    let headers = vec![
        ("content-type", p.content_type().to_string()),
        ("x-plivo-signature-v2", sub),
        ("x-plivo-signature-ma-v2", main),
        ("x-plivo-signature-v2-nonce", nonce.to_string()),
    ];
    let response = app.post_with(p.name, &headers, &failed).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["smshook-event-id"].to_str().expect("id");
    let (_, event) = app.api(&format!("/api/events/{id}")).await;
    assert_eq!(
        (&event["type"], &event["error_code"]),
        (&json!("message.failed"), &json!("30"))
    );

    // A callback whose method is GET: its parameters in the query, which
    // (like a POST's form) V2 leaves unsigned.
    let [(_, sig), (_, nonce)] =
        smshook::signature::plivo::sign(&secret_for(p.name), PUBLIC_URL, "7");
    let query = String::from_utf8(sample_bytes(p, "delivered")).expect("a form");
    let response = app
        .client
        .get(app.url(&format!("/webhooks/{}?{query}", p.name)))
        .header("x-plivo-signature-v2", sig)
        .header("x-plivo-signature-v2-nonce", nonce)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let id = response.headers()["smshook-event-id"].to_str().expect("id");
    let (_, event) = app.api(&format!("/api/events/{id}")).await;
    assert_eq!(event["type"], "message.delivered");
    assert_eq!(
        event["payload"]["Status"], "delivered",
        "the query, as JSON"
    );

    let mut replayed = headers.clone();
    replayed[3].1 = "05429567804466091623".into();
    let message = refusal_message(app.post_with(p.name, &replayed, &failed).await, 401).await;
    assert!(message.contains("public_url"), "{message}");
    replayed.truncate(3);
    let message = refusal_message(app.post_with(p.name, &replayed, &failed).await, 401).await;
    assert!(message.contains("nonce"), "{message}");
    assert_eq!(app.events("source=plivo").await.len(), 3);
    app.stop().await;
}

/// `body` with `from` replaced by `to`: a body changed after signing.
fn replaced(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = std::str::from_utf8(body).expect("utf-8");
    text.replace(from, to).into_bytes()
}

/// `headers` without the one named `name`.
fn without(headers: &[(&'static str, String)], name: &str) -> Vec<(&'static str, String)> {
    headers
        .iter()
        .filter(|(h, _)| *h != name)
        .cloned()
        .collect()
}

/// `again` answers a retry of the event `first` answered.
fn assert_duplicate_of(again: &Value, first: &Value) {
    assert_eq!(
        (&again["event_id"], &again["duplicate"]),
        (&first["event_id"], &json!(true)),
        "{again}"
    );
}

/// The message of a refusal, once its status is checked.
async fn refusal_message(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let answer: Value = response.json().await.expect("json");
    answer["message"].as_str().unwrap_or_default().to_string()
}

/// A sample's values as the form Vonage's dashboard `POST` (or, as a
/// query, `GET`) sends, signed under the source's secret.
fn vonage_sms_form(event_type: &str) -> (Value, Vec<u8>) {
    let p = provider("vonage-sms");
    let sample = (p.sample)(event_type, &SampleIds::fresh());
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in sample.as_object().expect("an object") {
        form.append_pair(name, value.as_str().expect("a string"));
    }
    let now = chrono::Utc::now().timestamp();
    let body = p
        .sign_body(&secret_for(p.name), form.finish().as_bytes(), now)
        .expect("signed");
    (sample, body)
}

/// Vonage's SMS API signs a `sig` parameter among the others, sent as the
/// dashboard says: JSON (`POST-JSON`), a form (`POST`) or a query (`GET`).
async fn vonage_sms_is_signed_in_its_parameters_however_sent(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("vonage-sms");
    let json = sample_bytes(p, "inbound");
    let (status, first) = app.send_body(p, &json).await;
    assert_eq!(status, 200, "{first}");
    let (_, again) = app.send_body(p, &json).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["event_id"], first["event_id"]);
    let id = first["event_id"].as_str().expect("id");
    let (_, event) = app.api(&format!("/api/events/{id}")).await;
    assert_eq!(event["type"], "message.received");
    assert_eq!(
        (&event["from"], &event["to"]),
        (&json!("447700900001"), &json!("447700900000"))
    );
    assert_eq!(event["payload"], sent_payload(p, &json), "stored as sent");
    assert!(event["payload"]["sig"].is_string());

    let (_, form) = vonage_sms_form("delivered");
    let form_type = [(
        "content-type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    let answer = app.post_with(p.name, &form_type, &form).await;
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.expect("json");
    let event = app.event_answered(&answer).await;
    assert_eq!(event["type"], "message.delivered");
    assert_eq!(
        (&event["from"], &event["to"]),
        (&json!("AcmeInc"), &json!("447700900001"))
    );
    let params: Value =
        serde_json::from_str(&smshook::providers::payload::form_body_json(&form)).expect("json");
    assert_eq!(
        event["payload"], params,
        "the form's parameters as an object"
    );

    let (sample, query) = vonage_sms_form("failed");
    let query = String::from_utf8(query).expect("text");
    let url = app.url(&format!("/webhooks/vonage-sms?{query}"));
    let answer = app.client.get(&url).send().await.expect("send");
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.expect("json");
    let event = app.event_answered(&answer).await;
    assert_eq!(event["type"], "message.failed");
    assert_eq!(event["error_code"], "1");
    assert_eq!(event["message_id"], sample["messageId"]);
    let again: Value = app
        .client
        .get(&url)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(again["duplicate"], true, "a retried GET");

    // GET is for sources whose provider signs the query; HEAD for none.
    let get = app
        .client
        .get(app.url("/webhooks/integify?id=1"))
        .send()
        .await
        .expect("send");
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let head = app.client.head(&url).send().await.expect("send");
    assert_eq!(head.status(), 405);
    assert_eq!(head.headers()["allow"], "GET, POST");
    // A refused GET is logged by its query: its size and fingerprint.
    let unsigned = app.get("/webhooks/vonage-sms?msisdn=1&text=hi").await;
    assert_eq!(unsigned.status(), 401);
    // Refusals are logged in the writer's next batch: wait for it.
    let mut row = None;
    for _ in 0..500 {
        let log = app.requests().await;
        row = log
            .into_iter()
            .find(|r| r["status"] == 401 && r["source"] == "vonage-sms");
        if row.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let row = row.expect("the refused GET is logged");
    assert_eq!(row["size"], 16);
    let fingerprint = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"msisdn=1&text=hi"));
    assert_eq!(row["body_sha256"], fingerprint.as_str());
    assert_eq!(app.events("source=vonage-sms").await.len(), 3);
    app.stop().await;
}

async fn vonage_sms_refuses_what_its_secret_did_not_sign(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("vonage-sms");
    let refused = |answer: Value, says: &str| {
        assert_eq!(answer["error"], "invalid_signature", "{answer}");
        let message = answer["message"].as_str().expect("message");
        assert!(message.contains(says), "{message:?} should say {says:?}");
    };
    let post = |body: Vec<u8>| {
        let app = &app;
        async move {
            let answer = app.post_with(p.name, &[], &body).await;
            assert_eq!(answer.status(), 401);
            answer.json::<Value>().await.expect("json")
        }
    };
    let unsigned = p.encode(&(p.sample)("inbound", &SampleIds::fresh()));
    refused(
        post(unsigned.clone()).await,
        "support enables signed webhooks",
    );
    let now = chrono::Utc::now().timestamp();
    let wrong = p
        .sign_body(&wrong_secret_for(p.name), &unsigned, now)
        .expect("signed");
    refused(post(wrong).await, "does not match");

    let signed = sample_bytes(p, "inbound");
    let mut changed: Value = serde_json::from_slice(&signed).expect("json");
    changed["text"] = json!("STOP");
    refused(
        post(changed.to_string().into_bytes()).await,
        "does not match",
    );
    let mut added = serde_json::from_slice::<Value>(&signed).expect("json");
    added["extra"] = json!("not signed");
    refused(post(added.to_string().into_bytes()).await, "does not match");
    let mut malformed = serde_json::from_slice::<Value>(&signed).expect("json");
    malformed["sig"] = json!("sha256=abc");
    refused(post(malformed.to_string().into_bytes()).await, "not a hex");

    let (_, form) = vonage_sms_form("delivered");
    let mut twice = form.clone();
    twice.extend_from_slice(b"&status=failed");
    refused(post(twice).await, "more than once");

    // Signed as the Messages API signs: the source's provider is named.
    let messages = provider("vonage");
    let body = sample_bytes(messages, "inbound");
    let crossed = app
        .post_signed(p.name, messages, &body, &secret_for("vonage"))
        .await;
    let answer: Value = crossed.json().await.expect("json");
    refused(answer, "it is signed as vonage signs");
    assert!(app.events("source=vonage-sms").await.is_empty());
    app.stop().await;
}

/// An Amazon SNS message as SNS posts it (`text/plain`, the default of
/// its delivery policy), signed by `key` (PEM).
async fn post_sns(app: &TestApp, source: &str, message: &Value, key: &str) -> (u16, Value) {
    let p = provider("aws-sns");
    let body = p
        .sign_body(key, message.to_string().as_bytes(), 0)
        .expect("signed");
    let headers = [("content-type", "text/plain; charset=UTF-8".to_string())];
    let response = app.post_with(source, &headers, &body).await;
    let status = response.status().as_u16();
    (status, crate::support::answer_json(response).await)
}

/// A sample SNS message of `event_type` with the carried message changed
/// by `change` (JSON).
fn sns_message(event_type: &str, change: impl FnOnce(&mut Value)) -> Value {
    let p = provider("aws-sns");
    let mut envelope = (p.sample)(event_type, &SampleIds::fresh());
    // A subscription confirmation's is text.
    let carried = envelope["Message"]
        .as_str()
        .map(serde_json::from_str::<Value>);
    if let Some(Ok(mut message)) = carried {
        change(&mut message);
        envelope["Message"] = json!(message.to_string());
    }
    envelope
}

/// SNS signs its messages with AWS's key: a message is taken from a topic
/// the source names, signed by a pinned key, its certificate's URL AWS's.
/// Inbound messages are keyed by their own id (SNS's id changes if the SMS
/// service publishes again); a STOP opts out; a subscription confirmation
/// is stored.
async fn aws_sns_messages_are_verified_by_topic_and_awss_key(backend: Backend) {
    let app = TestApp::on(backend).await;
    let key = secret_for("aws-sns");
    let inbound = sns_message("inbound", |m| m["messageBody"] = json!("STOP"));
    let (status, answer) = post_sns(&app, "aws-sns", &inbound, &key).await;
    assert_eq!(status, 200, "{answer}");
    let event = app.event_answered(&answer).await;
    assert_eq!(event["type"], "message.received");
    assert_eq!(event["from"], "+14255550182");
    assert_eq!(event["to"], "+12125550101");
    assert_eq!(event["body"], "STOP");
    assert_eq!(event["provider_event_id"], inbound["MessageId"]);
    assert_eq!(event["payload"]["TopicArn"], inbound["TopicArn"]);
    assert_eq!(event["opt_out"], true, "STOP");
    // Published again by the SMS service: a new SNS id, the same message.
    let mut again = inbound.clone();
    again["MessageId"] = json!("0b4a3a55-6f6e-4b8e-9b55-cf1c2a4c9d11");
    let (status, answer2) = post_sns(&app, "aws-sns", &again, &key).await;
    assert_eq!((status, &answer2["duplicate"]), (200, &json!(true)));
    assert_eq!(answer2["event_id"], answer["event_id"]);

    let delivered = sns_message("TEXT_DELIVERED", |_| {});
    let (status, answer) = post_sns(&app, "aws-sns", &delivered, &key).await;
    assert_eq!(status, 200, "{answer}");
    let event = app.event_answered(&answer).await;
    assert_eq!(event["type"], "message.delivered");
    assert_eq!(event["status"], "DELIVERED");

    let refused = |message: Value, key: String, why: &'static str| {
        let app = &app;
        async move {
            let (status, answer) = post_sns(app, "aws-sns", &message, &key).await;
            assert_eq!(status, 401, "{why}: {answer}");
            assert_eq!(answer["error"], "invalid_signature");
            let text = answer["message"].as_str().expect("a message").to_string();
            assert!(text.contains(why), "{why}: {text}");
        }
    };
    let mut other_topic = sns_message("inbound", |_| {});
    other_topic["TopicArn"] = json!("arn:aws:sns:us-east-1:123456789012:someone-else");
    refused(other_topic, key.clone(), "TopicArn").await;
    let mut elsewhere = sns_message("inbound", |_| {});
    elsewhere["SigningCertURL"] =
        json!("https://certs.example.com/SimpleNotificationService-1.pem");
    refused(elsewhere, key.clone(), "SigningCertURL").await;
    let unpinned = sns_message("inbound", |_| {});
    refused(
        unpinned,
        wrong_secret_for("aws-sns"),
        "signing_certificates",
    )
    .await;
    // Raw message delivery: the carried message alone, unsigned.
    let raw = json!({"originationNumber": "+14255550182", "messageBody": "hi"});
    let response = app
        .post_with("aws-sns", &[], raw.to_string().as_bytes())
        .await;
    let text = refusal_message(response, 401).await;
    assert!(text.contains("raw message delivery"), "{text}");
    // A webhook of another provider's, posted to the SNS source: which.
    let integify = provider("integify");
    let body = crate::support::sample_bytes(integify, "sms.delivered");
    let crossed = app
        .post_signed("aws-sns", integify, &body, &secret_for("integify"))
        .await;
    let text = refusal_message(crossed, 401).await;
    assert!(text.contains("it is signed as integify signs"), "{text}");

    let confirmation = sns_message("SubscriptionConfirmation", |_| {});
    let (status, answer) = post_sns(&app, "aws-sns", &confirmation, &key).await;
    assert_eq!(status, 200, "{answer}");
    let event = app.event_answered(&answer).await;
    assert_eq!(event["type"], "SubscriptionConfirmation");
    assert_eq!(
        event["payload"]["SubscribeURL"],
        confirmation["SubscribeURL"]
    );
    assert_eq!(app.events("source=aws-sns").await.len(), 3);
    app.stop().await;
}

/// A source that fetches SNS's certificates answers a message whose
/// certificate it could not fetch (here: no network, or AWS's 404 for a
/// made-up name) with a 503 SNS retries; one from a topic it does not take
/// is refused without fetching anything.
async fn an_sns_certificate_that_cannot_be_fetched_is_a_503_to_retry(backend: Backend) {
    let p = provider("aws-sns");
    let fetching = smshook::config::Source {
        name: "aws-sns-fetched".into(),
        provider: p,
        secrets: vec![smshook::signature::Secret::new(
            smshook::signature::sns::SAMPLE_TOPIC_ARN,
        )],
        allowed: None,
        public_url: None,
        certificates: Some(std::sync::Arc::new(
            smshook::signature::sns::Certificates::fetched(),
        )),
    };
    let app = TestApp::spawn_with(TestOptions {
        backend,
        extra_sources: vec![fetching],
        ..Default::default()
    })
    .await;
    let key = secret_for("aws-sns");
    let mut message = sns_message("inbound", |_| {});
    message["SigningCertURL"] = json!(
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-smshook-test-0000.pem"
    );
    let p = provider("aws-sns");
    let body = p
        .sign_body(&key, message.to_string().as_bytes(), 0)
        .expect("signed");
    for _ in 0..2 {
        let response = app.post_with("aws-sns-fetched", &[], &body).await;
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["error"], "certificate_unavailable", "{answer}");
    }
    message["TopicArn"] = json!("arn:aws:sns:us-east-1:123456789012:someone-else");
    let (status, answer) = post_sns(&app, "aws-sns-fetched", &message, &key).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_signature"))
    );
    assert!(app.events("source=aws-sns-fetched").await.is_empty());
    // Refusals are logged with the next commit.
    let (_, status, _) = app.send_sample(p, "inbound").await;
    assert_eq!(status, 200);
    let requests = app.requests().await;
    assert!(
        requests
            .iter()
            .any(|r| r["reason"] == "certificate_unavailable"),
        "{requests:?}"
    );
    app.stop().await;
}

/// A long inbound message comes to Vonage's SMS API's webhook in parts,
/// in any order: each is stored as a `message.part`, and the part that
/// completes it also stores the whole message, once, retried or raced.
async fn vonage_sms_long_messages_are_joined_once_every_part_is_in(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("vonage-sms");
    let whole = "source=vonage-sms&type=message.received";
    let (status, second) = app
        .send_body(p, &vonage_part("41", 3, 2, "is split "))
        .await;
    assert_eq!((status, second["duplicate"].clone()), (200, json!(false)));
    assert_eq!(app.event_answered(&second).await["type"], "message.part");
    // Another message from the same sender, and one part of a third.
    let other = vonage_part("42", 2, 1, "Another ");
    app.send_body(p, &other).await;
    app.send_body(p, &vonage_part("43", 2, 2, "never ends"))
        .await;
    let last = vonage_part("41", 3, 3, "in three.");
    let (status, _) = app.send_body(p, &last).await;
    assert_eq!(status, 200);
    assert!(app.events(whole).await.is_empty(), "a part is missing");

    let (status, first) = app
        .send_body(p, &vonage_part("41", 3, 1, "A long text "))
        .await;
    assert_eq!(status, 200);
    let joined = app.events(whole).await;
    assert_eq!(joined.len(), 1, "{joined:?}");
    let message = &joined[0];
    assert_eq!(message["body"], "A long text is split in three.");
    assert_eq!(
        (&message["from"], &message["to"]),
        (&json!("447700900001"), &json!("447700900000"))
    );
    let first = app.event_answered(&first).await;
    assert_eq!(message["message_id"], first["message_id"]);
    assert_eq!(message["payload"]["parts"][1]["text"], "is split ");
    assert_eq!(message["payload"]["part_event_ids"][0], first["id"]);
    // A retried part finds the message stored.
    let (_, again) = app.send_body(p, &last).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(app.events(whole).await.len(), 1);

    // The two last parts of another message at once: stored once.
    let tail = vonage_part("42", 2, 2, "one.");
    let (a, b) = tokio::join!(app.send_body(p, &tail), app.send_body(p, &other));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let joined = app.events(whole).await;
    assert_eq!(joined.len(), 2, "{joined:?}");
    assert_eq!(joined[1]["body"], "Another one.");
    assert_eq!(app.events("type=message.part").await.len(), 6);
    app.stop().await;
}
