//! Refused handshakes: logged with peer and reason and listed on the status page, the
//! connection cap, plain HTTP on the TLS port.

use super::*;
use crate::common::process::Process;
use crate::common::server::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handshakes_are_logged_with_peer_and_reason_and_listed() {
    let pki = Pki::new();
    let config = pki.write(
        "connector.toml",
        &format!(
            "[soap]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [events]\ndata_dir = {}\n{}",
            toml_str(&pki.path("data")),
            pki.toml("require", "")
        ),
    );
    let process = Process::start(&config);
    let (soap, api) = (process.endpoints.soap, &process.endpoints);
    let ca = pki.ca.der();
    let foreign = Ca::new("Someone Else").client("sapprd", false);
    let v1 = pki.ca.client_v1("sapprd");
    let expired = pki.ca.client("sapprd", true);
    let cases = [
        (
            2,
            client_config(&ca, Some(&foreign), BOTH),
            "unknown issuer",
        ),
        (3, raw_client_config(&ca, &v1), "X.509 v1"),
        (4, client_config(&ca, Some(&expired), BOTH), "expired"),
        (5, client_config(&ca, None, BOTH), "no client certificate"),
    ];
    // Each from its own address: one log line per peer and minute.
    for (last, config, reason) in cases.iter().cloned() {
        exchange_from(soap, loopback(last), config).await.refused();
        let line = process.expect_line(&format!("peer=127.0.0.{last}:"));
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("TLS handshake refused"), "{line}");
        assert!(line.contains(reason), "{reason:?} in {line}");
        listed(api, &format!("127.0.0.{last}"), reason, 1).await;
    }
    // The first client again: listed (one entry, counted twice), not logged again.
    let (last, config, reason) = cases[0].clone();
    exchange_from(soap, loopback(last), config).await.refused();
    listed(api, "127.0.0.2", reason, 2).await;
    let security = api.status().await["security"].clone();
    assert_eq!(security["tls_handshake_failures"], 5);
    assert_eq!(refusals(api).await.len(), 4);

    process.signal("TERM");
    let rest = process.remaining_lines();
    process.stop_after_signal();
    assert!(
        !rest.iter().any(|l| l.contains("peer=127.0.0.2:")),
        "a second line within the minute: {rest:#?}"
    );
}

#[tokio::test]
async fn a_tls_client_beyond_the_connection_cap_gets_an_alert_at_once() {
    let pki = Pki::new();
    let toml = pki.toml("off", "").replace("client_ca", "# client_ca");
    let server = TestServer::start(&format!("{toml}[limits]\nmax_connections = 1\n")).await;
    let ca = pki.ca.der();
    // The only slot, held by a finished handshake (so surely accepted).
    let tcp = TcpStream::connect(server.soap).await.unwrap();
    let _held = tokio_rustls::TlsConnector::from(client_config(&ca, None, BOTH))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let answer = exchange_from(server.soap, loopback(2), client_config(&ca, None, BOTH)).await;
    let error = answer.result.expect_err("no TLS session beyond the cap");
    assert!(error.contains("InternalError"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let security = server.status().await["security"].clone();
    assert_eq!(security["connections_over_cap"], 1);
    server.stop().await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_refused_cleanly() {
    let pki = Pki::new();
    let server = TestServer::start(&pki.toml("off", "").replace("client_ca", "# client_ca")).await;
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(server.soap).await.unwrap();
        tcp.write_all(&soap_request()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
            .await
            .expect("closed within 10 s")
            .expect("closed, not reset");
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 400 Bad Request"), "{out}");
        assert!(out.contains("this port speaks HTTPS"), "{out}");
    }
    // Listed as a refused handshake (before the answer was written).
    let listed = refusals(&server).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["count"], 3);
    assert!(listed[0]["reason"].as_str().unwrap().contains("plain HTTP"));
    // And the listener still serves TLS.
    exchange(server.soap, client_config(&pki.ca.der(), None, BOTH))
        .await
        .ok_soap();
    server.stop().await;
}
