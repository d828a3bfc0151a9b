//! What peers send cannot write the log: a Basic-auth user name, a `user` header or an
//! appId with a line break never starts a line of its own in the log file the real binary
//! writes, and credentials inside an appURL show neither in the log nor in `/api/status`.

use crate::common;

use std::path::Path;

use base64::Engine as _;
use common::fake_sap::FakeSap;
use common::process::Process;
use common::server::{Endpoints, envelope_as, params};

/// The password inside the appURL; it must never be shown.
const URL_PASSWORD: &str = "s3cretURLpw";
/// What a forged line would start with.
const FORGED: &str = "FORGED";
const SOAP_USER: &str = "SAPICI";
const SOAP_PASSWORD: &str = "ici-pw";

/// An Argon2 hash of `password` with the cheapest parameters (the test's time goes into
/// the scenario, not into hashing).
fn cheap_hash(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    argon
        .hash_password_with_salt(password.as_bytes(), b"log-hygiene-salt")
        .unwrap()
        .to_string()
}

fn write_config(dir: &Path, format: &str) -> std::path::PathBuf {
    let auth = format!(
        "[[auth.soap_users]]\nname = \"{SOAP_USER}\"\npassword_hash = \"{}\"",
        cheap_hash(SOAP_PASSWORD)
    );
    common::write_config(dir, format, &auth)
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

async fn post_as(api: &Endpoints, authorization: &str, body: String) -> (u16, String) {
    let answer = api
        .request(
            false,
            "POST",
            "/",
            &[
                ("content-type", "text/xml; charset=utf-8"),
                ("authorization", authorization),
            ],
            body,
        )
        .await;
    (answer.status, answer.body)
}

/// Every line of every log file in `dir`.
fn log_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    assert!(!lines.is_empty(), "no log lines in {}", dir.display());
    lines
}

async fn hostile_peers_cannot_write_the_log(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start(&write_config(dir.path(), format));
    let api = &process.endpoints;
    let ok = basic(SOAP_USER, SOAP_PASSWORD);

    // A Basic-auth user name with a line break.
    let forged_user = basic(&format!("evil\n{FORGED} user\r\x1b[2J\u{202e}"), "wrong");
    let (status, _) = post_as(
        api,
        &forged_user,
        envelope_as("A1", "User", "getAttributes", ""),
    )
    .await;
    assert_eq!(status, 401);

    // A `user` header and a call id with line breaks.
    let header = envelope_as(
        &format!("A1\n{FORGED} header"),
        "User",
        "getAttributes",
        &params(&[("userId", "A1")]),
    );
    assert_eq!(post_as(api, &ok, header).await.0, 500);
    let call = envelope_as(
        "A1",
        "PhoneCall",
        "hold",
        &format!("<callId>c&#10;{FORGED} call&#13;</callId>"),
    );
    assert_eq!(post_as(api, &ok, call).await.0, 500);

    // An agent logs in; its appId carries `&#10;`, its appURL credentials.
    let mut sap = FakeSap::start().await;
    let url = sap
        .url
        .replace("http://", &format!("http://sapuser:{URL_PASSWORD}@"));
    let as_a1 = |op: &str, pairs: &[(&str, &str)]| envelope_as("A1", "User", op, &params(pairs));
    let (status, body) = post_as(api, &ok, as_a1("getAttributes", &[("userId", "A1")])).await;
    assert_eq!(status, 200, "{body}");
    let subscribe = envelope_as(
        "A1",
        "User",
        "subscribeUser",
        &format!("<userId>A1</userId><appURL>{url}</appURL><appId>app&#10;{FORGED} appId</appId>"),
    );
    let (status, body) = post_as(api, &ok, subscribe).await;
    assert_eq!(status, 200, "{body}");
    let addresses = "<userId>A1</userId><addresses><item>2001</item></addresses>";
    let addresses = envelope_as("A1", "User", "setAddresses", addresses);
    let ready = as_a1("setCurrentWorkmode", &[("userId", "A1"), ("workmode", "3")]);
    for request in [addresses, ready] {
        let (status, body) = post_as(api, &ok, request).await;
        assert_eq!(status, 200, "{body}");
    }
    // Delivered, so the delivery lines are written.
    assert_eq!(sap.next_event().await.name, "workmodeChanged");

    let status = api.request(true, "GET", "/api/status", &[], "").await;
    assert_eq!(status.status, 200);
    assert!(
        !status.body.contains(URL_PASSWORD),
        "/api/status shows the appURL password: {}",
        status.body
    );
    assert!(status.body.contains("sapuser:****@"), "{}", status.body);
    process.stop();

    let lines = log_lines(&dir.path().join("logs"));
    let all = lines.join("\n");
    assert!(
        all.contains(FORGED),
        "the hostile values are logged (escaped)"
    );
    for line in &lines {
        // Every line is one the logger started: a timestamp (text) or a JSON object.
        let ours = match format {
            "json" => serde_json::from_str::<serde_json::Value>(line).is_ok(),
            _ => line.starts_with(|c: char| c.is_ascii_digit()),
        };
        assert!(ours, "a line the logger did not start: {line:?}");
        // JSON escapes control characters itself; the bidi override needs no escape there
        // (it cannot end a JSON string), in text it is escaped like them.
        let raw: &[char] = match format {
            "json" => &['\r', '\x1b'],
            _ => &['\r', '\x1b', '\u{202e}'],
        };
        assert!(
            !line.contains(raw),
            "a control character reached the log: {line:?}"
        );
        assert!(
            !line.contains(URL_PASSWORD),
            "the appURL password reached the log: {line}"
        );
    }
    assert!(
        all.contains("sapuser:****@"),
        "the appURL is logged, redacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_cannot_write_the_text_log() {
    hostile_peers_cannot_write_the_log("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_cannot_write_the_json_log() {
    hostile_peers_cannot_write_the_log("json").await;
}
