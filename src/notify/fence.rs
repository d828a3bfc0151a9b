//! [`Fence`]: whether this connector may still act (deliver events, drive the switch). A
//! connector alone is never fenced. One of an active/standby pair may act only while its
//! leader lease lasts by its own clock: the deadline moves on with every renewal, and once
//! it has passed (the process was paused, or NATS was out of reach) nothing goes out until
//! the lease is renewed or the connector has stepped down. The spool stream refuses a stale
//! active's writes as well (`spool::JetStreamStore`); this is the part a timer can do.

use std::time::Instant;

use tokio::sync::watch;

/// A cheap, cloneable view of the lease deadline.
#[derive(Debug, Clone, Default)]
pub struct Fence {
    /// `None`: no lease, never fenced.
    deadline: Option<watch::Receiver<Option<Instant>>>,
}

/// Moves the deadline of the [`Fence`]s made with it.
#[derive(Debug)]
pub struct FenceControl {
    deadline: watch::Sender<Option<Instant>>,
}

impl Fence {
    /// A fence that never closes (a connector alone).
    pub fn open() -> Fence {
        Fence::default()
    }

    /// A fence that is open until `until`, and its control.
    pub fn lease(until: Instant) -> (FenceControl, Fence) {
        let (tx, rx) = watch::channel(Some(until));
        (FenceControl { deadline: tx }, Fence { deadline: Some(rx) })
    }

    /// Whether this connector may act now.
    pub fn allows(&self) -> bool {
        match &self.deadline {
            None => true,
            Some(rx) => rx.borrow().is_some_and(|until| Instant::now() < until),
        }
    }

    /// Whether the fence follows a lease (a connector of a pair).
    pub fn is_lease(&self) -> bool {
        self.deadline.is_some()
    }

    /// Returns once this connector may act; never, after the lease is lost for good (the
    /// task waiting is then ended by the step-down).
    pub async fn allowed(&self) {
        let Some(rx) = &self.deadline else { return };
        let mut rx = rx.clone();
        loop {
            if rx
                .borrow_and_update()
                .is_some_and(|until| Instant::now() < until)
            {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl FenceControl {
    /// The lease was renewed: act until `until`.
    pub fn extend(&self, until: Instant) {
        self.deadline.send_replace(Some(until));
    }

    /// The lease is lost: act no more.
    pub fn close(&self) {
        self.deadline.send_replace(None);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn alone_is_never_fenced() {
        assert!(Fence::open().allows());
    }

    #[test]
    fn a_lease_fence_closes_at_its_deadline_and_on_close() {
        let (control, fence) = Fence::lease(Instant::now() + Duration::from_secs(60));
        assert!(fence.allows());
        control.extend(Instant::now() - Duration::from_millis(1));
        assert!(!fence.allows(), "the deadline has passed");
        control.extend(Instant::now() + Duration::from_secs(60));
        assert!(fence.allows());
        control.close();
        assert!(!fence.allows());
    }

    #[tokio::test]
    async fn allowed_waits_for_a_renewal() {
        let (control, fence) = Fence::lease(Instant::now() - Duration::from_millis(1));
        let waiting = tokio::spawn({
            let fence = fence.clone();
            async move { fence.allowed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        control.extend(Instant::now() + Duration::from_secs(60));
        waiting.await.unwrap();
    }
}
