//! Several SOAP listeners side by side: plain HTTP on `soap.listen`, HTTPS and another
//! plain listener in `[[soap.listeners]]`, each with its own allow-list.

use super::*;
use crate::common::server::TestServer;

/// One plain HTTP SOAP request from `from`; what came back (empty when the listener closed
/// the connection without a byte).
async fn plain_from(to: SocketAddr, from: IpAddr) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let _ = stream.write_all(&soap_request()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the listener answers or closes within 10 s");
    String::from_utf8_lossy(&out).into_owned()
}

fn answered(answer: &str) -> bool {
    answer.starts_with("HTTP/1.1 200") && answer.contains("exchangeProductInformationResponse")
}

#[tokio::test]
async fn http_and_https_side_by_side_each_with_its_own_allow_list() {
    let pki = Pki::new();
    let p = |n: &str| toml_str(&pki.path(n));
    // soap.listen stays plain HTTP (tls.enabled is false): the certificate serves only the
    // listener that asks for TLS.
    let toml = format!(
        r#"
[[soap.listeners]]
listen = "127.0.0.1:0"
tls = true
allow = ["127.0.0.1"]

[[soap.listeners]]
listen = "127.0.0.1:0"
allow = ["127.0.0.2"]

[tls]
cert = {}
key = {}
"#,
        p("server.crt"),
        p("server.key"),
    );
    let server = TestServer::start(&toml).await;
    let [https, only_other] = server.more_soap[..] else {
        panic!("two more listeners: {:?}", server.more_soap);
    };
    let tls_client = client_config(&pki.ca.der(), None, BOTH);

    // soap.listen: plain HTTP, open to both addresses (access.soap_allow is empty).
    assert!(answered(&plain_from(server.soap, loopback(1)).await));
    assert!(answered(&plain_from(server.soap, loopback(2)).await));

    // The HTTPS listener: TLS from 127.0.0.1 works; plain HTTP gets no HTTP answer; its
    // allow-list keeps 127.0.0.2 out before the handshake.
    exchange(https, tls_client.clone()).await.ok_soap();
    let plain = plain_from(https, loopback(1)).await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
    exchange_from(https, loopback(2), tls_client)
        .await
        .refused();

    // The second plain listener admits only 127.0.0.2.
    assert!(answered(&plain_from(only_other, loopback(2)).await));
    assert_eq!(plain_from(only_other, loopback(1)).await, "");
    server.stop().await;
}

#[test]
fn check_config_names_the_listener_keys() {
    let errors = ici_connector::config::Config::from_toml_str(
        r#"
[soap]
listen = "127.0.0.1:8080"
[[soap.listeners]]
listen = "127.0.0.1:8080"
tls = true
allow = ["not-a-network"]
"#,
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "soap.listeners[0].listen: 127.0.0.1:8080 is already soap.listen",
        "soap.listeners[0].allow[0]:",
        "tls.cert: required when tls.enabled = true or a [[soap.listeners]] has tls = true",
    ] {
        assert!(errors.contains(expected), "{expected:?} in\n{errors}");
    }
    // The single-listener configuration keeps its meaning: no further listener.
    let single =
        ici_connector::config::Config::from_toml_str("[soap]\nlisten = \"127.0.0.1:8080\"\n")
            .unwrap();
    assert_eq!(single.soap_listeners().len(), 1);
    assert!(!single.any_tls_listener());
}
