//! The queue between the session manager (which pushes) and one drain task (which takes).
//!
//! A plain `VecDeque` behind a `std` mutex that is only held for a push or a pop, never
//! across an `.await`, plus a [`Notify`] to wake the task. The bound is checked on push
//! against everything not yet acknowledged by SAP, so memory stays bounded while SAP is away.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::spool::Spool;
use super::{OutboundEvent, SubscriptionId};

/// Why [`Outbox::push`] refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// `max_queue_per_subscription` events are already waiting for SAP. The caller decides
    /// what follows (it ends the subscription with [`super::EndReason::Overflow`]).
    #[error("event outbox is full")]
    Full,
    /// The outbox no longer takes events: SAP's session is gone (see [`super::Feedback`]).
    #[error("event outbox is closed")]
    Closed,
}

/// The ordered queue of one subscription's events. Owned by the session manager; not
/// `Clone`, so there is exactly one owner.
///
/// Dropping it means the subscription has ended: the task still delivers what is queued
/// (so a final `subscriptionEnded` pushed just before goes out last, within
/// `close_grace`), then stops.
#[derive(Debug)]
pub struct Outbox {
    id: SubscriptionId,
    shared: std::sync::Arc<Shared>,
    spool: Spool,
}

impl Outbox {
    pub(super) fn new(id: SubscriptionId, shared: std::sync::Arc<Shared>, spool: Spool) -> Outbox {
        Outbox { id, shared, spool }
    }

    /// The subscription this outbox belongs to.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// Queues `event` behind the ones already queued, and on the spool; it goes out once
    /// the spool has committed it. Never blocks or awaits.
    pub fn push(&self, event: OutboundEvent) -> Result<(), PushError> {
        {
            let mut queue = self.shared.lock();
            if queue.ended {
                return Err(PushError::Closed);
            }
            if queue.depth() >= self.shared.capacity || !self.shared.total.take() {
                return Err(PushError::Full);
            }
            self.spool.append(self.id, &event, &self.shared);
            queue.events.push_back(event);
        }
        self.shared.wake.notify_one();
        crate::metrics::event_queued();
        Ok(())
    }

    /// Queues a last event even when the outbox is full (one past the bound): the
    /// `subscriptionEnded` that tells SAP why its subscription ends.
    pub fn push_final(&self, event: OutboundEvent) -> Result<(), PushError> {
        {
            let mut queue = self.shared.lock();
            if queue.ended {
                return Err(PushError::Closed);
            }
            self.shared.total.force_take();
            self.spool.append(self.id, &event, &self.shared);
            queue.events.push_back(event);
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Drops the oldest queued (not in flight) event named `name` about `call`, superseded
    /// by a newer state of the same call; returns its sequence number. The overflow policy
    /// `coalesce` uses it to make room without losing the call's latest state.
    pub fn coalesce(&self, name: &str, call: &str) -> Option<u64> {
        let mut queue = self.shared.lock();
        let pos = queue
            .events
            .iter()
            .position(|e| e.name == name && e.call.as_deref() == Some(call))?;
        let dropped = queue.events.remove(pos)?;
        self.shared.total.give_back(1);
        self.spool
            .record(super::spool::SpoolOp::Remove(self.id, dropped.sequence));
        Some(dropped.sequence)
    }

    /// Events queued and not yet acknowledged by SAP, the one in flight included (for the
    /// status page).
    pub fn depth(&self) -> usize {
        self.shared.lock().depth()
    }

    /// Failed delivery attempts of this outbox so far (refused, timed out, 5xx, ...): a
    /// growing number with a steady depth means SAP is unreachable.
    pub fn failed_attempts(&self) -> u64 {
        self.shared.failed_attempts.load(Ordering::Relaxed)
    }

    /// The highest sequence number on disk (or, without a spool, queued): events up to it
    /// survive a crash.
    pub fn durable_sequence(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// How the last delivery attempt ended (`"200 phoneCallChanged #3"`, `"failed: ..."`),
    /// for the status page; `None` before the first attempt.
    pub fn last_delivery(&self) -> Option<String> {
        self.shared
            .last_delivery
            .lock()
            .map(|l| l.clone())
            .unwrap_or(None)
    }

    /// Whether the outbox still takes events (false once SAP's session is gone).
    pub fn is_open(&self) -> bool {
        !self.shared.lock().ended
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.shared.lock().closed_at = Some(Instant::now());
        self.shared.wake.notify_one();
    }
}

/// The bound on events queued over all outboxes together (`max_queue_total`).
#[derive(Debug)]
pub struct TotalBound {
    limit: usize,
    used: AtomicUsize,
}

impl TotalBound {
    pub fn new(limit: usize) -> TotalBound {
        TotalBound {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Events queued in all outboxes now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Takes one place if there is one.
    fn take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.limit).then_some(used + 1)
            })
            .is_ok()
    }

    /// Takes places past the limit (restored events, a final subscriptionEnded).
    fn force_take_n(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    fn force_take(&self) {
        self.force_take_n(1);
    }

    fn give_back(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

/// State shared by an [`Outbox`] and its drain task.
#[derive(Debug)]
pub(super) struct Shared {
    capacity: usize,
    queue: Mutex<Queue>,
    wake: Notify,
    pub(super) failed_attempts: AtomicU64,
    /// The highest sequence number the spool has committed: events up to it may be sent.
    durable: AtomicU64,
    total: Arc<TotalBound>,
    /// How the last delivery attempt ended, for the status page.
    pub(super) last_delivery: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<OutboundEvent>,
    /// The drain task has taken an event and SAP has not acknowledged it yet.
    in_flight: bool,
    /// When the [`Outbox`] was dropped.
    closed_at: Option<Instant>,
    /// The task has stopped; nothing will be delivered any more.
    ended: bool,
}

impl Queue {
    fn depth(&self) -> usize {
        self.events.len() + usize::from(self.in_flight)
    }
}

impl Shared {
    /// An outbox's state with no bound over all outboxes (tests).
    #[cfg(test)]
    pub(super) fn new(capacity: usize) -> Shared {
        Shared::with_total(capacity, Arc::new(TotalBound::new(usize::MAX)))
    }

    pub(super) fn with_total(capacity: usize, total: Arc<TotalBound>) -> Shared {
        Shared {
            total,
            capacity,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            failed_attempts: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            last_delivery: Mutex::new(None),
        }
    }

    /// The spool committed every event up to `sequence`.
    pub(super) fn mark_durable(&self, sequence: u64) {
        self.durable.fetch_max(sequence, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Queues events restored from the spool (already durable).
    pub(super) fn restore(&self, events: impl IntoIterator<Item = OutboundEvent>) {
        let mut queue = self.lock();
        for event in events {
            self.durable.fetch_max(event.sequence, Ordering::AcqRel);
            self.total.force_take();
            queue.events.push_back(event);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; recover the data anyway rather than spread
        // a poison panic into the session manager.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next event to deliver, marked in flight; `None` once the outbox was dropped and
    /// everything is delivered (the outbox is then ended).
    pub(super) async fn next(&self) -> Option<OutboundEvent> {
        loop {
            {
                let mut queue = self.lock();
                let durable = self.durable.load(Ordering::Acquire);
                if queue.events.front().is_some_and(|e| e.sequence <= durable) {
                    let event = queue.events.pop_front().expect("checked");
                    if queue.events.is_empty() {
                        // Most subscriptions are idle most of the time: an empty queue
                        // keeps no buffer.
                        queue.events = VecDeque::new();
                    }
                    queue.in_flight = true;
                    return Some(event);
                }
                if queue.events.is_empty() && queue.closed_at.is_some() {
                    queue.ended = true;
                    return None;
                }
            }
            // A push or drop between the check above and this await leaves a permit, so no
            // wake-up is lost.
            self.wake.notified().await;
        }
    }

    /// SAP acknowledged the event in flight.
    pub(super) fn delivered(&self) {
        self.lock().in_flight = false;
        self.total.give_back(1);
    }

    /// When the [`Outbox`] was dropped, if it was.
    pub(super) fn closed_at(&self) -> Option<Instant> {
        self.lock().closed_at
    }

    /// Stops taking events and discards what is queued; returns how many were discarded
    /// (the one in flight included).
    pub(super) fn end(&self) -> usize {
        let mut queue = self.lock();
        let discarded = queue.depth();
        queue.events.clear();
        queue.in_flight = false;
        queue.ended = true;
        self.total.give_back(discarded);
        discarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sequence: u64) -> OutboundEvent {
        OutboundEvent {
            name: "phoneCallChanged",
            sequence,
            user: "AGENT1".into(),
            call: None,
            body: String::new(),
        }
    }

    #[tokio::test]
    async fn bound_counts_the_event_in_flight() {
        let shared = Arc::new(Shared::new(2));
        let outbox = Outbox::new(1, shared.clone(), Spool::memory());
        outbox.push(event(1)).unwrap();
        outbox.push(event(2)).unwrap();
        assert_eq!(outbox.push(event(3)), Err(PushError::Full));
        assert_eq!(shared.next().await.unwrap().sequence, 1);
        assert_eq!(outbox.depth(), 2, "in flight still counts");
        assert_eq!(outbox.push(event(3)), Err(PushError::Full));
        shared.delivered();
        assert_eq!(outbox.depth(), 1);
        outbox.push(event(3)).unwrap();
        assert_eq!(outbox.depth(), 2);
    }

    #[tokio::test]
    async fn drop_lets_the_queue_drain_then_ends() {
        let shared = Arc::new(Shared::new(10));
        let outbox = Outbox::new(1, shared.clone(), Spool::memory());
        outbox.push(event(1)).unwrap();
        drop(outbox);
        assert_eq!(shared.next().await.unwrap().sequence, 1);
        shared.delivered();
        assert!(shared.next().await.is_none());
    }

    #[tokio::test]
    async fn ended_outbox_refuses_pushes() {
        let shared = Arc::new(Shared::new(10));
        let outbox = Outbox::new(1, shared.clone(), Spool::memory());
        outbox.push(event(1)).unwrap();
        outbox.push(event(2)).unwrap();
        assert_eq!(shared.end(), 2);
        assert_eq!(outbox.push(event(3)), Err(PushError::Closed));
        assert_eq!(outbox.depth(), 0);
        assert!(!outbox.is_open());
    }

    #[tokio::test]
    async fn total_bound_spans_outboxes() {
        let total = Arc::new(TotalBound::new(3));
        let a = Arc::new(Shared::with_total(10, total.clone()));
        let b = Arc::new(Shared::with_total(10, total.clone()));
        let (oa, ob) = (
            Outbox::new(1, a.clone(), Spool::memory()),
            Outbox::new(2, b.clone(), Spool::memory()),
        );
        oa.push(event(1)).unwrap();
        oa.push(event(2)).unwrap();
        ob.push(event(1)).unwrap();
        assert_eq!(ob.push(event(2)), Err(PushError::Full));
        assert_eq!(total.used(), 3);
        assert_eq!(a.next().await.unwrap().sequence, 1);
        a.delivered();
        ob.push(event(2)).unwrap();
        assert_eq!(oa.coalesce("phoneCallChanged", "none"), None);
        assert_eq!(b.end(), 2);
        assert_eq!(total.used(), 1);
    }
}
