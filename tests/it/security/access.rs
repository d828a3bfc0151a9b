//! Who may reach what: the simulator's control API only with the simulator, and the
//! source address allow-lists.

use super::*;
use crate::common::server::TestServer;

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
