//! The certificate files: rotated without a restart, and unusable ones at the start.

use ici_connector::config::Config;
use ici_connector::{Listeners, RunError};

use super::*;
use crate::common::server::TestServer;

#[tokio::test]
async fn certificate_rotation_without_restart_keeps_the_old_one_when_the_new_one_is_bad() {
    let pki = Pki::new();
    let toml = pki
        .toml("off", "reload_interval = \"50ms\"")
        .replace("client_ca", "# client_ca");
    let server = TestServer::start(&toml).await;
    let ca = pki.ca.der();
    let first = exchange(server.soap, client_config(&ca, None, BOTH)).await;
    first.ok_soap();
    let first_leaf = first.server_leaf.clone().unwrap();

    // Rotate: a new certificate and key from the same CA.
    let next = pki.ca.server("connector-2026");
    pki.write("server.key", &next.key_pem);
    pki.write("server.crt", &next.cert_pem);
    let next_der = CertificateDer::from_pem_slice(next.cert_pem.as_bytes()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = exchange(server.soap, client_config(&ca, None, BOTH)).await;
        answer.ok_soap();
        if answer.server_leaf.as_ref() == Some(&next_der) {
            break;
        }
        assert_eq!(answer.server_leaf.as_ref(), Some(&first_leaf));
        assert!(
            tokio::time::Instant::now() < deadline,
            "new certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken rotation (a key that does not match, then garbage) keeps the current one.
    let mismatched = pki.ca.server("mismatch");
    pki.write("server.key", &mismatched.key_pem);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pki.write("server.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let answer = exchange(server.soap, client_config(&ca, None, BOTH)).await;
        answer.ok_soap();
        assert_eq!(answer.server_leaf.as_ref(), Some(&next_der));
    }
    server.stop().await;
}

#[tokio::test]
async fn unusable_tls_files_stop_the_start() {
    let pki = Pki::new();
    pki.write("server.key", "not a key");
    let config = Config::from_toml_str(&pki.toml("require", "")).unwrap();
    let listeners = Listeners {
        soap: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let result = ici_connector::run(config, listeners, std::future::pending()).await;
    match result {
        Err(RunError::Tls(e)) => {
            let message = e.to_string();
            assert!(message.contains("server.key"), "{message}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}
