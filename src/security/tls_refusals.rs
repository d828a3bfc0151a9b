//! Refused TLS handshakes of the SOAP listener. Each is logged at warn with the peer and
//! the reason (at most one line per peer and [`LOG_WINDOW`](super::peer_log::LOG_WINDOW),
//! with the count of those left out in between) and kept in a short list for `/api/status` and the
//! status page, so that after a certificate renewal support can see why SAP no longer
//! connects: no certificate, another issuer, expired, an old X.509 version, a subject not
//! allowed, or SAP not trusting ours.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use tracing::warn;

use super::peer_log::PeerLogLimit;

/// How many (peer, reason) pairs the status page shows.
pub const RECENT_TLS_REFUSALS: usize = 20;

/// The refusals of one peer for one reason, as `/api/status` shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsRefusal {
    /// The latest, in seconds since the Unix epoch.
    pub time: f64,
    /// The client's address (without the port, which changes with every attempt).
    pub peer: String,
    pub reason: String,
    /// How many since the pair last dropped out of the list.
    pub count: u64,
}

/// The latest refusals and the log limit; one per process, in
/// [`SecurityCounters`](super::SecurityCounters).
#[derive(Debug, Default)]
pub struct TlsRefusals {
    recent: Mutex<VecDeque<TlsRefusal>>,
    log: PeerLogLimit,
}

impl TlsRefusals {
    /// Notes a handshake with `peer` refused for `reason`, and logs it unless this peer had
    /// a line within the window.
    pub fn record(&self, peer: SocketAddr, reason: &str) {
        let time = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let ip = peer.ip().to_canonical().to_string();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            // A client retrying the same handshake stays one entry, moved to the end.
            let earlier = recent
                .iter()
                .position(|r| r.peer == ip && r.reason == reason)
                .and_then(|i| recent.remove(i));
            let count = earlier.map_or(0, |r| r.count) + 1;
            if recent.len() >= RECENT_TLS_REFUSALS {
                recent.pop_front();
            }
            recent.push_back(TlsRefusal {
                time,
                peer: ip,
                reason: reason.to_string(),
                count,
            });
        }
        if let Some(suppressed) = self.log.admit(peer.ip()) {
            // `reason` may quote a client certificate's subject: as a field it is quoted
            // and escaped, never a line of its own.
            warn!(
                %peer,
                reason,
                suppressed = (suppressed > 0).then_some(suppressed),
                "TLS handshake refused"
            );
        }
    }

    /// The latest refusals, oldest first.
    pub fn recent(&self) -> Vec<TlsRefusal> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 40_000 + u16::from(last)))
    }

    #[test]
    fn repeats_are_one_entry_and_the_list_is_bounded() {
        let refusals = TlsRefusals::default();
        refusals.record(peer(1), "no client certificate");
        refusals.record(peer(2), "no client certificate");
        refusals.record(peer(1), "no client certificate");
        let recent = refusals.recent();
        assert_eq!(recent.len(), 2);
        assert_eq!((recent[1].peer.as_str(), recent[1].count), ("192.0.2.1", 2));
        assert_eq!((recent[0].peer.as_str(), recent[0].count), ("192.0.2.2", 1));

        for i in 0..(RECENT_TLS_REFUSALS as u8 + 5) {
            refusals.record(peer(10 + i), "unknown issuer");
        }
        let recent = refusals.recent();
        assert_eq!(recent.len(), RECENT_TLS_REFUSALS);
        assert_eq!(
            recent.last().unwrap().peer,
            format!("192.0.2.{}", 10 + RECENT_TLS_REFUSALS + 4)
        );
    }
}
