//! The SOAP listener over TLS with real clients: rustls (tokio-rustls), `openssl s_client`
//! and `curl`. Test CAs and certificates (good, foreign, expired) are made with rcgen in a
//! temporary directory per test.

use crate::common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::server::{Endpoints, envelope, ns};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod client_certs;
mod clients;
mod files;
mod listeners;
mod outbound;
mod refusals;

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

    /// Writes `name` in one step (beside it, then renamed): the certificate reloader never
    /// reads half a file.
    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        let partial = self.path(&format!("{name}.partial"));
        std::fs::write(&partial, contents).unwrap();
        std::fs::rename(&partial, &path).unwrap();
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
    let what = format!("{peer} refused {count} x for {reason:?} listed");
    common::poll(&what, Duration::from_secs(10), || async move {
        let all = refusals(api).await;
        let found = all.iter().find(|r| {
            r["peer"] == peer
                && r["count"] == count
                && r["reason"].as_str().is_some_and(|t| t.contains(reason))
        });
        found.cloned().ok_or_else(|| format!("{all:#?}"))
    })
    .await
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}
