//! Where events may go. SAP hands over the appURL, so whoever can call `subscribe*` picks
//! the host and port the connector POSTs to (server-side request forgery). Two rules:
//!
//! - **Never to ourselves**: not to the SOAP or admin listener, under any name or alias
//!   (127.0.0.0/8, `::1`, `0.0.0.0`, `::`, IPv4-mapped forms, and when a listener is bound
//!   to a wildcard address any address of this host) on a listener's port.
//! - **Only to `[events] allow`** when it is set: a host named there (by name, resolved
//!   by DNS as it is), or an address inside one of its networks.
//!
//! One deliberate exception: the agent desktop's event receiver on our admin listener
//! ([`Destinations::with_desktop_receiver`]). The desktop subscribes as SAP does, with an
//! appURL on the admin listener; that appURL passes, past both rules, only in its one exact
//! form: `http://`, the admin listener's address as an IP literal (a name could be moved
//! by DNS), its port, the receiver's path and one token, nothing else. The receiver accepts
//! only tokens it issued to an open desktop, so no other path of ours can be reached, and
//! a guessed token gets 401 (the subscription ends).
//!
//! Checked when SAP subscribes ([`Destinations::check`]: every address the host resolves
//! to must pass, else a fault) and again on every connect ([`Connector`]: the host is
//! resolved anew and only addresses that pass are connected to), so a DNS answer that
//! changes after the subscription cannot move deliveries onto a refused address.

use std::error::Error;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why events may not go to an appURL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// The address is (or reaches) one of the connector's own listeners.
    #[error("{0} is the connector's own listener")]
    OwnListener(SocketAddr),
    /// `[events] allow` is set and neither names the host nor contains the address.
    #[error("{0} is not in [events] allow")]
    NotAllowed(String),
    /// The host has no address (DNS failure or unknown name).
    #[error("cannot resolve {host}: {reason}")]
    Unresolved { host: String, reason: String },
    /// The URL names no host.
    #[error("the appURL has no host")]
    NoHost,
}

/// One entry of `[events] allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// A host name, lower case, without a trailing dot.
    Host(String),
    Network(ipnet::IpNet),
}

/// The delivery policy: our own listeners and the allow-list. Built once at start.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    /// The bound addresses of the SOAP and admin listeners.
    own: Vec<SocketAddr>,
    /// Empty: any host.
    allow: Vec<Allowed>,
    /// The agent desktop's event receiver, when the admin listener serves one.
    desktop: Option<DesktopReceiver>,
}

/// Where the agent desktop's event receiver listens: the admin listener's bound address
/// and the receiver's path (`/agent/events/`), which a token completes.
#[derive(Debug, Clone)]
struct DesktopReceiver {
    admin: SocketAddr,
    path: &'static str,
}

/// Longest receiver token in an appURL (the desktop's are 32 hex digits).
const MAX_RECEIVER_TOKEN: usize = 64;

impl Destinations {
    /// Refuses `own` (our listeners' bound addresses) and, when `allow` is not empty,
    /// everything outside it. `allow` entries are as `[events] allow` (already validated:
    /// whatever is not an address or network is taken as a host name).
    pub fn new(own: impl IntoIterator<Item = SocketAddr>, allow: &[String]) -> Destinations {
        let allow = allow
            .iter()
            .map(|entry| match crate::config::parse_network(entry) {
                Ok(network) => Allowed::Network(network),
                Err(_) => Allowed::Host(host_key(entry)),
            })
            .collect();
        Destinations {
            own: own.into_iter().collect(),
            allow,
            desktop: None,
        }
    }

    /// Lets events go to the agent desktop's receiver on the admin listener bound at
    /// `admin`: appURLs `http://<admin IP>:<port><path><token>` (the module documentation
    /// says why this is safe). Everything else of ours stays refused.
    pub fn with_desktop_receiver(mut self, admin: SocketAddr, path: &'static str) -> Self {
        self.desktop = Some(DesktopReceiver { admin, path });
        self
    }

    /// Whether `uri` is exactly a desktop receiver's appURL: checked when subscribing,
    /// where the path is known.
    fn is_desktop_receiver(&self, uri: &Uri) -> bool {
        let Some(receiver) = &self.desktop else {
            return false;
        };
        let token = uri.path().strip_prefix(receiver.path).filter(|token| {
            !token.is_empty()
                && token.len() <= MAX_RECEIVER_TOKEN
                && token.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        token.is_some() && uri.query().is_none() && self.desktop_address(uri).is_some()
    }

    /// The admin listener's address when `uri` names it as the desktop receiver would:
    /// `http`, an IP literal, the listener's port. Used on connect, where hyper passes
    /// the scheme and authority only; every appURL that gets there passed [`Self::check`],
    /// so one with this authority is the receiver's.
    fn desktop_address(&self, uri: &Uri) -> Option<SocketAddr> {
        let receiver = self.desktop.as_ref()?;
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let ip = host.parse::<IpAddr>().ok()?;
        let addr = SocketAddr::new(ip, uri.port_u16()?);
        (uri.scheme_str() == Some("http") && reaches(receiver.admin, addr)).then_some(addr)
    }

    /// Whether events may go to `uri`: resolves its host now and refuses it if any of its
    /// addresses is refused (a host that is half ours is not SAP).
    pub async fn check(&self, uri: &Uri) -> Result<(), DestinationError> {
        if self.is_desktop_receiver(uri) {
            return Ok(());
        }
        let (host, addresses) = resolve(uri).await?;
        let by_name = self.allows_name(&host);
        match addresses
            .into_iter()
            .find_map(|addr| self.refusal(&host, by_name, addr))
        {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// The addresses a connection for `uri` may go to, resolved now, in the resolver's
    /// order; refused ones are left out, and when none is left the first refusal is the
    /// error.
    async fn addresses(&self, uri: &Uri) -> Result<Vec<SocketAddr>, DestinationError> {
        if let Some(addr) = self.desktop_address(uri) {
            return Ok(vec![addr]);
        }
        let (host, addresses) = resolve(uri).await?;
        let by_name = self.allows_name(&host);
        let mut first_refusal = None;
        let allowed: Vec<SocketAddr> = addresses
            .into_iter()
            .filter(|&addr| match self.refusal(&host, by_name, addr) {
                None => true,
                Some(refused) => {
                    first_refusal.get_or_insert(refused);
                    false
                }
            })
            .collect();
        match first_refusal {
            Some(refused) if allowed.is_empty() => Err(refused),
            _ => Ok(allowed),
        }
    }

    /// Whether `[events] allow` names `host` (or is empty).
    fn allows_name(&self, host: &str) -> bool {
        let host = host_key(host);
        self.allow.is_empty()
            || self
                .allow
                .iter()
                .any(|entry| matches!(entry, Allowed::Host(name) if *name == host))
    }

    /// Why events may not go to `addr` (an address of `host`), if they may not. `by_name`:
    /// the allow-list named the host, so its addresses need not be in a listed network.
    fn refusal(&self, host: &str, by_name: bool, addr: SocketAddr) -> Option<DestinationError> {
        if self.is_own(addr) {
            return Some(DestinationError::OwnListener(addr));
        }
        let ip = addr.ip().to_canonical();
        let in_network = || {
            self.allow
                .iter()
                .any(|entry| matches!(entry, Allowed::Network(net) if net.contains(&ip)))
        };
        if by_name || in_network() {
            None
        } else if host.parse::<IpAddr>().is_ok() {
            Some(DestinationError::NotAllowed(addr.to_string()))
        } else {
            Some(DestinationError::NotAllowed(format!("{host} ({addr})")))
        }
    }

    /// Whether `addr` reaches one of our listeners.
    fn is_own(&self, addr: SocketAddr) -> bool {
        self.own.iter().any(|&own| reaches(own, addr))
    }
}

/// Whether a connection to `addr` reaches the listener bound at `own`.
fn reaches(own: SocketAddr, addr: SocketAddr) -> bool {
    let ip = addr.ip().to_canonical();
    let own_ip = own.ip().to_canonical();
    own.port() == addr.port()
        && (ip == own_ip
            || ip.is_loopback()
            || ip.is_unspecified()
            || (own_ip.is_unspecified() && is_local(ip)))
}

/// Whether `ip` is an address of this host: only then can a socket be bound to it. A
/// system call without I/O, made only for listeners bound to a wildcard address.
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// A host name as compared with `[events] allow`: lower case, no trailing dot.
fn host_key(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The port of an `http://` URL that names none (RFC 9110, section 4.2.1).
const HTTP_PORT: u16 = 80;
/// The port of an `https://` URL that names none (RFC 9110, section 4.2.2).
const HTTPS_PORT: u16 = 443;

/// The host of `uri` (brackets of an IPv6 literal removed) and its addresses with the
/// URL's port (default [`HTTP_PORT`], or [`HTTPS_PORT`] for `https`). An address literal
/// is not looked up.
async fn resolve(uri: &Uri) -> Result<(String, Vec<SocketAddr>), DestinationError> {
    let host = uri.host().ok_or(DestinationError::NoHost)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            HTTPS_PORT
        } else {
            HTTP_PORT
        });
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((host, vec![SocketAddr::new(ip, port)]));
    }
    let unresolved = |reason: String| DestinationError::Unresolved {
        host: host.clone(),
        reason,
    };
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| unresolved(e.to_string()))?
        .collect();
    if addresses.is_empty() {
        return Err(unresolved("no address".into()));
    }
    Ok((host, addresses))
}

/// The TCP connector of the notifier's HTTP client: resolves the appURL's host itself,
/// leaves out the addresses [`Destinations`] refuses, and hands the others to hyper's
/// [`HttpConnector`] (which tries them as usual, IPv6 and IPv4 side by side). TLS is
/// layered on top with the original host name for SNI and certificate checks.
#[derive(Clone)]
pub(super) struct Connector {
    destinations: Arc<Destinations>,
}

impl Connector {
    pub(super) fn new(destinations: Arc<Destinations>) -> Connector {
        Connector { destinations }
    }
}

type BoxError = Box<dyn Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let destinations = Arc::clone(&self.destinations);
        Box::pin(async move {
            let addresses = destinations.addresses(&uri).await?;
            let mut connector = HttpConnector::new_with_resolver(Checked(addresses));
            connector.set_nodelay(true);
            connector.enforce_http(false);
            Ok(tower_service::Service::call(&mut connector, uri).await?)
        })
    }
}

/// The "resolver" of one connect: the addresses [`Destinations`] let through, whatever the
/// name (the lookup is already done).
#[derive(Clone)]
struct Checked(Vec<SocketAddr>);

impl tower_service::Service<Name> for Checked {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        std::future::ready(Ok(self.0.clone().into_iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    async fn check(d: &Destinations, url: &str) -> Result<(), DestinationError> {
        d.check(&url.parse().unwrap()).await
    }

    #[tokio::test]
    async fn own_listeners_are_refused_under_every_loopback_name() {
        let d = Destinations::new([addr("127.0.0.1:8080"), addr("127.0.0.1:8081")], &[]);
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.1.2.3:8081/x",
            "http://localhost:8081/",
            "http://0.0.0.0:8080/",
            "http://[::1]:8080/",
            "http://[::]:8081/",
            "http://[::ffff:127.0.0.1]:8080/",
        ] {
            assert!(
                matches!(check(&d, url).await, Err(DestinationError::OwnListener(_))),
                "{url}"
            );
        }
        // Other ports of loopback are not ours (a local SAP, the tests' fake SAP).
        assert_eq!(check(&d, "http://127.0.0.1:8082/").await, Ok(()));
        assert_eq!(check(&d, "http://192.0.2.1:8080/").await, Ok(()));
    }

    #[tokio::test]
    async fn only_the_exact_desktop_receiver_of_the_admin_listener_passes() {
        let d = Destinations::new(
            [addr("127.0.0.1:8080"), addr("127.0.0.1:8081")],
            &["192.0.2.0/24".to_string()],
        )
        .with_desktop_receiver(addr("127.0.0.1:8081"), "/agent/events/");
        // The receiver passes our own-listener rule and [events] allow, in its one form.
        assert_eq!(
            check(&d, "http://127.0.0.1:8081/agent/events/abc123").await,
            Ok(())
        );
        assert_eq!(
            check(&d, "http://[::1]:8081/agent/events/abc123").await,
            Ok(())
        );
        for url in [
            "http://127.0.0.1:8081/sim/calls",
            "http://127.0.0.1:8081/agent/events/",
            "http://127.0.0.1:8081/agent/events/a/../../../sim/calls",
            "http://127.0.0.1:8081/agent/events/abc?x=1",
            "http://127.0.0.1:8081/agent/soap",
            "http://127.0.0.1:8080/agent/events/abc123",
            "http://localhost:8081/agent/events/abc123",
            "https://127.0.0.1:8081/agent/events/abc123",
        ] {
            assert!(check(&d, url).await.is_err(), "{url}");
        }
        // On connect (scheme and authority only): the admin listener by IP literal only.
        let uri: Uri = "http://127.0.0.1:8081".parse().unwrap();
        assert_eq!(d.addresses(&uri).await, Ok(vec![addr("127.0.0.1:8081")]));
        let uri: Uri = "http://localhost:8081".parse().unwrap();
        assert!(d.addresses(&uri).await.is_err());
        let uri: Uri = "http://127.0.0.1:8080".parse().unwrap();
        assert!(d.addresses(&uri).await.is_err());
        // Without a receiver, nothing of ours passes.
        let plain = Destinations::new([addr("127.0.0.1:8081")], &[]);
        assert!(
            check(&plain, "http://127.0.0.1:8081/agent/events/abc123")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_wildcard_listener_is_reached_by_any_local_address() {
        let d = Destinations::new([addr("0.0.0.0:8080")], &[]);
        assert!(check(&d, "http://127.0.0.1:8080/").await.is_err());
        // 192.0.2.1 (TEST-NET-1) is nobody's local address.
        assert_eq!(check(&d, "http://192.0.2.1:8080/").await, Ok(()));
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(!is_local("192.0.2.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn allow_list_takes_names_and_networks() {
        let allow = ["LocalHost.".to_string(), "192.0.2.0/24".to_string()];
        let d = Destinations::new([], &allow);
        assert_eq!(check(&d, "http://192.0.2.77:8000/sap").await, Ok(()));
        assert_eq!(check(&d, "http://localhost:8000/sap").await, Ok(()));
        assert_eq!(
            check(&d, "https://127.0.0.1/sap").await,
            Err(DestinationError::NotAllowed("127.0.0.1:443".into()))
        );
        assert_eq!(
            check(&d, "http://[::ffff:192.0.2.5]/").await,
            Ok(()),
            "IPv4-mapped addresses are their IPv4 address"
        );
        assert!(matches!(
            check(&d, "http://no-such-host.invalid/").await,
            Err(DestinationError::Unresolved { .. })
        ));
    }

    #[tokio::test]
    async fn connect_addresses_leave_out_the_refused_ones() {
        let d = Destinations::new([addr("127.0.0.1:8080")], &[]);
        let uri: Uri = "http://localhost:8080/".parse().unwrap();
        assert_eq!(
            d.addresses(&uri).await,
            Err(DestinationError::OwnListener(addr("127.0.0.1:8080")))
        );
        let uri: Uri = "http://localhost:9/".parse().unwrap();
        assert_eq!(d.addresses(&uri).await, Ok(vec![addr("127.0.0.1:9")]));
        let d = Destinations::new([], &["192.0.2.0/24".to_string()]);
        assert_eq!(
            d.addresses(&uri).await,
            Err(DestinationError::NotAllowed(
                "localhost (127.0.0.1:9)".into()
            ))
        );
    }
}
