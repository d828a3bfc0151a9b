//! XML attacks, every `[limits]` setting, the connection caps, and 10,000 malformed
//! requests that leave memory flat.

use tokio::net::TcpStream;

use super::*;
use crate::common::server::{TestServer, params};

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

/// The server runs as a child process and its memory alone is measured: the tests running
/// beside this one in the test process allocate as they please.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_malformed_requests_leave_the_server_up_with_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start_in(dir.path(), "");
    let (pid, server) = (process.child.id(), &process.endpoints);
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

    // A round of 5,000 warms allocator pools and hyper's buffers (the connector's mimalloc
    // commits another 2 MiB segment within the first few thousand); then 10,000 are
    // measured.
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
    run(1250).await;
    let before = proc_status_kib(pid, "VmRSS");
    tokio::time::timeout(Duration::from_secs(300), run(PER_CONNECTION))
        .await
        .expect("10,000 requests within 300 s");
    let after = proc_status_kib(pid, "VmRSS");
    assert!(server.healthy().await);
    let growth = after.saturating_sub(before);
    eprintln!("RSS before {before} KiB, after {after} KiB, growth {growth} KiB");
    assert!(
        growth < 4 * 1024,
        "memory grew by {growth} KiB over 10,000 malformed requests"
    );
    process.stop();
}
