//! Access control shared by both listeners: source-address allow-lists, HTTP Basic
//! authentication with Argon2 hashes and a per-peer limit on failed logins, and the
//! counters of refused attempts shown on `/api/status`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use ipnet::IpNet;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::{AuthConfig, AuthUser, parse_network};
use crate::listener::{self, HttpResponse};
use crate::soap::{self, Fault};

/// Refused attempts since start, by kind. One shared instance; lock-free.
#[derive(Debug, Default)]
pub struct SecurityCounters {
    /// Requests with wrong credentials (unknown user or wrong password).
    pub auth_failures: AtomicU64,
    /// Requests without credentials on a listener that needs them (answered 401).
    pub auth_missing: AtomicU64,
    /// Requests refused with 429 because their peer failed too often.
    pub auth_throttled: AtomicU64,
    /// Connections closed at once because their address is not allowed.
    pub connections_refused: AtomicU64,
    /// TLS handshakes that failed (wrong CA, expired certificate, old protocol, ...).
    pub tls_handshake_failures: AtomicU64,
    /// Plain-HTTP requests sent to the TLS port.
    pub plain_http_on_tls: AtomicU64,
}

/// A copy of [`SecurityCounters`] for JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CountersSnapshot {
    pub auth_failures: u64,
    pub auth_missing: u64,
    pub auth_throttled: u64,
    pub connections_refused: u64,
    pub tls_handshake_failures: u64,
    pub plain_http_on_tls: u64,
}

impl SecurityCounters {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            auth_failures: get(&self.auth_failures),
            auth_missing: get(&self.auth_missing),
            auth_throttled: get(&self.auth_throttled),
            connections_refused: get(&self.connections_refused),
            tls_handshake_failures: get(&self.tls_handshake_failures),
            plain_http_on_tls: get(&self.plain_http_on_tls),
        }
    }
}

/// The networks allowed to connect to one listener; empty allows everyone.
#[derive(Debug, Clone, Default)]
pub struct AccessList(Vec<IpNet>);

impl AccessList {
    /// From `access.*_allow` entries (validated by the config already; bad ones are skipped).
    pub fn new(entries: &[String]) -> AccessList {
        AccessList(
            entries
                .iter()
                .filter_map(|e| parse_network(e).ok())
                .collect(),
        )
    }

    /// Whether `ip` may connect. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.is_empty() || self.0.iter().any(|net| net.contains(&ip))
    }
}

/// Most peers whose failed logins are remembered at once; bounds the limiter's memory when
/// many addresses fail. Beyond it new peers are not throttled (auth still applies).
pub const MAX_TRACKED_PEERS: usize = 4096;

/// A token bucket per peer address, drained by failed logins only.
#[derive(Debug)]
struct FailureLimiter {
    burst: f64,
    refill: Duration,
    peers: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl FailureLimiter {
    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let gained = now.duration_since(bucket.at).as_secs_f64() / self.refill.as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + gained).min(self.burst),
            at: now,
        }
    }

    /// True when `peer` has used up its failures.
    fn throttled(&self, peer: IpAddr) -> bool {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get_mut(&peer) {
            Some(bucket) => {
                *bucket = self.refilled(*bucket, now);
                bucket.tokens < 1.0
            }
            None => false,
        }
    }

    fn record_failure(&self, peer: IpAddr) {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if !peers.contains_key(&peer) && peers.len() >= MAX_TRACKED_PEERS {
            // Forget peers that are back to a full bucket: they carry no information.
            peers.retain(|_, b| self.refilled(*b, now).tokens < self.burst);
            if peers.len() >= MAX_TRACKED_PEERS {
                debug!(%peer, "failed-login table full; peer not tracked");
                return;
            }
        }
        let bucket = peers.entry(peer).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        *bucket = self.refilled(*bucket, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }
}

/// What [`BasicAuth::check`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Credentials are right; the user name, for logs.
    Allowed(String),
    /// No (usable) `Authorization: Basic` header.
    Missing,
    /// Unknown user or wrong password.
    Denied,
    /// The peer failed too often; its credentials were not checked.
    Throttled,
}

/// HTTP Basic authentication against Argon2 hashes. A password verified once is remembered
/// as its SHA-256, so SAP's keep-alive requests do not pay for Argon2 each time.
pub struct BasicAuth {
    realm: String,
    users: HashMap<String, String>,
    verified: Mutex<HashMap<String, [u8; 32]>>,
    limiter: FailureLimiter,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("realm", &self.realm)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Basic auth for `users`, or `None` when the list is empty (auth off).
    pub fn new(config: &AuthConfig, users: &[AuthUser]) -> Option<BasicAuth> {
        if users.is_empty() {
            return None;
        }
        Some(BasicAuth {
            realm: config.realm.clone(),
            users: users
                .iter()
                .map(|u| (u.name.clone(), u.password_hash.expose().to_string()))
                .collect(),
            verified: Mutex::new(HashMap::new()),
            limiter: FailureLimiter {
                burst: f64::from(config.failure_burst.max(1)),
                refill: config.failure_refill.max(Duration::from_millis(1)),
                peers: Mutex::new(HashMap::new()),
            },
        })
    }

    /// Checks the request's `Authorization` header for `peer`, counting refusals.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        counters: &SecurityCounters,
    ) -> AuthOutcome {
        if self.limiter.throttled(peer) {
            SecurityCounters::bump(&counters.auth_throttled);
            return AuthOutcome::Throttled;
        }
        let Some((user, password)) = credentials(headers) else {
            SecurityCounters::bump(&counters.auth_missing);
            return AuthOutcome::Missing;
        };
        if self.verify(&user, password).await {
            return AuthOutcome::Allowed(user);
        }
        SecurityCounters::bump(&counters.auth_failures);
        self.limiter.record_failure(peer);
        warn!(%peer, user = %user, "HTTP Basic authentication failed");
        AuthOutcome::Denied
    }

    async fn verify(&self, user: &str, password: String) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let digest = sha256(password.as_bytes());
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .copied();
        if known == Some(digest) {
            return true;
        }
        let hash = hash.clone();
        // Argon2 is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || {
            use argon2::{PasswordHash, PasswordVerifier};
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .await
        .unwrap_or(false);
        if ok {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(user.to_string(), digest);
        }
        ok
    }

    /// The answer to a refused request: 401 with `WWW-Authenticate`, or 429 when throttled;
    /// the body is a SOAP fault when `soap` (SAP reads faults), plain text otherwise.
    pub fn refusal(&self, outcome: &AuthOutcome, soap: bool) -> HttpResponse {
        let (status, text) = match outcome {
            AuthOutcome::Throttled => (StatusCode::TOO_MANY_REQUESTS, "too many failed logins"),
            _ => (StatusCode::UNAUTHORIZED, "authentication required"),
        };
        let mut response = if soap {
            listener::response(
                status,
                crate::server::SOAP_CONTENT_TYPE,
                soap::write_fault(&Fault::client(text)),
            )
        } else {
            listener::text(status, format!("{text}\n"))
        };
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm);
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        } else {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        response
    }
}

/// `(user, password)` of an `Authorization: Basic` header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_list_matches_networks_and_mapped_addresses() {
        let list = AccessList::new(&["10.1.0.0/16".into(), "192.0.2.7".into()]);
        assert!(list.allows("10.1.200.3".parse().unwrap()));
        assert!(list.allows("192.0.2.7".parse().unwrap()));
        assert!(list.allows("::ffff:10.1.0.1".parse().unwrap()));
        assert!(!list.allows("192.0.2.8".parse().unwrap()));
        assert!(!list.allows("::1".parse().unwrap()));
        assert!(AccessList::default().allows("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic U0FQSUNJOnBhOnNz"),
        );
        assert_eq!(
            credentials(&headers),
            Some(("SAPICI".into(), "pa:ss".into()))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(credentials(&headers), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_limited_per_peer_and_refill() {
        let limiter = FailureLimiter {
            burst: 3.0,
            refill: Duration::from_secs(10),
            peers: Mutex::new(HashMap::new()),
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(!limiter.throttled(a));
            limiter.record_failure(a);
        }
        assert!(limiter.throttled(a));
        assert!(!limiter.throttled(b), "other peers are not affected");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!limiter.throttled(a), "one failure refilled");
        limiter.record_failure(a);
        assert!(limiter.throttled(a));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_memory_is_bounded() {
        let limiter = FailureLimiter {
            burst: 2.0,
            refill: Duration::from_secs(1),
            peers: Mutex::new(HashMap::new()),
        };
        for i in 0..(MAX_TRACKED_PEERS as u32 + 100) {
            limiter.record_failure(IpAddr::from(i.to_be_bytes()));
        }
        assert!(limiter.peers.lock().unwrap().len() <= MAX_TRACKED_PEERS);
        tokio::time::advance(Duration::from_secs(5)).await;
        limiter.record_failure("198.51.100.1".parse().unwrap());
        assert_eq!(
            limiter.peers.lock().unwrap().len(),
            1,
            "refilled peers forgotten"
        );
    }
}
