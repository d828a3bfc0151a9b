//! Client certificates: required, optional or not asked for, the subject allow-list, and
//! how subjects print.

use super::*;
use crate::common::server::TestServer;

#[tokio::test]
async fn required_client_certificates() {
    let pki = Pki::new();
    let server = TestServer::start(&pki.toml("require", "")).await;
    let good = pki.ca.client("sapprd", false);
    let foreign = Ca::new("Someone Else").client("sapprd", false);
    let expired = pki.ca.client("sapprd", true);
    let ca = pki.ca.der();

    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        exchange(server.soap, client_config(&ca, Some(&good), versions))
            .await
            .ok_soap();
    }
    exchange(server.soap, client_config(&ca, None, BOTH))
        .await
        .refused();
    exchange(server.soap, client_config(&ca, Some(&foreign), BOTH))
        .await
        .refused();
    exchange(server.soap, client_config(&ca, Some(&expired), BOTH))
        .await
        .refused();
    // A client that does not trust the server's CA refuses it too.
    let other_ca = Ca::new("Other Root").der();
    exchange(server.soap, client_config(&other_ca, Some(&good), BOTH))
        .await
        .refused();

    assert!(server.healthy().await);
    exchange(server.soap, client_config(&ca, Some(&good), BOTH))
        .await
        .ok_soap();
    let (_, status) = server
        .request(true, "GET", "/api/status", &[], "")
        .await
        .body
        .split_once("\"tls_handshake_failures\": ")
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .expect("security counters on /api/status");
    let failures: u64 = status
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 3, "handshake failures counted: {failures}");
    server.stop().await;
}

#[tokio::test]
async fn optional_client_certificates_and_no_client_auth() {
    let pki = Pki::new();
    let ca = pki.ca.der();
    let good = pki.ca.client("sapprd", false);
    let foreign = Ca::new("Someone Else").client("sapprd", false);

    let server = TestServer::start(&pki.toml("optional", "")).await;
    exchange(server.soap, client_config(&ca, None, BOTH))
        .await
        .ok_soap();
    exchange(server.soap, client_config(&ca, Some(&good), BOTH))
        .await
        .ok_soap();
    exchange(server.soap, client_config(&ca, Some(&foreign), BOTH))
        .await
        .refused();
    server.stop().await;

    let server = TestServer::start(&pki.toml("off", "").replace("client_ca", "# client_ca")).await;
    exchange(server.soap, client_config(&ca, None, BOTH))
        .await
        .ok_soap();
    server.stop().await;
}

#[tokio::test]
async fn subject_allow_list() {
    let pki = Pki::new();
    let ca = pki.ca.der();
    let toml = pki.toml(
        "require",
        r#"allowed_subjects = ["CN=sapprd", "CN=sapqas,O=Example"]"#,
    );
    let server = TestServer::start(&toml).await;
    for cn in ["sapprd", "sapqas"] {
        let leaf = pki.ca.client(cn, false);
        exchange(server.soap, client_config(&ca, Some(&leaf), BOTH))
            .await
            .ok_soap();
    }
    let stranger = pki.ca.client("sapdev", false);
    exchange(server.soap, client_config(&ca, Some(&stranger), BOTH))
        .await
        .refused();
    listed(
        &server,
        "127.0.0.1",
        "subject CN=sapdev,O=Example not in tls.allowed_subjects",
        1,
    )
    .await;
    assert!(server.healthy().await);
    server.stop().await;
}

#[test]
fn subjects_print_most_specific_first() {
    let leaf = Ca::new("ICI Test CA").client("sapprd", false);
    let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
    let subject = ici_connector::tls::Subject::of(&der).unwrap();
    assert_eq!(subject.full, "CN=sapprd,O=Example");
    assert_eq!(subject.common_name.as_deref(), Some("sapprd"));
}
