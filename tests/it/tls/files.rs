//! The certificate files: rotated without a restart, and unusable ones at the start.

use ici_connector::config::Config;
use ici_connector::{Listeners, RunError};

use super::*;
use crate::common::process::Process;

/// The connector runs as a child process: its log lines say when the reloader has looked at
/// the files (one line per change, and every file is replaced in one step).
#[tokio::test]
async fn certificate_rotation_without_restart_keeps_the_old_one_when_the_new_one_is_bad() {
    let pki = Pki::new();
    let toml = pki
        .toml("off", "reload_interval = \"50ms\"")
        .replace("client_ca", "# client_ca");
    let process = Process::start_in(pki.dir.path(), &toml);
    let soap = process.endpoints.soap;
    let ca = pki.ca.der();
    let first = exchange(soap, client_config(&ca, None, BOTH)).await;
    first.ok_soap();
    let first_leaf = first.server_leaf.clone().unwrap();

    // Rotate: a new certificate and key from the same CA. The new key alone does not fit
    // the certificate: until both are there, the first certificate is served.
    let next = pki.ca.server("connector-2026");
    pki.write("server.key", &next.key_pem);
    let answer = exchange(soap, client_config(&ca, None, BOTH)).await;
    answer.ok_soap();
    assert_eq!(answer.server_leaf.as_ref(), Some(&first_leaf));
    pki.write("server.crt", &next.cert_pem);
    let next_der = CertificateDer::from_pem_slice(next.cert_pem.as_bytes()).unwrap();
    process.expect_line("TLS certificate and settings reloaded");
    let answer = exchange(soap, client_config(&ca, None, BOTH)).await;
    answer.ok_soap();
    assert_eq!(answer.server_leaf.as_ref(), Some(&next_der));

    // A broken rotation (a key that does not match, then garbage) keeps the current one.
    let mismatched = pki.ca.server("mismatch");
    pki.write("server.key", &mismatched.key_pem);
    process.expect_line("new TLS files rejected");
    pki.write("server.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    process.expect_line("new TLS files rejected");
    for _ in 0..3 {
        let answer = exchange(soap, client_config(&ca, None, BOTH)).await;
        answer.ok_soap();
        assert_eq!(answer.server_leaf.as_ref(), Some(&next_der));
    }
    process.stop();
}

#[tokio::test]
async fn unusable_tls_files_stop_the_start() {
    let pki = Pki::new();
    pki.write("server.key", "not a key");
    let config = Config::from_toml_str(&pki.toml("require", "")).unwrap();
    let listeners = Listeners {
        soap: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        more_soap: Vec::new(),
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
