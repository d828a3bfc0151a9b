//! The SOAP listener over TLS with real clients: rustls (tokio-rustls), `openssl s_client`
//! and `curl`. Test CAs and certificates (good, foreign, expired) are made with rcgen in a
//! temporary directory per test.

use crate::common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::process::Process;
use common::server::{Endpoints, TestServer, envelope, ns};
use ici_connector::config::Config;
use ici_connector::{Listeners, RunError};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate with its key, as PEM.
struct Leaf {
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for localhost / 127.0.0.1.
    fn server(&self, cn: &str) -> Leaf {
        self.leaf(cn, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A client certificate with common name `cn` (expired when `expired`).
    fn client(&self, cn: &str, expired: bool) -> Leaf {
        self.leaf(cn, ExtendedKeyUsagePurpose::ClientAuth, expired)
    }

    /// An X.509 **v1** client certificate with common name `cn`, signed by this CA: no
    /// version field, no extensions. rcgen writes only v3, so it is put together here, DER
    /// by hand (ECDSA P-256 with SHA-256, like the CA's own key).
    fn client_v1(&self, cn: &str) -> RawLeaf {
        use rcgen::{PublicKeyData, SigningKey};
        use x509_parser::prelude::{FromDer, X509Certificate};
        const SEQUENCE: u8 = 0x30;
        const SET: u8 = 0x31;
        let ca_der = self.der();
        let (_, ca) = X509Certificate::from_der(ca_der.as_ref()).unwrap();
        let ecdsa_with_sha256 = der(SEQUENCE, &hex("06082a8648ce3d040302"));
        let common_name = [hex("0603550403"), der(0x0c, cn.as_bytes())].concat();
        let subject = der(SEQUENCE, &der(SET, &der(SEQUENCE, &common_name)));
        let validity = der(
            SEQUENCE,
            &[der(0x17, b"240101000000Z"), der(0x17, b"491231235959Z")].concat(),
        );
        let key = KeyPair::generate().unwrap();
        let tbs = der(
            SEQUENCE,
            &[
                der(0x02, &[0x01]), // serial number; no [0] version field: v1
                ecdsa_with_sha256.clone(),
                ca.tbs_certificate.subject.as_raw().to_vec(),
                validity,
                subject,
                key.subject_public_key_info(),
            ]
            .concat(),
        );
        let signature = self.issuer.key().sign(&tbs).unwrap();
        let cert = der(
            SEQUENCE,
            &[
                tbs,
                ecdsa_with_sha256,
                der(0x03, &[&[0u8][..], &signature].concat()),
            ]
            .concat(),
        );
        RawLeaf {
            cert: CertificateDer::from(cert),
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }

    fn leaf(&self, cn: &str, usage: ExtendedKeyUsagePurpose, expired: bool) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        // Issuer order as real CAs write it (O, then CN): RFC 4514 prints it reversed,
        // "CN=...,O=Example". (rcgen starts with a CN of its own: replace the whole name.)
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A certificate and key rustls' own checks would refuse to load (see
/// [`Ca::client_v1`]).
struct RawLeaf {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

/// A DER element: `tag`, definite length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let length = content.len();
    let mut out = vec![tag];
    match length {
        0..0x80 => out.push(length as u8),
        0x80..0x100 => out.extend([0x81, length as u8]),
        _ => out.extend([0x82, (length >> 8) as u8, length as u8]),
    }
    out.extend_from_slice(content);
    out
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A client that presents `leaf` as it is: rustls' `with_client_auth_cert` parses the
/// certificate to compare keys, which a v1 certificate does not survive.
fn raw_client_config(ca: &CertificateDer<'static>, leaf: &RawLeaf) -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct Present(Arc<rustls::sign::CertifiedKey>);
    impl rustls::client::ResolvesClientCert for Present {
        fn resolve(
            &self,
            _hints: &[&[u8]],
            _schemes: &[rustls::SignatureScheme],
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }
        fn has_certs(&self) -> bool {
            true
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = provider
        .key_provider
        .load_private_key(leaf.key.clone_key())
        .unwrap();
    let certified = rustls::sign::CertifiedKey::new(vec![leaf.cert.clone()], key);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(BOTH)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(Present(Arc::new(certified))));
    Arc::new(config)
}

/// The files of one test: server cert/key, the client CA, client certs.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca: Ca::new("ICI Test CA"),
        };
        let server = pki.ca.server("connector");
        pki.write("server.crt", &server.cert_pem);
        pki.write("server.key", &server.key_pem);
        pki.write("ca.crt", &pki.ca.pem());
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Writes a leaf as `<name>.crt` and `<name>.key`.
    fn write_leaf(&self, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
        (
            self.write(&format!("{name}.crt"), &leaf.cert_pem),
            self.write(&format!("{name}.key"), &leaf.key_pem),
        )
    }

    /// A `[tls]` table for this PKI with `extra` lines.
    fn toml(&self, client_auth: &str, extra: &str) -> String {
        let p = |n: &str| toml_str(&self.path(n));
        format!(
            "[tls]\nenabled = true\ncert = {}\nkey = {}\nclient_auth = \"{client_auth}\"\nclient_ca = {}\n{extra}\n",
            p("server.crt"),
            p("server.key"),
            p("ca.crt"),
        )
    }
}

fn toml_str(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// A rustls client trusting `ca`, presenting `leaf` when given, limited to `versions`.
fn client_config(
    ca: &CertificateDer<'static>,
    leaf: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    let config = match leaf {
        Some(leaf) => {
            let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn soap_request() -> Vec<u8> {
    let body = envelope(&ns("System"), "exchangeProductInformation", "");
    format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"\"\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a TLS client got: the server's leaf certificate and the HTTP answer, or the error
/// that ended the exchange.
struct TlsAnswer {
    server_leaf: Option<CertificateDer<'static>>,
    result: Result<String, String>,
}

impl TlsAnswer {
    fn ok_soap(&self) -> &str {
        let answer = self.result.as_ref().expect("a TLS exchange that works");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("exchangeProductInformationResponse"),
            "{answer}"
        );
        answer
    }

    fn refused(&self) {
        match &self.result {
            Err(_) => {}
            Ok(answer) => assert!(
                !answer.starts_with("HTTP/"),
                "expected the TLS handshake to fail, got {answer}"
            ),
        }
    }
}

/// Connects with `config`, sends one SOAP request and reads the answer to the end.
async fn exchange(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> TlsAnswer {
    exchange_from(addr, IpAddr::V4(Ipv4Addr::LOCALHOST), config).await
}

/// [`exchange`] from source address `from` (any 127/8 address works on Linux loopback).
async fn exchange_from(
    addr: SocketAddr,
    from: IpAddr,
    config: Arc<rustls::ClientConfig>,
) -> TlsAnswer {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream =
        match tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .expect("handshake within 10 s")
        {
            Ok(stream) => stream,
            Err(e) => {
                return TlsAnswer {
                    server_leaf: None,
                    result: Err(e.to_string()),
                };
            }
        };
    let server_leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned());
    let result = async {
        stream.write_all(&soap_request()).await?;
        stream.flush().await?;
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // A peer that closes without close_notify after a full answer is fine.
                Err(_) if !out.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    let result = tokio::time::timeout(Duration::from_secs(10), result)
        .await
        .expect("answer within 10 s")
        .map_err(|e| e.to_string());
    TlsAnswer {
        server_leaf,
        result,
    }
}

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

/// The refused handshakes `/api/status` lists (`security.recent_tls_refusals`).
async fn refusals(api: &Endpoints) -> Vec<serde_json::Value> {
    api.status().await["security"]["recent_tls_refusals"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `/api/status` lists `count` refusals of `peer` for a reason containing
/// `reason`, and returns the entry. (The server lists a refusal right after its alert
/// has gone to the client; nothing the client sees tells exactly when.)
async fn listed(api: &Endpoints, peer: &str, reason: &str, count: u64) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let all = refusals(api).await;
        let found = all.iter().find(|r| {
            r["peer"] == peer
                && r["count"] == count
                && r["reason"].as_str().is_some_and(|t| t.contains(reason))
        });
        if let Some(found) = found {
            return found.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{peer} refused {count} x for {reason:?} not listed: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connector child process, killed if the test fails before stopping it.
struct Child(Option<Process>);

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

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

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
    let mut process = Child(Some(Process::start(&config)));
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

    let process = process.0.take().unwrap();
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

/// Runs a command to completion with no stdin, returning (success, stdout + stderr).
async fn run_tool(program: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} not runnable: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn have(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || std::process::Command::new(program)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

#[tokio::test]
async fn openssl_s_client_versions_and_client_certificates() {
    if !have("openssl") {
        eprintln!("openssl not installed; skipped");
        return;
    }
    let pki = Pki::new();
    let server = TestServer::start(&pki.toml("require", "")).await;
    let (cert, key) = pki.write_leaf("client", &pki.ca.client("sapprd", false));
    let connect = server.soap.to_string();
    let ca = pki.path("ca.crt").display().to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let base = [
        "s_client",
        "-connect",
        connect.as_str(),
        "-servername",
        "localhost",
        "-CAfile",
        ca.as_str(),
        "-verify_return_error",
    ];
    let with_cert = |extra: &[&'static str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["-cert", cert.as_str(), "-key", key.as_str()]);
        args.extend(extra);
        args
    };

    for version in ["-tls1_2", "-tls1_3"] {
        let (ok, out) = run_tool("openssl", &with_cert(&[version])).await;
        assert!(ok, "{version} with a client certificate: {out}");
        assert!(out.contains("Verify return code: 0"), "{out}");
    }
    // TLS 1.1 (and older) is refused by the server; SECLEVEL=0 lets OpenSSL offer it.
    let (ok, out) = run_tool(
        "openssl",
        &with_cert(&["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
    )
    .await;
    assert!(!ok, "TLS 1.1 must be refused: {out}");
    assert!(
        out.contains("Cipher is (NONE)") && out.contains("alert"),
        "{out}"
    );

    // Without a client certificate the server ends the handshake (TLS 1.3 reports it on the
    // first read, so send a request and expect no HTTP answer).
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["-tls1_2"]);
    let (ok, out) = run_tool("openssl", &args).await;
    assert!(!ok, "no client certificate must fail: {out}");
    assert!(server.healthy().await);
    server.stop().await;
}

#[tokio::test]
async fn curl_with_and_without_a_client_certificate() {
    if !have("curl") {
        eprintln!("curl not installed; skipped");
        return;
    }
    let pki = Pki::new();
    let server = TestServer::start(&pki.toml("require", "")).await;
    let (cert, key) = pki.write_leaf("client", &pki.ca.client("sapprd", false));
    let body = envelope(&ns("System"), "exchangeProductInformation", "");
    let url = format!("https://localhost:{}/", server.soap.port());
    let resolve = format!("localhost:{}:127.0.0.1", server.soap.port());
    let ca = pki.path("ca.crt").display().to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let common = [
        "-sS",
        "--max-time",
        "10",
        "--resolve",
        resolve.as_str(),
        "--cacert",
        ca.as_str(),
        "-H",
        "Content-Type: text/xml; charset=utf-8",
        "--data-binary",
        body.as_str(),
    ];

    let mut args = common.to_vec();
    args.extend(["--cert", cert.as_str(), "--key", key.as_str(), url.as_str()]);
    let (ok, out) = run_tool("curl", &args).await;
    assert!(ok, "{out}");
    assert!(out.contains("exchangeProductInformationResponse"), "{out}");

    let mut args = common.to_vec();
    args.push(url.as_str());
    let (ok, out) = run_tool("curl", &args).await;
    assert!(!ok, "no client certificate must fail: {out}");

    let mut args = common.to_vec();
    args.extend(["--tls-max", "1.1", "--tlsv1.1"]);
    args.extend(["--cert", cert.as_str(), "--key", key.as_str(), url.as_str()]);
    let (ok, out) = run_tool("curl", &args).await;
    assert!(!ok, "TLS 1.1 must fail: {out}");

    let plain = format!("http://127.0.0.1:{}/", server.soap.port());
    let (_, out) = run_tool(
        "curl",
        &["-sS", "--max-time", "10", "-i", "-d", "x", plain.as_str()],
    )
    .await;
    assert!(out.contains("400 Bad Request"), "{out}");
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
