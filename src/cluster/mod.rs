//! High availability (`[cluster]`): an active/standby pair of connectors whose spool and
//! leader lease live in a NATS JetStream cluster (README, "High availability").
//!
//! - [`lease`]: the leader lease, a key in a JetStream key-value bucket whose values live
//!   `lease_ttl`; taken with create, renewed with compare-and-set on its revision. Exactly
//!   one connector holds it; its [`Keeper`] renews it and closes the [`Fence`] when it is
//!   lost or runs out.
//! - [`standby`]: what a connector without the lease serves meanwhile: `/healthz` 200,
//!   `/readyz` 503 with the reason, SOAP 503, so HAProxy sends SAP to the active one.
//! - [`FencedSwitch`]: the switch as the session sees it on a connector of a pair:
//!   commands are refused once the fence has closed.
//!
//! The crate root runs the loop: standby until the lease is taken, then the connector as
//! usual on a [`crate::notify::JetStreamStore`] (which takes the spool over and fences the
//! former active's writes), until the lease is lost (step down to standby) or the process
//! stops (clean mark, lease released, so the standby takes over at once).

mod lease;
mod standby;

use std::sync::Arc;
use std::time::Duration;

use crate::config::ClusterConfig;
use crate::notify::Fence;
use crate::switch::{Capability, SwitchAdapter, SwitchError, SwitchRequest};

pub use lease::{Held, Keeper, Lease};
pub use standby::{Standby, StandbySecurity};

/// How long one connection attempt to a NATS server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the pair cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("NATS ({servers}): {message}")]
    Nats { servers: String, message: String },
}

impl ClusterError {
    fn nats(cluster: &ClusterConfig, message: impl std::fmt::Display) -> ClusterError {
        ClusterError::Nats {
            servers: cluster.nats.join(", "),
            message: message.to_string(),
        }
    }
}

/// Connects to the NATS cluster (every listed server; the client moves to another when
/// one goes away, and keeps trying for ever) and opens JetStream.
pub async fn connect(
    cluster: &ClusterConfig,
) -> Result<async_nats::jetstream::Context, ClusterError> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("ici-connector {}", cluster.node))
        .connection_timeout(CONNECT_TIMEOUT)
        .retry_on_initial_connect()
        .connect(cluster.nats.clone())
        .await
        .map_err(|e| ClusterError::nats(cluster, e))?;
    Ok(async_nats::jetstream::new(client))
}

/// The switch of a connector of a pair: once the leader lease has run out, commands are
/// refused instead of reaching the switch, even before the connector has stepped down.
pub struct FencedSwitch {
    inner: Arc<dyn SwitchAdapter>,
    fence: Fence,
}

impl FencedSwitch {
    pub fn new(inner: Arc<dyn SwitchAdapter>, fence: Fence) -> FencedSwitch {
        FencedSwitch { inner, fence }
    }
}

impl SwitchAdapter for FencedSwitch {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> &[Capability] {
        self.inner.capabilities()
    }

    fn submit(&self, request: SwitchRequest) {
        if self.fence.allows() {
            self.inner.submit(request);
        } else {
            let _ = request.reply.send(Err(SwitchError::Unavailable(
                "this connector lost the leader lease (another one is active)".into(),
            )));
        }
    }

    fn link_up_at_start(&self) -> bool {
        self.inner.link_up_at_start()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use tokio::sync::oneshot;

    use super::*;
    use crate::switch::{SwitchCommand, SwitchReply};

    /// A switch that counts the commands reaching it.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl SwitchAdapter for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn capabilities(&self) -> &[Capability] {
            &[]
        }
        fn submit(&self, request: SwitchRequest) {
            self.0.fetch_add(1, Ordering::SeqCst);
            let _ = request.reply.send(Ok(SwitchReply::Done));
        }
    }

    async fn clear(switch: &FencedSwitch) -> Result<SwitchReply, SwitchError> {
        let (reply, answer) = oneshot::channel();
        switch.submit(SwitchRequest {
            command: SwitchCommand::Clear {
                call: "sim-1".into(),
                extension: "2001".into(),
            },
            reply,
        });
        answer.await.unwrap()
    }

    #[tokio::test]
    async fn a_lost_lease_keeps_commands_from_the_switch() {
        let inner = Arc::new(Counting::default());
        let (control, fence) = Fence::lease(Instant::now() + Duration::from_secs(60));
        let switch = FencedSwitch::new(inner.clone(), fence);
        assert!(clear(&switch).await.is_ok());
        assert_eq!(inner.0.load(Ordering::SeqCst), 1);

        // The deadline passed (a paused process wakes up): refused before anything moves.
        control.extend(Instant::now() - Duration::from_millis(1));
        assert!(matches!(
            clear(&switch).await,
            Err(SwitchError::Unavailable(_))
        ));
        control.close();
        assert!(clear(&switch).await.is_err());
        assert_eq!(
            inner.0.load(Ordering::SeqCst),
            1,
            "nothing reached the switch"
        );
    }
}
