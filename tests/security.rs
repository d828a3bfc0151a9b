//! Access control and limits over real sockets: Basic auth (401 with a SOAP fault, per-peer
//! throttling, counters), allow-lists, the admin listener's own auth, XML attacks, every
//! `[limits]` setting, and 10,000 malformed requests that leave memory flat.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine;
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

#[tokio::test]
async fn connection_cap_holds_further_clients_in_the_backlog() {
    let server = TestServer::start("[limits]\nmax_connections = 2").await;
    let first = TcpStream::connect(server.soap).await.unwrap();
    let second = TcpStream::connect(server.soap).await.unwrap();
    // Make sure both are accepted (served) before the third arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(server.soap).await.unwrap();
    third
        .write_all(&soap_post(&product_info(), None))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(400), third.read(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served over the cap");
    drop(first);
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut out))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    drop(second);
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
