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

use super::drain::Drain;
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
pub struct Outbox {
    id: SubscriptionId,
    shared: std::sync::Arc<Shared>,
    spool: Spool,
    /// Starts the drain task when events come and none runs; `None` in tests that take
    /// the events themselves.
    drain: Option<Arc<Drain>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("id", &self.id)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub(super) fn new(
        id: SubscriptionId,
        shared: std::sync::Arc<Shared>,
        spool: Spool,
        drain: Option<Arc<Drain>>,
    ) -> Outbox {
        Outbox {
            id,
            shared,
            spool,
            drain,
        }
    }

    /// Starts a drain task if `queue` has none yet (call with the queue's lock held; the
    /// task itself is spawned by [`Outbox::start`] once the lock is released).
    fn claim_task(&self, queue: &mut Queue) -> bool {
        self.drain.is_some() && Shared::claim_task(queue)
    }

    fn start(&self, claimed: bool) {
        if let (true, Some(drain)) = (claimed, &self.drain) {
            drain.start();
        }
    }

    /// The subscription this outbox belongs to.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// Queues `event` behind the ones already queued, and on the spool; it goes out once
    /// the spool has committed it. Never blocks or awaits.
    pub fn push(&self, event: OutboundEvent) -> Result<(), PushError> {
        let claimed = {
            let mut queue = self.shared.lock();
            if queue.ended {
                return Err(PushError::Closed);
            }
            if queue.depth() >= self.shared.capacity || !self.shared.total.take() {
                return Err(PushError::Full);
            }
            self.spool.append(self.id, &event, &self.shared);
            queue.events.push_back(event);
            self.claim_task(&mut queue)
        };
        self.shared.wake.notify_one();
        self.start(claimed);
        crate::metrics::event_queued();
        Ok(())
    }

    /// Queues a last event even when the outbox is full (one past the bound): the
    /// `subscriptionEnded` that tells SAP why its subscription ends.
    pub fn push_final(&self, event: OutboundEvent) -> Result<(), PushError> {
        let claimed = {
            let mut queue = self.shared.lock();
            if queue.ended {
                return Err(PushError::Closed);
            }
            self.shared.total.force_take();
            self.spool.append(self.id, &event, &self.shared);
            queue.events.push_back(event);
            self.claim_task(&mut queue)
        };
        self.shared.wake.notify_one();
        self.start(claimed);
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
        {
            let mut queue = self.shared.lock();
            queue.closed_at = Some(Instant::now());
            if self.drain.is_some() && !queue.task && queue.depth() == 0 {
                // Nothing left to deliver and no task to notice: done now.
                queue.ended = true;
            }
        }
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

/// What [`Shared::next`] found.
pub(super) enum Next {
    Event(OutboundEvent),
    /// Nothing queued: the task ends.
    Idle,
    /// The outbox was dropped and everything is delivered.
    Ended,
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
    /// A drain task is running for this outbox (it clears this when it finds the queue
    /// empty, under the same lock as a push sets it, so no event waits without a task).
    task: bool,
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

    /// Queues events restored from the spool (already durable); whether a drain task is
    /// to be started for them (then it is marked as running).
    pub(super) fn restore(&self, events: impl IntoIterator<Item = OutboundEvent>) -> bool {
        let mut queue = self.lock();
        for event in events {
            self.durable.fetch_max(event.sequence, Ordering::AcqRel);
            self.total.force_take();
            queue.events.push_back(event);
        }
        !queue.events.is_empty() && Shared::claim_task(&mut queue)
    }

    /// Marks `queue` as having a drain task; false if it already has one.
    fn claim_task(queue: &mut Queue) -> bool {
        !std::mem::replace(&mut queue.task, true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; recover the data anyway rather than spread
        // a poison panic into the session manager.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next event to deliver, marked in flight; [`Next::Idle`] when the queue is
    /// empty (the task is to end: the next push starts another), [`Next::Ended`] once the
    /// outbox was dropped and everything is delivered (the outbox is then ended).
    pub(super) async fn next(&self) -> Next {
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
                    return Next::Event(event);
                }
                if queue.events.is_empty() {
                    queue.task = false;
                    if queue.closed_at.is_some() {
                        queue.ended = true;
                        return Next::Ended;
                    }
                    return Next::Idle;
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

    fn sequence_of(next: Next) -> Option<u64> {
        match next {
            Next::Event(event) => Some(event.sequence),
            _ => None,
        }
    }

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
        let outbox = Outbox::new(1, shared.clone(), Spool::memory(), None);
        outbox.push(event(1)).unwrap();
        outbox.push(event(2)).unwrap();
        assert_eq!(outbox.push(event(3)), Err(PushError::Full));
        assert_eq!(sequence_of(shared.next().await), Some(1));
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
        let outbox = Outbox::new(1, shared.clone(), Spool::memory(), None);
        outbox.push(event(1)).unwrap();
        drop(outbox);
        assert_eq!(sequence_of(shared.next().await), Some(1));
        shared.delivered();
        assert!(matches!(shared.next().await, Next::Ended));
    }

    #[tokio::test]
    async fn ended_outbox_refuses_pushes() {
        let shared = Arc::new(Shared::new(10));
        let outbox = Outbox::new(1, shared.clone(), Spool::memory(), None);
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
            Outbox::new(1, a.clone(), Spool::memory(), None),
            Outbox::new(2, b.clone(), Spool::memory(), None),
        );
        oa.push(event(1)).unwrap();
        oa.push(event(2)).unwrap();
        ob.push(event(1)).unwrap();
        assert_eq!(ob.push(event(2)), Err(PushError::Full));
        assert_eq!(total.used(), 3);
        assert_eq!(sequence_of(a.next().await), Some(1));
        a.delivered();
        ob.push(event(2)).unwrap();
        assert_eq!(oa.coalesce("phoneCallChanged", "none"), None);
        assert_eq!(b.end(), 2);
        assert_eq!(total.used(), 1);
    }
}
