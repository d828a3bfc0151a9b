//! Connection slots of one listener: at most `max_connections` open at once, and at most
//! `max_connections_per_peer` from one address, so that one client cannot take them all.
//! A connection holds its [`Slot`] inside its stream ([`Slotted`]), which gives it back
//! when the server shuts the connection down or drops it, before the socket is closed: a
//! client that sees its connection closed can count on the slot being free again.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    /// Its address has `max_connections_per_peer` open.
    PeerCap,
    /// The listener has `max_connections` open.
    ListenerCap,
}

/// The slots of one listener.
#[derive(Debug)]
pub struct Slots {
    total: Arc<Semaphore>,
    per_peer: usize,
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Slots {
    /// `total` slots, at most `per_peer` of them for one address (both at least 1).
    pub fn new(total: usize, per_peer: usize) -> Slots {
        Slots {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_peer: per_peer.max(1),
            peers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for a connection from `peer`, if one is free for it.
    pub fn take(&self, peer: IpAddr) -> Result<Slot, NoSlot> {
        let peer = peer.to_canonical();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let open = peers.get(&peer).copied().unwrap_or(0);
        if open >= self.per_peer {
            return Err(NoSlot::PeerCap);
        }
        let permit = Arc::clone(&self.total)
            .try_acquire_owned()
            .map_err(|_| NoSlot::ListenerCap)?;
        peers.insert(peer, open + 1);
        Ok(Slot {
            _permit: permit,
            peer,
            peers: Arc::clone(&self.peers),
        })
    }
}

/// One taken slot; given back when dropped. The table holds only peers with a connection
/// open, so it is bounded by `max_connections`.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    peer: IpAddr,
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = peers.get_mut(&self.peer) {
            *open -= 1;
            if *open == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

/// A connection's stream with its slot. Fields drop in order: the slot before the socket.
#[derive(Debug)]
pub struct Slotted<S> {
    slot: Option<Slot>,
    stream: S,
}

impl<S> Slotted<S> {
    pub fn new(slot: Slot, stream: S) -> Slotted<S> {
        Slotted {
            slot: Some(slot),
            stream,
        }
    }

    /// The stream itself (to peek at it before the TLS handshake).
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Slotted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Slotted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// The server closes its side: the connection is over, its slot is free from here on.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.slot = None;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_peer_and_total_caps() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert_eq!(slots.take(a).unwrap_err(), NoSlot::PeerCap);
        let b1 = slots.take(b).unwrap();
        assert_eq!(slots.take(b).unwrap_err(), NoSlot::ListenerCap);
        drop(b1);
        let _b2 = slots.take(b).unwrap();
        drop(a1);
        assert_eq!(slots.peers.lock().unwrap().get(&a), Some(&1));
        let _a3 = slots.take(a).unwrap();
        assert_eq!(slots.take(b).unwrap_err(), NoSlot::ListenerCap);
    }

    #[test]
    fn a_mapped_address_is_the_same_peer() {
        let slots = Slots::new(10, 1);
        let _slot = slots.take("192.0.2.2".parse().unwrap()).unwrap();
        assert_eq!(
            slots.take("::ffff:192.0.2.2".parse().unwrap()).unwrap_err(),
            NoSlot::PeerCap
        );
    }

    #[test]
    fn peers_without_connections_are_forgotten() {
        let slots = Slots::new(10, 10);
        let slot = slots.take("192.0.2.1".parse().unwrap()).unwrap();
        drop(slot);
        assert!(slots.peers.lock().unwrap().is_empty());
    }
}
