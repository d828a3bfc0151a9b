//! The spool writer's input: a bounded FIFO queue between the producers (the session
//! manager, the drain tasks) and the writer thread.
//!
//! Why not a channel from std or tokio: the writer is a plain thread that blocks (a
//! [`Condvar`]), while the producers are async tasks that must *wait*, never block, when the
//! queue is full; and the session manager pushes from inside its synchronous handlers, where
//! waiting is impossible without leaving its state half changed. So the queue has two ways
//! in:
//! - [`WriterQueue::push_waiting`] waits (asynchronously) until the queue holds fewer than
//!   its capacity, then pushes: the hard bound, for producers that can wait at any point
//!   (the drain tasks' acknowledgements).
//! - [`WriterQueue::push`] never waits and never refuses (an accepted event is never lost);
//!   its user promises to call [`WriterQueue::room`] before it takes more work. The session
//!   manager does so before it takes its next message, so the queue holds at most its
//!   capacity plus the changes of the one message being handled, and a full queue stops
//!   the actor taking messages: the back-pressure reaches its bounded mailbox and the
//!   switch adapter's bounded event queue.
//!
//! Changes leave in the order they came in, each with its [`Ticket`] (its place in that
//! order), so "ticket `n` committed" means every change before it is committed too.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::Ticket;

/// A bounded FIFO queue from async producers to one blocking consumer thread.
pub(super) struct WriterQueue<M> {
    state: Mutex<State<M>>,
    /// Wakes the writer when something was pushed or the producers are gone.
    ready: Condvar,
    /// Wakes waiting producers when the writer took changes or stopped.
    room: Notify,
    capacity: usize,
}

struct State<M> {
    items: VecDeque<M>,
    /// The ticket of the last change pushed.
    last: Ticket,
    /// The most changes ever waiting at once.
    high_water: usize,
    /// Every producer handle is gone: the writer ends once the queue is empty.
    producers_gone: bool,
    /// The writer has ended: pushes are refused (the caller falls back to memory), waits end.
    writer_gone: bool,
}

impl<M> WriterQueue<M> {
    /// A queue of `capacity` changes (at least one).
    pub(super) fn new(capacity: usize) -> WriterQueue<M> {
        WriterQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                last: 0,
                high_water: 0,
                producers_gone: false,
                writer_gone: false,
            }),
            ready: Condvar::new(),
            room: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // Nothing panics while holding the lock; recover the data rather than spread a
        // poison panic into the session manager.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` at once, full or not (see the module documentation); its ticket, or
    /// `item` back when the writer has ended.
    pub(super) fn push(&self, item: M) -> Result<Ticket, M> {
        let mut state = self.lock();
        if state.writer_gone {
            return Err(item);
        }
        state.items.push_back(item);
        state.last += 1;
        state.high_water = state.high_water.max(state.items.len());
        let ticket = state.last;
        drop(state);
        self.ready.notify_one();
        Ok(ticket)
    }

    /// Waits until the queue has room, then queues `item`: the queue never holds more than
    /// its capacity because of this call.
    pub(super) async fn push_waiting(&self, item: M) -> Result<Ticket, M> {
        let mut item = Some(item);
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a wake-up between the check and the await
            // is not lost.
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if state.writer_gone || state.items.len() < self.capacity {
                    let item = item.take().expect("pushed only once");
                    if state.writer_gone {
                        return Err(item);
                    }
                    state.items.push_back(item);
                    state.last += 1;
                    state.high_water = state.high_water.max(state.items.len());
                    let ticket = state.last;
                    drop(state);
                    self.ready.notify_one();
                    return Ok(ticket);
                }
            }
            notified.await;
        }
    }

    /// Whether the queue holds fewer changes than its capacity (or the writer has ended).
    pub(super) fn has_room(&self) -> bool {
        let state = self.lock();
        state.writer_gone || state.items.len() < self.capacity
    }

    /// Waits until [`WriterQueue::has_room`].
    pub(super) async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }

    /// For the writer: waits until there is something, then takes up to `max` changes
    /// (fewer if `stop` says so for one of them: it is taken, the rest stays). `false`
    /// once the queue is empty and every producer is gone.
    pub(super) fn take(&self, max: usize, into: &mut Vec<M>, stop: impl Fn(&M) -> bool) -> bool {
        let mut state = self.lock();
        while state.items.is_empty() {
            if state.producers_gone {
                return false;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        Self::take_from(&mut state, max, into, stop);
        drop(state);
        self.room.notify_waiters();
        true
    }

    /// For the writer: takes up to `max` changes without waiting.
    pub(super) fn try_take(&self, max: usize, into: &mut Vec<M>, stop: impl Fn(&M) -> bool) {
        let mut state = self.lock();
        if state.items.is_empty() {
            return;
        }
        Self::take_from(&mut state, max, into, stop);
        drop(state);
        self.room.notify_waiters();
    }

    fn take_from(state: &mut State<M>, max: usize, into: &mut Vec<M>, stop: impl Fn(&M) -> bool) {
        for _ in 0..max {
            let Some(item) = state.items.pop_front() else {
                break;
            };
            let last = stop(&item);
            into.push(item);
            if last {
                break;
            }
        }
        if state.items.is_empty() {
            // An idle spool keeps no buffer.
            state.items = VecDeque::new();
        }
    }

    /// Every producer handle is gone: the writer ends once it has taken what is queued.
    pub(super) fn producers_gone(&self) {
        self.lock().producers_gone = true;
        self.ready.notify_one();
    }

    /// The writer has ended: later pushes are refused, waiting producers go on. Returns what
    /// it left in the queue.
    pub(super) fn writer_gone(&self) -> Vec<M> {
        let left = {
            let mut state = self.lock();
            state.writer_gone = true;
            std::mem::take(&mut state.items)
        };
        self.room.notify_waiters();
        left.into()
    }

    /// Changes waiting for the writer now.
    pub(super) fn depth(&self) -> usize {
        self.lock().items.len()
    }

    /// The most changes that were ever waiting at once.
    pub(super) fn high_water(&self) -> usize {
        self.lock().high_water
    }

    /// How many changes the queue holds before producers wait.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_follow_the_order_of_pushes() {
        let queue = WriterQueue::new(2);
        assert_eq!(queue.push("a"), Ok(1));
        assert_eq!(queue.push("b"), Ok(2));
        assert_eq!(
            queue.push("c"),
            Ok(3),
            "a push never refuses: it is over the bound"
        );
        assert!(!queue.has_room());
        let mut taken = Vec::new();
        assert!(queue.take(10, &mut taken, |_| false));
        assert_eq!(taken, ["a", "b", "c"]);
        assert!(queue.has_room());
        assert_eq!(queue.high_water(), 3);
    }

    #[test]
    fn a_stop_item_ends_the_batch() {
        let queue = WriterQueue::new(8);
        for item in ["a", "close", "late"] {
            queue.push(item).unwrap();
        }
        let mut taken = Vec::new();
        queue.take(10, &mut taken, |i| *i == "close");
        assert_eq!(taken, ["a", "close"]);
        assert_eq!(queue.writer_gone(), ["late"]);
        assert_eq!(queue.push("after"), Err("after"));
    }

    #[tokio::test]
    async fn a_waiting_push_goes_in_when_the_writer_takes() {
        let queue = std::sync::Arc::new(WriterQueue::new(1));
        queue.push(1).unwrap();
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.push_waiting(2).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(queue.depth(), 1, "the second push waits");
        let mut taken = Vec::new();
        queue.take(1, &mut taken, |_| false);
        assert_eq!(waiting.await.unwrap(), Ok(2));
        assert_eq!(queue.depth(), 1);
        assert_eq!(queue.high_water(), 1, "never over the bound");
    }

    #[tokio::test]
    async fn waits_end_when_the_writer_is_gone() {
        let queue = WriterQueue::new(1);
        queue.push(1).unwrap();
        assert!(!queue.has_room());
        let _ = queue.writer_gone();
        queue.room().await;
        assert_eq!(queue.push_waiting(2).await, Err(2));
    }

    #[test]
    fn the_writer_ends_when_the_producers_are_gone_and_the_queue_is_empty() {
        let queue = WriterQueue::new(4);
        queue.push(1).unwrap();
        queue.producers_gone();
        let mut taken = Vec::new();
        assert!(queue.take(10, &mut taken, |_| false));
        assert!(!queue.take(10, &mut taken, |_| false));
    }
}
