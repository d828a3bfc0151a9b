//! Events to `https://` appURLs, with our client certificate.

use ici_connector::config::Config;

use super::*;

/// A one-connection HTTPS server that requires a client certificate from `ca`; it answers
/// 200 to each request and reports (client subject, request head + body).
async fn https_sink(
    pki: &Pki,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::Receiver<(String, String)>,
) {
    let config = ici_connector::tls::server_config(
        &Config::from_toml_str(&pki.toml("require", "")).unwrap().tls,
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut stream) = acceptor.accept(tcp).await else {
                continue;
            };
            let subject = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(ici_connector::tls::Subject::of)
                .map(|s| s.full)
                .unwrap_or_default();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .await
                            .unwrap();
                        let _ = tx.send((subject.clone(), text)).await;
                        got.clear();
                    }
                }
            }
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn events_go_to_https_app_urls_with_our_client_certificate() {
    use ici_connector::config::OutboundTlsConfig;
    use ici_connector::notify::{Notifier, NotifierSettings, OutboundEvent};

    let pki = Pki::new();
    let (addr, mut received) = https_sink(&pki).await;
    let (cert, key) = pki.write_leaf("connector-client", &pki.ca.client("ici-connector", false));
    let event = |sequence| OutboundEvent {
        name: "phoneCallChanged",
        sequence,
        user: "AGENT1".into(),
        call: None,
        body: envelope("urn:IciEventInterface", "phoneCallChanged", "<appIds/>"),
    };
    let url = format!("https://localhost:{}/sap/events", addr.port());

    let tls = ici_connector::tls::client_config(&OutboundTlsConfig {
        system_roots: false,
        ca: Some(pki.path("ca.crt")),
        cert: Some(cert),
        key: Some(key),
    })
    .unwrap();
    let (feedback, _feedback_rx) = tokio::sync::mpsc::channel(4);
    let settings = NotifierSettings {
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(50),
        tls: Some(tls),
        ..NotifierSettings::default()
    };
    let notifier = Notifier::new(settings.clone(), feedback.clone());
    let outbox = notifier.open(1, url.parse().unwrap());
    outbox.push(event(1)).unwrap();
    let (subject, request) = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("event delivered over https")
        .unwrap();
    assert_eq!(subject, "CN=ici-connector,O=Example");
    assert!(
        request.starts_with("POST /sap/events HTTP/1.1"),
        "{request}"
    );
    assert!(request.contains("phoneCallChanged"), "{request}");

    // A notifier that does not trust the sink's CA never delivers to it.
    let untrusting = ici_connector::tls::client_config(&OutboundTlsConfig {
        system_roots: false,
        ca: Some(pki.write("other-ca.crt", &Ca::new("Other").pem())),
        cert: None,
        key: None,
    })
    .unwrap();
    let notifier = Notifier::new(
        NotifierSettings {
            tls: Some(untrusting),
            ..settings
        },
        feedback,
    );
    let outbox = notifier.open(2, url.parse().unwrap());
    outbox.push(event(2)).unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), received.recv())
            .await
            .is_err(),
        "delivered to a server whose certificate is not trusted"
    );
}
