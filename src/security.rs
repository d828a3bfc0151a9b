//! Access control shared by both listeners: source-address allow-lists, HTTP Basic
//! authentication with Argon2 hashes and a per-peer limit on failed logins, and the
//! counters of refused attempts shown on `/api/status`, with the latest refused TLS
//! handshakes ([`tls_refusals`]) and rate-limited log lines about refused peers
//! ([`peer_log`]).

pub mod peer_log;
pub mod tls_refusals;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use ipnet::IpNet;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::{AuthConfig, AuthUser, parse_network};

/// Refused attempts since start, by kind (lock-free counters), and the latest refused TLS
/// handshakes. One shared instance.
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
    /// Argon2 password verifications run (a remembered password needs none).
    pub auth_verifications: AtomicU64,
    /// Requests answered 503 because every verification slot was busy (not verified).
    pub auth_busy: AtomicU64,
    /// Connections answered 503 because the listener had `max_connections` open.
    pub connections_over_cap: AtomicU64,
    /// Connections answered 503 because their address had `max_connections_per_peer` open.
    pub connections_over_peer_cap: AtomicU64,
    /// The latest refused TLS handshakes, and their log lines.
    pub tls_refusals: tls_refusals::TlsRefusals,
    /// Which connection refusals get a log line.
    pub connection_log: peer_log::PeerLogLimit,
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
    pub auth_verifications: u64,
    pub auth_busy: u64,
    pub connections_over_cap: u64,
    pub connections_over_peer_cap: u64,
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
            auth_verifications: get(&self.auth_verifications),
            auth_busy: get(&self.auth_busy),
            connections_over_cap: get(&self.connections_over_cap),
            connections_over_peer_cap: get(&self.connections_over_peer_cap),
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

/// A token bucket per peer address. A password verification takes a token before Argon2
/// runs (so parallel requests cannot all pass a check made before any of them failed); a
/// verification that succeeds gives it back, so only failures drain the bucket.
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

    /// How long until `bucket` holds a whole token again (zero when it does).
    fn wait(&self, bucket: Bucket) -> Duration {
        self.refill.mul_f64((1.0 - bucket.tokens).max(0.0))
    }

    /// `Err(wait)` when `peer` has used up its failures; takes nothing.
    fn check(&self, peer: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get_mut(&peer) {
            Some(bucket) => {
                *bucket = self.refilled(*bucket, now);
                if bucket.tokens < 1.0 {
                    Err(self.wait(*bucket))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Takes one token for a verification by `peer`, in the same step as the check, or
    /// `Err(wait)` when there is none.
    fn take(&self, peer: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if !peers.contains_key(&peer) && peers.len() >= MAX_TRACKED_PEERS {
            // Forget peers that are back to a full bucket: they carry no information.
            peers.retain(|_, b| self.refilled(*b, now).tokens < self.burst);
            if peers.len() >= MAX_TRACKED_PEERS {
                debug!(%peer, "failed-login table full; peer not tracked");
                return Ok(());
            }
        }
        let bucket = peers.entry(peer).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        *bucket = self.refilled(*bucket, now);
        if bucket.tokens < 1.0 {
            return Err(self.wait(*bucket));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }

    /// Returns the token of a verification that succeeded.
    fn give_back(&self, peer: IpAddr) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = peers.get_mut(&peer) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
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
    /// The peer failed too often; its credentials were not checked. Its next attempt is
    /// allowed after `retry_after`.
    Throttled { retry_after: Duration },
    /// Every verification slot was busy; the credentials were not checked.
    Busy,
}

/// How long a request waits for a verification slot before it gets 503. One
/// verification takes tens of milliseconds, so SAP's burst of first requests after a start
/// gets through; a flood waits, holding no Argon2 memory, and is turned away.
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// `Retry-After` of a 503 for want of a verification slot: one verification takes
/// milliseconds to a few tenths of a second, so the next second is the earliest useful
/// retry (the header counts whole seconds).
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The password the stand-in hash for unknown users is made from; its value does not
/// matter (a match with it never lets anyone in).
const DUMMY_PASSWORD: &[u8] = b"ici-connector: no such user";
/// The salt of the stand-in hash (16 bytes, the size `hash-password` uses).
const DUMMY_SALT: &[u8] = b"ici-unknown-user";

/// HTTP Basic authentication against Argon2 hashes. A password verified once is remembered
/// as its SHA-256, so SAP's keep-alive requests do not pay for Argon2 each time.
///
/// Argon2 is what an attacker can make us spend: each verification takes its parameters'
/// memory (19 MiB with `hash-password`'s) and tens of milliseconds of CPU. So a
/// verification first takes a slot (at most `auth.max_parallel_verifications` run at
/// once; a request that gets none within a second gets 503) and a token of its peer's
/// failure bucket (429 when there is none), and an unknown user name is verified against
/// a stand-in hash with the same parameters, so that the time of the answer does not tell
/// which user names exist.
pub struct BasicAuth {
    realm: String,
    users: HashMap<String, String>,
    verified: Mutex<HashMap<String, [u8; 32]>>,
    limiter: FailureLimiter,
    slots: Arc<Semaphore>,
    /// A hash of the first user's: its parameters are the stand-in's.
    template: Arc<str>,
    /// The stand-in hash for unknown user names, made on first use (in the blocking pool).
    dummy: Arc<OnceLock<String>>,
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
        let first = users.first()?;
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
            slots: Arc::new(Semaphore::new(config.parallel_verifications())),
            template: Arc::from(first.password_hash.expose()),
            dummy: Arc::new(OnceLock::new()),
        })
    }

    /// Checks the request's `Authorization` header for `peer`, counting refusals.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        counters: &SecurityCounters,
    ) -> AuthOutcome {
        if let Err(retry_after) = self.limiter.check(peer) {
            SecurityCounters::bump(&counters.auth_throttled);
            return AuthOutcome::Throttled { retry_after };
        }
        let Some((user, password)) = credentials(headers) else {
            SecurityCounters::bump(&counters.auth_missing);
            return AuthOutcome::Missing;
        };
        let digest = sha256(password.as_bytes());
        if self.remembered(&user) == Some(digest) {
            return AuthOutcome::Allowed(user);
        }
        // The slot first: a request turned away for want of one keeps its token.
        let slot = tokio::time::timeout(SLOT_WAIT, Arc::clone(&self.slots).acquire_owned()).await;
        let Ok(Ok(slot)) = slot else {
            SecurityCounters::bump(&counters.auth_busy);
            debug!(%peer, "every password verification slot busy");
            return AuthOutcome::Busy;
        };
        // SAP's first requests after a start arrive together with the same password: the
        // one verified while this one waited lets it in without Argon2.
        if self.remembered(&user) == Some(digest) {
            return AuthOutcome::Allowed(user);
        }
        if let Err(retry_after) = self.limiter.take(peer) {
            SecurityCounters::bump(&counters.auth_throttled);
            return AuthOutcome::Throttled { retry_after };
        }
        SecurityCounters::bump(&counters.auth_verifications);
        let hash = self.users.get(&user).cloned();
        let known = hash.is_some();
        let (template, dummy) = (Arc::clone(&self.template), Arc::clone(&self.dummy));
        // Argon2 is deliberately slow: keep it off the async workers. The slot goes with
        // the work and comes back with its result, so it stays taken until Argon2 is done
        // even if this request is dropped meanwhile, and until a match is remembered.
        let verified = tokio::task::spawn_blocking(move || {
            let hash = hash.unwrap_or_else(|| dummy.get_or_init(|| dummy_hash(&template)).clone());
            (argon2_matches(&hash, password.as_bytes()), slot)
        })
        .await;
        let (matched, slot) = match verified {
            Ok((matched, slot)) => (matched, Some(slot)),
            Err(_) => (false, None),
        };
        if known && matched {
            self.limiter.give_back(peer);
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(user.clone(), digest);
            drop(slot);
            return AuthOutcome::Allowed(user);
        }
        drop(slot);
        SecurityCounters::bump(&counters.auth_failures);
        warn!(%peer, user = %user, "HTTP Basic authentication failed");
        AuthOutcome::Denied
    }

    /// The digest of `user`'s password verified before, if any.
    fn remembered(&self, user: &str) -> Option<[u8; 32]> {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .copied()
    }

    /// What a refused request is answered: 401 with `WWW-Authenticate`, 429 when
    /// throttled or 503 when busy (both with `Retry-After`). The listener writes the body
    /// (a SOAP fault for SAP, plain text on the admin listener).
    pub fn refusal(&self, outcome: &AuthOutcome) -> Refusal {
        let (status, text, retry_after) = match outcome {
            AuthOutcome::Throttled { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins",
                Some(*retry_after),
            ),
            AuthOutcome::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many logins at once",
                Some(BUSY_RETRY_AFTER),
            ),
            _ => (StatusCode::UNAUTHORIZED, "authentication required", None),
        };
        let header = match retry_after {
            Some(wait) => Some((
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            )),
            None => {
                let challenge = format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm);
                HeaderValue::from_str(&challenge)
                    .ok()
                    .map(|value| (header::WWW_AUTHENTICATE, value))
            }
        };
        Refusal {
            status,
            text,
            header,
        }
    }
}

/// How a request that failed authentication is answered.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    /// Short and stable: what the body says.
    pub text: &'static str,
    /// `Retry-After` or `WWW-Authenticate`.
    pub header: Option<(HeaderName, HeaderValue)>,
}

impl Refusal {
    /// Adds the refusal's header to a response's.
    pub fn add_header(&self, headers: &mut HeaderMap) {
        if let Some((name, value)) = &self.header {
            headers.insert(name.clone(), value.clone());
        }
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

/// `Retry-After` in whole seconds, rounded up so that a client waiting that long finds the
/// token there; at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// Whether `password` matches the PHC string `hash` (false when the hash does not parse).
fn argon2_matches(hash: &str, password: &[u8]) -> bool {
    use argon2::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password, &parsed)
        .is_ok()
}

/// A hash of [`DUMMY_PASSWORD`] with the algorithm, version and parameters of `template`
/// (Argon2's defaults when it does not parse), for verifying unknown user names at the
/// same cost as known ones.
fn dummy_hash(template: &str) -> String {
    use argon2::{CustomizedPasswordHasher, PasswordHash, PasswordHasher};
    let argon = argon2::Argon2::default();
    let customized = PasswordHash::new(template).ok().and_then(|parsed| {
        let params = argon2::Params::try_from(&parsed).ok()?;
        argon
            .hash_password_customized(
                DUMMY_PASSWORD,
                DUMMY_SALT,
                Some(parsed.algorithm.as_str()),
                parsed.version,
                params,
            )
            .ok()
    });
    customized
        .or_else(|| {
            argon
                .hash_password_with_salt(DUMMY_PASSWORD, DUMMY_SALT)
                .ok()
        })
        .map(|hash| hash.to_string())
        .unwrap_or_default()
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

    fn limiter(burst: f64, refill: Duration) -> FailureLimiter {
        FailureLimiter {
            burst,
            refill,
            peers: Mutex::new(HashMap::new()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_limited_per_peer_and_refill() {
        let limiter = limiter(3.0, Duration::from_secs(10));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(a), Ok(()));
            assert_eq!(limiter.take(a), Ok(()));
        }
        assert_eq!(limiter.check(a), Err(Duration::from_secs(10)));
        assert_eq!(limiter.take(a), Err(Duration::from_secs(10)));
        assert_eq!(limiter.check(b), Ok(()), "other peers are not affected");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            limiter.check(a),
            Err(Duration::from_secs(6)),
            "the wait is the time to the next whole token"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(limiter.check(a), Ok(()), "one failure refilled");
        assert_eq!(limiter.take(a), Ok(()));
        assert!(limiter.check(a).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_verification_gives_its_token_back() {
        let limiter = limiter(2.0, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(limiter.take(a), Ok(()));
            limiter.give_back(a);
        }
        assert_eq!(limiter.take(a), Ok(()));
        assert_eq!(limiter.take(a), Ok(()));
        assert!(limiter.take(a).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(5_200)), 6);
        assert_eq!(retry_after_secs(Duration::from_secs(45)), 45);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn the_stand_in_hash_has_the_template_parameters() {
        use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, Version};
        let params = Params::new(2048, 3, 1, None).unwrap();
        let template = Argon2::new(Algorithm::Argon2i, Version::V0x10, params)
            .hash_password_with_salt(b"x", b"0123456789abcdef")
            .unwrap()
            .to_string();
        let dummy = dummy_hash(&template);
        let parsed = PasswordHash::new(&dummy).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2i");
        assert_eq!(parsed.version, Some(0x10));
        let template = PasswordHash::new(&template).unwrap();
        assert_eq!(
            Params::try_from(&parsed).unwrap(),
            Params::try_from(&template).unwrap(),
            "memory, passes, lanes and output length"
        );
        assert!(argon2_matches(&dummy, DUMMY_PASSWORD));
        assert!(!argon2_matches(&dummy, b"anything else"));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_memory_is_bounded() {
        let limiter = limiter(2.0, Duration::from_secs(1));
        for i in 0..(MAX_TRACKED_PEERS as u32 + 100) {
            let _ = limiter.take(IpAddr::from(i.to_be_bytes()));
        }
        assert!(limiter.peers.lock().unwrap().len() <= MAX_TRACKED_PEERS);
        tokio::time::advance(Duration::from_secs(5)).await;
        let _ = limiter.take("198.51.100.1".parse().unwrap());
        assert_eq!(
            limiter.peers.lock().unwrap().len(),
            1,
            "refilled peers forgotten"
        );
    }
}
