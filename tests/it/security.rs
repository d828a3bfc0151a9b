//! Access control and limits over real sockets: Basic auth (401 with a SOAP fault, per-peer
//! throttling, counters), allow-lists, the admin listener's own auth, XML attacks, every
//! `[limits]` setting, and 10,000 malformed requests that leave memory flat.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use common::process::Process;
use common::server::{TestServer, envelope, ns, params};
use ici_connector::soap::parse_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// An Argon2id hash of `password`, with parameters cheap enough for tests.
fn hash(password: &str) -> String {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(1024, 1, 1, None).unwrap(),
    );
    argon
        .hash_password_with_salt(password.as_bytes(), b"ici-test-salt")
        .unwrap()
        .to_string()
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// A config with one SOAP user `SAPICI` / `sap-secret` and one admin user `ops` / `ops-pw`.
fn auth_toml(extra: &str) -> String {
    format!(
        "[auth]\nfailure_burst = 3\nfailure_refill = \"1h\"\n\
         [[auth.soap_users]]\nname = \"SAPICI\"\npassword_hash = \"{}\"\n\
         [[auth.admin_users]]\nname = \"ops\"\npassword_hash = \"{}\"\n{extra}",
        hash("sap-secret"),
        hash("ops-pw")
    )
}

/// Sends `bytes` from source address `from` (any 127/8 address works on Linux loopback)
/// and reads until the server closes or 10 s pass.
async fn raw_from(to: SocketAddr, from: IpAddr, bytes: &[u8]) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn soap_post(body: &str, authorization: Option<&str>) -> Vec<u8> {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n{auth}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn product_info() -> String {
    envelope(&ns("System"), "exchangeProductInformation", "")
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

/// A config with one SOAP user `SAPICI` / `sap-secret` (hashed with `hash`), no admin auth,
/// and `extra` lines inside `[auth]`.
fn soap_auth_toml(password_hash: &str, extra: &str) -> String {
    format!(
        "[auth]\n{extra}\n[[auth.soap_users]]\nname = \"SAPICI\"\npassword_hash = \"{password_hash}\"\n"
    )
}

/// Opens one connection per source address in `from`, and only then sends `request` on
/// all of them at once; returns each answer (read until the server closes).
async fn parallel_from(to: SocketAddr, from: &[IpAddr], request: &[u8]) -> Vec<String> {
    let mut streams = Vec::new();
    for ip in from {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(*ip, 0)).unwrap();
        streams.push(socket.connect(to).await.unwrap());
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(streams.len()));
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let (start, request) = (std::sync::Arc::clone(&start), request.to_vec());
            tokio::spawn(async move {
                start.wait().await;
                stream.write_all(&request).await.unwrap();
                let mut out = Vec::new();
                tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut out))
                    .await
                    .expect("answered within 120 s")
                    .expect("closed, not reset");
                String::from_utf8_lossy(&out).into_owned()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// The value of header `name` in a raw HTTP answer.
fn header_of<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer
        .split_once("\r\n\r\n")
        .map(|(h, _)| h)
        .unwrap_or(answer);
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// How many answers have HTTP status `status`.
fn count_status(answers: &[String], status: u16) -> u64 {
    answers.iter().filter(|a| status_of(a) == status).count() as u64
}

/// A connector child process, killed if the test fails before stopping it. Argon2 runs
/// there rather than in the test process, whose memory
/// `ten_thousand_malformed_requests_leave_the_server_up_with_flat_memory` measures.
struct Child(Option<Process>);

impl Child {
    /// Starts the binary with the listeners on port 0, the spool in `dir` and `toml`.
    fn start(dir: &std::path::Path, toml: &str) -> Child {
        let config = dir.join("ici-connector.toml");
        std::fs::write(
            &config,
            format!(
                "[soap]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
                 [events]\ndata_dir = {:?}\n{toml}",
                dir.join("data").display().to_string(),
            ),
        )
        .unwrap();
        Child(Some(Process::start(&config)))
    }

    fn stop(mut self) {
        self.0.take().unwrap().stop();
    }
}

impl std::ops::Deref for Child {
    type Target = Process;
    fn deref(&self) -> &Process {
        self.0.as_ref().unwrap()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(process) = self.0.take() {
            process.kill();
        }
    }
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

#[tokio::test]
async fn basic_auth_on_the_soap_listener() {
    let server = TestServer::start(&auth_toml("")).await;
    let good = basic("SAPICI", "sap-secret");

    // No credentials: 401, a challenge, and a SOAP fault SAP can read.
    let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), None)).await;
    assert_eq!(status_of(&answer), 401, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"ici-connector\""),
        "{answer}"
    );
    let fault = parse_request(body_of(&answer).as_bytes()).unwrap();
    assert_eq!(fault.operation.name, "Fault");
    assert_eq!(
        fault.operation.child("faultcode").unwrap().text,
        "SOAP-ENV:Client"
    );

    // Right credentials, twice (the second is served from the verified cache).
    for _ in 0..2 {
        let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), Some(&good))).await;
        assert_eq!(status_of(&answer), 200, "{answer}");
    }
    // The WSDL is behind auth too.
    let answer = server.request(false, "GET", "/?wsdl", &[], "").await;
    assert_eq!(answer.status, 401);
    let answer = server
        .request(false, "GET", "/?wsdl", &[("authorization", &good)], "")
        .await;
    assert_eq!(answer.status, 200);

    // Wrong password, unknown user, garbage: 401 each, then the peer is throttled (429)
    // even with the right password, while another peer address is not.
    for wrong in [
        basic("SAPICI", "guess"),
        basic("nobody", "sap-secret"),
        basic("SAPICI", ""),
    ] {
        let answer = raw_from(
            server.soap,
            LOCAL,
            &soap_post(&product_info(), Some(&wrong)),
        )
        .await;
        assert_eq!(status_of(&answer), 401, "{answer}");
    }
    let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), Some(&good))).await;
    assert_eq!(status_of(&answer), 429, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after:"),
        "{answer}"
    );
    let answer = raw_from(server.soap, OTHER, &soap_post(&product_info(), Some(&good))).await;
    assert_eq!(status_of(&answer), 200, "{answer}");

    // Counted; visible to the admin with the admin's own credentials.
    let status = server
        .request(
            true,
            "GET",
            "/api/status",
            &[("authorization", &basic("ops", "ops-pw"))],
            "",
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(status["security"]["auth_failures"], 3);
    assert_eq!(status["security"]["auth_throttled"], 1);
    assert!(status["security"]["auth_missing"].as_u64().unwrap() >= 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_from_one_address_verify_at_most_the_burst() {
    let dir = tempfile::tempdir().unwrap();
    let child = Child::start(
        dir.path(),
        // Slots for all: only the failure limit stands between them and Argon2.
        &soap_auth_toml(
            &hash("sap-secret"),
            "failure_burst = 10\nfailure_refill = \"1h\"\nmax_parallel_verifications = 100",
        ),
    );
    let server = &child.endpoints;
    let wrong = soap_post(&product_info(), Some(&basic("SAPICI", "guess")));
    let answers = parallel_from(server.soap, &[LOCAL; 100], &wrong).await;
    for answer in &answers {
        assert!(
            [401, 429].contains(&status_of(answer)),
            "only refusals expected: {answer}"
        );
    }
    let security = server.status().await["security"].clone();
    let verified = security["auth_verifications"].as_u64().unwrap();
    eprintln!(
        "100 parallel wrong passwords: {verified} Argon2 verifications, {} x 401, {} x 429",
        count_status(&answers, 401),
        count_status(&answers, 429),
    );
    assert!(
        (1..=10).contains(&verified),
        "{verified} verifications for a burst of 10"
    );
    assert_eq!(count_status(&answers, 401), verified);
    assert_eq!(security["auth_failures"], verified);
    child.stop();
}

#[tokio::test]
async fn unknown_users_cost_an_argon2_verification_like_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let child = Child::start(
        dir.path(),
        &soap_auth_toml(
            &hash("sap-secret"),
            "failure_burst = 10\nfailure_refill = \"1h\"",
        ),
    );
    let server = &child.endpoints;
    let verifications = async || {
        server.status().await["security"]["auth_verifications"]
            .as_u64()
            .unwrap()
    };
    let cases = [
        ("SAPICI", "guess", 401, 1),
        ("nobody", "guess", 401, 2),
        ("nobody", "sap-secret", 401, 3),
        ("SAPICI", "sap-secret", 200, 4),
        // A remembered password needs no Argon2 run.
        ("SAPICI", "sap-secret", 200, 4),
    ];
    for (user, password, status, expected) in cases {
        let request = soap_post(&product_info(), Some(&basic(user, password)));
        let answer = raw_from(server.soap, LOCAL, &request).await;
        assert_eq!(status_of(&answer), status, "{user}: {answer}");
        assert_eq!(verifications().await, expected, "after {user} / {password}");
    }
    child.stop();
}

#[tokio::test]
async fn retry_after_is_the_time_to_the_next_allowed_attempt() {
    const REFILL_SECS: u64 = 45;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::start(
        dir.path(),
        &soap_auth_toml(
            &hash("sap-secret"),
            &format!("failure_burst = 1\nfailure_refill = \"{REFILL_SECS}s\""),
        ),
    );
    let server = &child.endpoints;
    let wrong = soap_post(&product_info(), Some(&basic("SAPICI", "guess")));
    let failed_at = std::time::Instant::now();
    assert_eq!(status_of(&raw_from(server.soap, LOCAL, &wrong).await), 401);
    let answer = raw_from(server.soap, LOCAL, &wrong).await;
    assert_eq!(status_of(&answer), 429, "{answer}");
    let retry_after: u64 = header_of(&answer, "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    let earliest = REFILL_SECS.saturating_sub(failed_at.elapsed().as_secs() + 1);
    assert!(
        (earliest..=REFILL_SECS).contains(&retry_after),
        "Retry-After {retry_after}, the next attempt is allowed in {earliest}..={REFILL_SECS} s"
    );
    child.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_beyond_the_parallel_limit_get_503_without_argon2() {
    // A hash slow enough (at least 0.1 s even in a release build) that 16 verifications
    // one at a time take longer than the second a request waits for a slot; small in
    // memory.
    let slow_hash = {
        use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(256, 512, 1, None).unwrap(),
        )
        .hash_password_with_salt(b"sap-secret", b"ici-test-salt")
        .unwrap()
        .to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let child = Child::start(
        dir.path(),
        &soap_auth_toml(
            &slow_hash,
            "failure_burst = 10\nmax_parallel_verifications = 1",
        ),
    );
    let server = &child.endpoints;
    // Each from its own address, so the per-peer failure limit plays no part.
    let peers: Vec<IpAddr> = (10..26)
        .map(|i| IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, i)))
        .collect();
    let wrong = soap_post(&product_info(), Some(&basic("SAPICI", "guess")));
    let answers = parallel_from(server.soap, &peers, &wrong).await;
    let (denied, busy) = (count_status(&answers, 401), count_status(&answers, 503));
    assert_eq!(denied + busy, peers.len() as u64, "{answers:#?}");
    assert!(busy > 0, "no request was refused for want of a slot");
    for answer in answers.iter().filter(|a| status_of(a) == 503) {
        assert_eq!(header_of(answer, "retry-after"), Some("1"), "{answer}");
        assert!(body_of(answer).contains("Fault"), "a SOAP fault: {answer}");
    }
    let security = server.status().await["security"].clone();
    assert_eq!(security["auth_verifications"], denied);
    assert_eq!(security["auth_busy"], busy);
    child.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_first_requests_with_the_right_password_share_one_verification() {
    // SAP's first requests after a start: many at once, one user, one password.
    let dir = tempfile::tempdir().unwrap();
    let child = Child::start(
        dir.path(),
        &soap_auth_toml(&hash("sap-secret"), "max_parallel_verifications = 1"),
    );
    let server = &child.endpoints;
    let good = soap_post(&product_info(), Some(&basic("SAPICI", "sap-secret")));
    let answers = parallel_from(server.soap, &[LOCAL; 20], &good).await;
    assert_eq!(count_status(&answers, 200), 20, "{answers:#?}");
    let security = server.status().await["security"].clone();
    assert_eq!(security["auth_verifications"], 1);
    child.stop();
}

/// Peak resident set size (`VmHWM`) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_flood_leaves_the_peak_memory_bounded() {
    use argon2::{Argon2, PasswordHasher};
    // The parameters `hash-password` uses (argon2's defaults): 19 MiB per verification.
    let argon = Argon2::default();
    let hash = argon
        .hash_password_with_salt(b"sap-secret", b"ici-test-salt")
        .unwrap()
        .to_string();
    let per_verification_kib = u64::from(argon.params().m_cost());
    let dir = tempfile::tempdir().unwrap();
    let process = Child::start(
        dir.path(),
        &soap_auth_toml(&hash, "failure_burst = 10\nfailure_refill = \"1h\""),
    );
    let pid = process.child.id();
    let api = &process.endpoints;
    let good = soap_post(&product_info(), Some(&basic("SAPICI", "sap-secret")));
    assert_eq!(status_of(&raw_from(api.soap, OTHER, &good).await), 200);
    let before = peak_rss_kib(pid);
    let wrong = soap_post(&product_info(), Some(&basic("SAPICI", "guess")));
    let answers = parallel_from(api.soap, &[LOCAL; 100], &wrong).await;
    let after = peak_rss_kib(pid);
    let verified = api.status().await["security"]["auth_verifications"]
        .as_u64()
        .unwrap();
    eprintln!(
        "peak RSS before {} MiB, after 100 parallel wrong passwords {} MiB \
         ({verified} Argon2 verifications in all; {} x 401, {} x 429, {} x 503)",
        before / 1024,
        after / 1024,
        count_status(&answers, 401),
        count_status(&answers, 429),
        count_status(&answers, 503)
    );
    process.stop();
    // At most one verification per core runs at a time; allow one more, and slack for the
    // connections themselves.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let bound = (cores + 1) * per_verification_kib + 32 * 1024;
    assert!(
        after.saturating_sub(before) < bound,
        "peak RSS grew by {} MiB (bound {} MiB)",
        after.saturating_sub(before) / 1024,
        bound / 1024
    );
    assert!(verified <= 1 + 10, "{verified} verifications");
}

#[tokio::test]
async fn admin_listener_has_its_own_auth_but_probes_stay_open() {
    let server = TestServer::start(&auth_toml("")).await;
    assert!(server.healthy().await, "/healthz needs no credentials");
    assert_eq!(
        server.request(true, "GET", "/readyz", &[], "").await.status,
        200
    );
    for path in ["/api/status", "/sim/calls"] {
        let answer = server.request(true, "GET", path, &[], "").await;
        assert_eq!(answer.status, 401, "{path}");
        assert!(answer.headers.contains_key("www-authenticate"));
        // SOAP credentials are not admin credentials.
        let answer = server
            .request(
                true,
                "GET",
                path,
                &[("authorization", &basic("SAPICI", "sap-secret"))],
                "",
            )
            .await;
        assert_eq!(answer.status, 401, "{path}");
    }
    let answer = server
        .request(
            true,
            "GET",
            "/api/status",
            &[("authorization", &basic("ops", "ops-pw"))],
            "",
        )
        .await;
    assert_eq!(answer.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn simulator_control_api_exists_with_the_sim_switch() {
    // The control API is only wired up when the switch is the simulator (lib.rs passes
    // `None` otherwise, and /sim answers 404); with the simulator it answers.
    let server = TestServer::start("").await;
    let (status, _) = server.sim("GET", "/calls", serde_json::Value::Null).await;
    assert_eq!(status, 200);
    server.stop().await;

    // With a real switch (an Asterisk that is not even there) /sim does not exist.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = TestServer::start(&format!(
        "[switch]\nkind = \"asterisk\"\n[switch.asterisk]\nhost = \"127.0.0.1\"\nport = {port}\n\
         username = \"u\"\nsecret = \"s\"\nreconnect_min = \"50ms\"\nreconnect_max = \"100ms\"\n"
    ))
    .await;
    for (method, path) in [("GET", "/calls"), ("POST", "/calls"), ("GET", "/agents")] {
        let (status, _) = server.sim(method, path, serde_json::Value::Null).await;
        assert_eq!(status, 404, "{method} /sim{path}");
    }
    assert!(server.healthy().await);
    server.stop().await;
}

#[tokio::test]
async fn source_address_allow_lists() {
    let server = TestServer::start(
        "[access]\nsoap_allow = [\"127.0.0.2/32\"]\nadmin_allow = [\"127.0.0.0/8\"]",
    )
    .await;
    // 127.0.0.1 is not allowed on the SOAP listener: closed without a byte.
    let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), None)).await;
    assert_eq!(answer, "");
    let answer = raw_from(server.soap, OTHER, &soap_post(&product_info(), None)).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(server.healthy().await);
    let status = server.request(true, "GET", "/api/status", &[], "").await;
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(status["security"]["connections_refused"], 1);
    server.stop().await;

    let server = TestServer::start("[access]\nadmin_allow = [\"10.0.0.0/8\"]").await;
    let answer = raw_from(
        server.admin,
        LOCAL,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(answer, "");
    server.stop().await;
}

#[tokio::test]
async fn external_entities_and_entity_expansion_are_refused() {
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), "TOP-SECRET-CONTENT").unwrap();
    let server = TestServer::start("").await;
    let op = |user: &str| {
        envelope(
            &ns("User"),
            "getAttributes",
            &format!("<userId>{user}</userId>"),
        )
    };
    let xxe = format!(
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{}">]>{}"#,
        secret_file.path().display(),
        op("&xxe;")
    );
    let parameter_entity = format!(
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>{}"#,
        op("A")
    );
    let laughs = format!(
        r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>{}"#,
        op("&lol2;")
    );
    for body in [xxe, parameter_entity, laughs] {
        let answer = server.post(body).await;
        assert_eq!(
            answer.fault(),
            (
                "SOAP-ENV:Client".to_string(),
                "DOCTYPE is not allowed".to_string()
            )
        );
        assert!(!answer.body.contains("TOP-SECRET"));
    }
    // An entity reference without a DTD is not resolved either.
    let answer = server.post(op("&xxe;")).await;
    assert_eq!(answer.fault().1, "undefined entity");
    assert!(server.healthy().await);
    server.stop().await;
}

#[tokio::test]
async fn xml_size_limits_give_client_faults() {
    let server = TestServer::start(
        "[limits]\nmax_xml_depth = 8\nmax_xml_elements = 50\nmax_xml_text_bytes = 1000\nmax_xml_attribute_bytes = 100",
    )
    .await;
    let deep = format!("{}x{}", "<a>".repeat(10), "</a>".repeat(10));
    let many = "<b/>".repeat(60);
    let long_text = params(&[("userId", &"U".repeat(1001))]);
    let long_attr = format!(r#"<userId note="{}">A</userId>"#, "n".repeat(101));
    let cases = [
        (deep, "XML too deep"),
        (many, "too many XML elements"),
        (long_text, "XML text too long"),
        (long_attr, "XML attribute too long"),
    ];
    for (inner, expected) in cases {
        let answer = server
            .post(envelope(&ns("User"), "getAttributes", &inner))
            .await;
        assert_eq!(
            answer.fault(),
            ("SOAP-ENV:Client".to_string(), expected.to_string())
        );
    }
    // Text built from many references counts after expansion.
    let refs = params(&[("userId", &"&amp;".repeat(1001))]).replace("&amp;amp;", "&amp;");
    let answer = server
        .post(envelope(&ns("User"), "getAttributes", &refs))
        .await;
    assert_eq!(answer.fault().1, "XML text too long");
    // Just under the limits is fine (the user is unknown, which is a different fault).
    let answer = server
        .post(envelope(
            &ns("User"),
            "getAttributes",
            &params(&[("userId", &"U".repeat(100))]),
        ))
        .await;
    assert_ne!(answer.fault().1, "XML text too long");
    server.stop().await;
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let server = TestServer::start("[limits]\nmax_header_bytes = 8192").await;
    let big = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\nContent-Length: 0\r\n\r\n",
        "p".repeat(20_000)
    );
    let answer = raw_from(server.soap, LOCAL, big.as_bytes()).await;
    assert_eq!(status_of(&answer), 431, "{answer}");
    // Normal requests still work.
    let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), None)).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_trickles_in_hits_the_request_timeout() {
    let server = TestServer::start("[limits]\nrequest_timeout = \"300ms\"").await;
    let mut stream = TcpStream::connect(server.soap).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 500\r\n\r\n<SOAP-ENV:Env")
        .await
        .unwrap();
    let mut out = Vec::new();
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.stop().await;
}

/// Reads one HTTP answer (head and `Content-Length` body) from a kept-alive connection.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = header_of(head, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed before a whole answer: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A kept-alive connection from `from` with one request answered on it: the server has
/// accepted it and holds its slot when this returns.
async fn served_connection(to: SocketAddr, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let body = product_info();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    stream
}

/// Closes a connection and waits until the server has closed its end too (by then the
/// server has given its slot back).
async fn close(mut stream: TcpStream) {
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the server closes within 10 s")
        .unwrap();
}

/// Asserts a prompt 503 that tells the client to come back and closes the connection.
fn assert_busy(answer: &str, started: std::time::Instant) {
    assert_eq!(status_of(answer), 503, "{answer}");
    assert_eq!(header_of(answer, "retry-after"), Some("1"), "{answer}");
    assert_eq!(header_of(answer, "connection"), Some("close"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
}

/// The value of `ici_connections_refused_total{reason="<reason>"}` on `/metrics`.
async fn refused_metric(server: &TestServer, reason: &str) -> u64 {
    let metrics = server.request(true, "GET", "/metrics", &[], "").await.body;
    let line = format!("ici_connections_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in\n{metrics}"))
}

#[tokio::test]
async fn a_peer_over_its_connection_cap_gets_503_while_others_are_served() {
    let server = TestServer::start("[limits]\nmax_connections_per_peer = 2").await;
    let first = served_connection(server.soap, LOCAL).await;
    let _second = served_connection(server.soap, LOCAL).await;

    let started = std::time::Instant::now();
    let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), None)).await;
    assert_busy(&answer, started);
    let answer = raw_from(server.soap, OTHER, &soap_post(&product_info(), None)).await;
    assert_eq!(
        status_of(&answer),
        200,
        "another address is served: {answer}"
    );

    // A slot given back is a slot for the same peer again.
    close(first).await;
    let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), None)).await;
    assert_eq!(status_of(&answer), 200, "{answer}");

    let security = server.status().await["security"].clone();
    assert_eq!(security["connections_over_peer_cap"], 1);
    assert_eq!(security["connections_over_cap"], 0);
    assert!(refused_metric(&server, "peer_cap").await >= 1);
    server.stop().await;
}

#[tokio::test]
async fn at_the_connection_cap_further_clients_get_503_at_once() {
    let server = TestServer::start("[limits]\nmax_connections = 2").await;
    let first = served_connection(server.soap, LOCAL).await;
    let _second = served_connection(server.soap, OTHER).await;

    let started = std::time::Instant::now();
    let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), None)).await;
    assert_busy(&answer, started);

    close(first).await;
    let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), None)).await;
    assert_eq!(
        status_of(&answer),
        200,
        "served once a slot is free: {answer}"
    );

    let security = server.status().await["security"].clone();
    assert_eq!(security["connections_over_cap"], 1);
    assert!(refused_metric(&server, "max_connections").await >= 1);
    server.stop().await;
}

/// Resident set size of this process (server and client alike), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_malformed_requests_leave_the_server_up_with_flat_memory() {
    let server = TestServer::start("").await;
    let bodies: Vec<Vec<u8>> = vec![
        b"this is not XML".to_vec(),
        b"<".to_vec(),
        b"<?xml version=\"1.0\" encoding=\"x-unknown\"?><a/>".to_vec(),
        b"\xff\xfe\x00<\x00a".to_vec(),
        br#"<!DOCTYPE a [<!ENTITY a "aaaa">]><a>&a;</a>"#.to_vec(),
        "<a>".repeat(100).into_bytes(),
        envelope(&ns("User"), "nope", &"<x/>".repeat(200)).into_bytes(),
        envelope(&ns("User"), "getAttributes", "<userId>&undefined;</userId>").into_bytes(),
        br#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><x:Body>"#
            .to_vec(),
    ];
    const CONNECTIONS: usize = 4;
    const PER_CONNECTION: usize = 2500;
    let addr = server.soap;

    // One round of 1,000 warms allocator pools and hyper's buffers; then 10,000 are measured.
    let run = |per_connection: usize| {
        let bodies = bodies.clone();
        async move {
            let mut tasks = Vec::new();
            for c in 0..CONNECTIONS {
                let bodies = bodies.clone();
                tasks.push(tokio::spawn(async move {
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    let mut buf = vec![0u8; 16 * 1024];
                    for i in 0..per_connection {
                        let body = &bodies[(c + i) % bodies.len()];
                        let mut request = format!(
                            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        request.extend_from_slice(body);
                        stream.write_all(&request).await.unwrap();
                        let mut got = Vec::new();
                        while !got.ends_with(b"</SOAP-ENV:Envelope>") {
                            let n = stream.read(&mut buf).await.unwrap();
                            assert!(n > 0, "connection closed after {} requests", i);
                            got.extend_from_slice(&buf[..n]);
                        }
                        assert!(got.starts_with(b"HTTP/1.1 500"), "{}", String::from_utf8_lossy(&got));
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
    };
    run(250).await;
    let before = rss_kib();
    tokio::time::timeout(Duration::from_secs(300), run(PER_CONNECTION))
        .await
        .expect("10,000 requests within 300 s");
    let after = rss_kib();
    assert!(server.healthy().await);
    let growth = after.saturating_sub(before);
    eprintln!("RSS before {before} KiB, after {after} KiB, growth {growth} KiB");
    assert!(
        growth < 4 * 1024,
        "memory grew by {growth} KiB over 10,000 malformed requests"
    );
    server.stop().await;
}
