//! TLS for both directions, with rustls and the ring provider, TLS 1.2 and 1.3 only.
//!
//! - Inbound: [`ServerTls`] holds the SOAP listener's current `ServerConfig` (certificate
//!   chain, key, client-certificate verifier with the optional subject allow-list).
//!   [`ServerTls::watch`] reloads it when the files change or on SIGHUP; a set that fails to
//!   load is logged and the old one stays in force, so a botched rotation never takes the
//!   listener down. [`handshake_refusal`] says in words why a client's handshake failed
//!   (for the log line and the status page, see [`crate::security::tls_refusals`]).
//! - Outbound: [`client_config`] builds the `ClientConfig` the notifier uses for `https://`
//!   appURLs: system roots and/or a configured CA, and our client certificate if configured.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoClientAuth, WebPkiClientVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::{ClientAuth, OutboundTlsConfig, TlsConfig};

/// Why a TLS configuration could not be built. Names the file; never contains key bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// TLS 1.2 and 1.3: rustls has nothing older, and we name both explicitly so a future
/// default change cannot widen it.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The files one server configuration is built from, read once so that what is parsed is
/// also what later change detection compares against.
#[derive(PartialEq, Eq)]
struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn missing(what: &str) -> TlsError {
    TlsError::Rustls(format!("tls.{what} is not set"))
}

impl Files {
    fn read(tls: &TlsConfig) -> Result<Files, TlsError> {
        Ok(Files {
            cert: read(tls.cert.as_deref().ok_or_else(|| missing("cert"))?)?,
            key: read(tls.key.as_deref().ok_or_else(|| missing("key"))?)?,
            client_ca: tls.client_ca.as_deref().map(read).transpose()?,
        })
    }
}

fn certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(certs)
}

fn key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The rustls-pki-types error names the problem, never the key material.
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: format!("no usable private key ({e})"),
    })
}

fn roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs(path, pem)? {
        store.add(cert).map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(store)
}

/// Builds the SOAP listener's TLS configuration from `tls`'s files.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    build_server_config(tls, &Files::read(tls)?)
}

fn build_server_config(tls: &TlsConfig, files: &Files) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_path = tls.cert.as_deref().unwrap_or(Path::new(""));
    let key_path = tls.key.as_deref().unwrap_or(Path::new(""));
    let chain = certs(cert_path, &files.cert)?;
    let key = key(key_path, &files.key)?;
    let verifier: Arc<dyn ClientCertVerifier> = match (tls.client_auth, &files.client_ca) {
        (ClientAuth::Off, _) => Arc::new(NoClientAuth),
        (_, None) => return Err(missing("client_ca")),
        (mode, Some(pem)) => {
            let ca_path = tls.client_ca.as_deref().unwrap_or(Path::new(""));
            let roots = Arc::new(roots(ca_path, pem)?);
            let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
            if mode == ClientAuth::Optional {
                builder = builder.allow_unauthenticated();
            }
            let inner = builder
                .build()
                .map_err(|e| TlsError::Rustls(format!("client verifier: {e}")))?;
            Arc::new(ClientVerifier {
                inner,
                allowed: tls.allowed_subjects.iter().map(|s| normalise(s)).collect(),
            })
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(Arc::new(config))
}

/// The SOAP listener's TLS configuration in force; cheap to clone, shared with the reload
/// task. Every new connection takes the configuration current at its accept.
#[derive(Clone)]
pub struct ServerTls {
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads `tls`'s files; an error here stops the start (no old configuration to keep).
    pub fn load(tls: &TlsConfig) -> Result<ServerTls, TlsError> {
        Ok(ServerTls {
            current: Arc::new(RwLock::new(server_config(tls)?)),
        })
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        tokio_rustls::TlsAcceptor::from(config)
    }

    fn replace(&self, config: Arc<ServerConfig>) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
    }

    /// Reloads the configuration when the files' contents change (checked every
    /// `tls.reload_interval`) or on SIGHUP, until `stop`. A set that fails to load is
    /// logged at error, once per change, and the old configuration stays in force.
    pub async fn watch(self, tls: TlsConfig, mut stop: watch::Receiver<bool>) {
        let mut last = Files::read(&tls).ok();
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(e) => {
                warn!(error = %e, "no SIGHUP handler; TLS reloads only by polling");
                None
            }
        };
        let interval = tls.reload_interval;
        loop {
            let forced = tokio::select! {
                _ = stop.changed() => return,
                _ = sleep_or_forever(interval) => false,
                Some(()) = recv_or_forever(&mut hangup) => true,
            };
            let files = match Files::read(&tls) {
                Ok(files) => files,
                Err(e) => {
                    error!(error = %e, "TLS files unreadable; keeping the certificate in use");
                    continue;
                }
            };
            if !forced && last.as_ref() == Some(&files) {
                continue;
            }
            match build_server_config(&tls, &files) {
                Ok(config) => {
                    self.replace(config);
                    info!(forced, "TLS certificate and settings reloaded");
                }
                Err(e) => {
                    error!(error = %e, "new TLS files rejected; keeping the certificate in use")
                }
            }
            last = Some(files);
        }
    }
}

async fn sleep_or_forever(interval: Option<Duration>) {
    match interval {
        Some(interval) => tokio::time::sleep(interval).await,
        None => std::future::pending().await,
    }
}

async fn recv_or_forever(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Why our client verifier refused a certificate that the chain check alone would not
/// have refused, or would have refused with a less telling error. Travels inside
/// `rustls::CertificateError::Other` to [`handshake_refusal`].
#[derive(Debug, thiserror::Error)]
pub enum ClientCertRefusal {
    /// webpki accepts only X.509 v3; an older certificate (typically a self-made one from
    /// an old tool) would otherwise be reported as an opaque error.
    #[error("unsupported client certificate version (X.509 v{0}; v3 required)")]
    Version(u32),
    /// The chain checks out but the subject is not in `tls.allowed_subjects`.
    #[error("client certificate subject {0} not in tls.allowed_subjects")]
    SubjectNotAllowed(String),
}

impl From<ClientCertRefusal> for rustls::Error {
    fn from(refusal: ClientCertRefusal) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(refusal),
        )))
    }
}

/// The client verifier of `tls.client_auth`: names an unsupported certificate version
/// before the chain check, and after it requires the subject to be in
/// `tls.allowed_subjects` (when that is not empty). A refused client gets a TLS alert and
/// never reaches HTTP.
#[derive(Debug)]
struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

/// The X.509 version of a DER certificate (1 for v1), `None` when it does not parse.
fn x509_version(cert: &CertificateDer<'_>) -> Option<u32> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(cert.as_ref()).ok()?;
    Some(cert.version().0 + 1)
}

/// The only X.509 version webpki accepts.
const X509_V3: u32 = 3;

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(version) = x509_version(end_entity).filter(|v| *v != X509_V3) {
            return Err(ClientCertRefusal::Version(version).into());
        }
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.allowed.is_empty() {
            return Ok(verified);
        }
        let subject = Subject::of(end_entity).ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))?;
        if subject.allowed_by(&self.allowed) {
            Ok(verified)
        } else {
            Err(ClientCertRefusal::SubjectNotAllowed(subject.full).into())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a TLS handshake failed, in words for support staff (the log line and the status
/// page): after a certificate renewal on SAP's side this is what tells whether SAP sends
/// no certificate, one from another CA, an expired one, or does not trust ours.
pub fn handshake_refusal(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => describe(tls),
        None => match error.kind() {
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => {
                "the client closed the connection during the handshake (does it trust our \
                 certificate?)"
                    .into()
            }
            _ => format!("connection error during the handshake: {error}"),
        },
    }
}

fn describe(error: &rustls::Error) -> String {
    use rustls::{CertificateError as Cert, Error, PeerIncompatible as Peer};
    match error {
        Error::NoCertificatesPresented => "no client certificate".into(),
        Error::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer => {
                "client certificate from an unknown issuer (not signed by tls.client_ca)".into()
            }
            Cert::ExpiredContext { not_after, .. } => {
                format!(
                    "client certificate expired (not valid after {})",
                    date(*not_after)
                )
            }
            Cert::Expired => "client certificate expired".into(),
            Cert::NotValidYetContext { not_before, .. } => {
                format!(
                    "client certificate not yet valid (not before {})",
                    date(*not_before)
                )
            }
            Cert::NotValidYet => "client certificate not yet valid".into(),
            Cert::Other(other) => match other.0.downcast_ref::<ClientCertRefusal>() {
                Some(refusal) => refusal.to_string(),
                None => format!("client certificate refused: {other}"),
            },
            Cert::InvalidPurpose | Cert::InvalidPurposeContext { .. } => {
                "client certificate not meant for client authentication (extended key usage)".into()
            }
            _ => format!("client certificate refused: {cert}"),
        },
        Error::PeerIncompatible(
            Peer::Tls12NotOffered
            | Peer::Tls12NotOfferedOrEnabled
            | Peer::SupportedVersionsExtensionRequired,
        ) => "unsupported protocol version (TLS 1.2 or 1.3 required)".into(),
        Error::PeerIncompatible(Peer::NoCipherSuitesInCommon) => "no cipher suite in common".into(),
        Error::PeerIncompatible(other) => format!("client incompatible: {other:?}"),
        Error::AlertReceived(alert) => {
            format!(
                "the client ended the handshake with alert {alert:?} (does it trust our certificate?)"
            )
        }
        other => other.to_string(),
    }
}

/// A certificate time as an RFC 3339 date (UTC), as support compares it with STRUST.
fn date(time: UnixTime) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_secs(time.as_secs());
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A certificate subject, as matched against `tls.allowed_subjects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The first common name, if any.
    pub common_name: Option<String>,
    /// RFC 4514 order (most specific first), `KEY=value` joined by `,`, no spaces.
    pub full: String,
}

impl Subject {
    /// The subject of a DER certificate; `None` when it does not parse.
    pub fn of(cert: &CertificateDer<'_>) -> Option<Subject> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(cert.as_ref()).ok()?;
        let subject = cert.subject();
        let mut parts = Vec::new();
        let mut common_name = None;
        for rdn in subject.iter() {
            for attr in rdn.iter() {
                let oid = attr.attr_type().to_id_string();
                let key = short_name(&oid).map(str::to_string).unwrap_or(oid);
                let value = attr.as_str().unwrap_or("").to_string();
                if key == "CN" && common_name.is_none() {
                    common_name = Some(value.clone());
                }
                parts.push(format!("{key}={value}"));
            }
        }
        parts.reverse();
        Some(Subject {
            common_name,
            full: parts.join(","),
        })
    }

    /// Whether one of the (normalised) allow-list entries names this subject.
    pub fn allowed_by(&self, allowed: &[String]) -> bool {
        allowed.iter().any(|entry| {
            if entry.contains(',') {
                *entry == self.full
            } else {
                let cn = entry.strip_prefix("CN=").unwrap_or(entry);
                self.common_name.as_deref() == Some(cn)
            }
        })
    }
}

/// An allow-list entry without the spaces people put after commas and around `=`.
fn normalise(entry: &str) -> String {
    entry
        .split(',')
        .map(|part| match part.split_once('=') {
            Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
            None => part.trim().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// The TLS configuration for events to `https://` appURLs: the system's roots (unless
/// `system_roots = false`), plus `ca`, and our client certificate when `cert` is set.
pub fn client_config(outbound: &OutboundTlsConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    if outbound.system_roots {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            warn!(error = %e, "a system root certificate could not be loaded");
        }
        let (_added, _ignored) = store.add_parsable_certificates(native.certs);
    }
    if let Some(path) = &outbound.ca {
        for cert in certs(path, &read(path)?)? {
            store.add(cert).map_err(|e| TlsError::Pem {
                path: path.clone(),
                what: format!("not a usable CA certificate: {e}"),
            })?;
        }
    }
    if store.is_empty() {
        warn!("no trusted roots for https appURLs: event delivery over https will fail");
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(store);
    // ALPN stays empty: the HTTPS connector sets it from the HTTP versions it enables.
    let config = match (&outbound.cert, &outbound.key) {
        (Some(cert_path), Some(key_path)) => {
            let chain = certs(cert_path, &read(cert_path)?)?;
            let key = key(key_path, &read(key_path)?)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::Rustls(format!("client certificate and key: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_refusals_are_told_in_words() {
        use rustls::{AlertDescription, CertificateError as Cert, Error, PeerIncompatible};
        let io = |e: Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let at = |secs| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let cases = [
            (
                Error::InvalidCertificate(Cert::NotValidYetContext {
                    time: at(1_600_000_000),
                    not_before: at(1_700_000_000),
                }),
                "client certificate not yet valid (not before 2023-11-14T22:13:20Z)",
            ),
            (
                Error::InvalidCertificate(Cert::ExpiredContext {
                    time: at(1_700_000_000),
                    not_after: at(1_609_459_200),
                }),
                "client certificate expired (not valid after 2021-01-01T00:00:00Z)",
            ),
            (
                ClientCertRefusal::Version(1).into(),
                "unsupported client certificate version (X.509 v1; v3 required)",
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered),
                "unsupported protocol version (TLS 1.2 or 1.3 required)",
            ),
            (
                Error::AlertReceived(AlertDescription::UnknownCA),
                "the client ended the handshake with alert UnknownCA (does it trust our certificate?)",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(handshake_refusal(&io(error)), expected);
        }
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(handshake_refusal(&eof).starts_with("the client closed the connection"));
    }

    #[test]
    fn allow_list_entries_match_cn_or_full_subject() {
        let subject = Subject {
            common_name: Some("sapprd".into()),
            full: "CN=sapprd,OU=CRM,O=Example,C=DE".into(),
        };
        let allowed = |entries: &[&str]| {
            let entries: Vec<String> = entries.iter().map(|e| normalise(e)).collect();
            subject.allowed_by(&entries)
        };
        assert!(allowed(&["sapprd"]));
        assert!(allowed(&["CN=sapprd"]));
        assert!(allowed(&["CN = sapprd, OU=CRM, O=Example, C=DE"]));
        assert!(!allowed(&["CN=sapqas"]));
        assert!(!allowed(&["CN=sapprd,O=Example"]));
        assert!(!allowed(&["SAPPRD"]));
        assert!(!allowed(&[]));
    }
}
