//! Log lines about refused peers, at most one per peer and window: a client that retries
//! a refused handshake every second, or a flood of connections, must not fill the log,
//! but the first refusal of each peer is seen at once, and the next line says how many
//! were left out in between.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::MAX_TRACKED_PEERS;

/// The window of [`PeerLogLimit::default`]: one line per peer and minute.
pub const LOG_WINDOW: Duration = Duration::from_secs(60);

/// Decides which refusals of which peer get a log line.
#[derive(Debug)]
pub struct PeerLogLimit {
    window: Duration,
    peers: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    logged_at: Instant,
    suppressed: u64,
}

impl Default for PeerLogLimit {
    fn default() -> Self {
        PeerLogLimit::new(LOG_WINDOW)
    }
}

impl PeerLogLimit {
    /// At most one line per peer and `window`.
    pub fn new(window: Duration) -> PeerLogLimit {
        PeerLogLimit {
            window,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(n)` when a line about `peer` may be written now, `n` being the refusals left
    /// out since its last line; `None` when this one is left out (and counted). While the
    /// table is full of peers logged within the window, new peers are left out uncounted.
    pub fn admit(&self, peer: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = peers.get_mut(&peer) {
            if now.duration_since(entry.logged_at) < self.window {
                entry.suppressed += 1;
                return None;
            }
            let suppressed = entry.suppressed;
            *entry = Entry {
                logged_at: now,
                suppressed: 0,
            };
            return Some(suppressed);
        }
        if peers.len() >= MAX_TRACKED_PEERS {
            // Peers whose window is over and who were quiet since carry no information.
            peers.retain(|_, e| e.suppressed > 0 || now.duration_since(e.logged_at) < self.window);
            if peers.len() >= MAX_TRACKED_PEERS {
                return None;
            }
        }
        peers.insert(
            peer,
            Entry {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_peer_and_window_with_the_count_left_out() {
        let limit = PeerLogLimit::new(Duration::from_secs(10));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(limit.admit(a), Some(0));
        assert_eq!(limit.admit(a), None);
        assert_eq!(limit.admit(a), None);
        assert_eq!(limit.admit(b), Some(0), "other peers have their own window");
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(limit.admit(a), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            limit.admit(a),
            Some(3),
            "three left out since the last line"
        );
        assert_eq!(limit.admit(a), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded() {
        let limit = PeerLogLimit::new(Duration::from_secs(10));
        for i in 0..MAX_TRACKED_PEERS as u32 {
            assert_eq!(limit.admit(IpAddr::from(i.to_be_bytes())), Some(0));
        }
        let late: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(limit.admit(late), None, "full within the window");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(limit.admit(late), Some(0), "quiet peers forgotten after it");
        assert!(limit.peers.lock().unwrap().len() <= MAX_TRACKED_PEERS);
    }
}
