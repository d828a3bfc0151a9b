//! The leader lease: key [`KEY`] in the key-value bucket `<prefix>_lease`, whose values
//! expire `lease_ttl` after they were written (a bucket-wide max age: NATS 2.9 has no
//! per-key TTL). Its value is the holder's node name; its revision is the fencing token.
//!
//! - Taking it: `create`, which succeeds only while the key has no live value (the last
//!   holder's value expired, or it released the lease).
//! - Renewing it: `update` expecting the revision this connector holds; refused once
//!   anybody else wrote the key, or the value expired meanwhile.
//! - By its own monotonic clock a holder may act until the time it *sent* its last
//!   successful renewal plus `lease_ttl`, less a margin: the server keeps the value at least
//!   that long, so a standby can never take the lease while the holder still acts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use super::ClusterError;
use crate::config::ClusterConfig;
use crate::notify::{Fence, FenceControl};

/// The lease's key in its bucket.
const KEY: &str = "active";

/// Renewals per `lease_ttl`.
const RENEWALS_PER_TTL: u32 = 3;

/// The part of `lease_ttl` a holder gives up at the end, for the difference between its
/// clock and the server's expiry.
const MARGIN_DIVISOR: u32 = 10;

/// The lease bucket and who this connector is.
pub struct Lease {
    js: jetstream::Context,
    kv: kv::Store,
    /// The bucket's stream.
    stream: String,
    node: String,
    ttl: Duration,
}

/// The lease, held.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    /// The key's revision written by this holder: the fencing token.
    pub revision: u64,
    /// Until when this holder may act by its own clock.
    pub until: Instant,
}

/// Why a renewal failed.
enum Renewal {
    /// Somebody else holds the lease, or it expired.
    Lost,
    /// NATS did not answer as it should; try again while the lease lasts.
    Failed(String),
}

impl Lease {
    /// Opens the lease bucket, creating it if needed.
    pub async fn open(
        js: &jetstream::Context,
        cluster: &ClusterConfig,
    ) -> Result<Lease, ClusterError> {
        // The bucket's stream, made here as the client's `create_key_value` would: that
        // asks for account details NATS 2.9 does not send.
        let bucket = cluster.bucket();
        let config = jetstream::stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("ici-connector leader lease".into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: cluster.lease_ttl,
            storage: jetstream::stream::StorageType::File,
            num_replicas: cluster.replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            ..jetstream::stream::Config::default()
        };
        js.get_or_create_stream(config)
            .await
            .map_err(|e| ClusterError::nats(cluster, format!("lease bucket {bucket}: {e}")))?;
        let kv = js
            .get_key_value(&bucket)
            .await
            .map_err(|e| ClusterError::nats(cluster, format!("lease bucket {bucket}: {e}")))?;
        Ok(Lease {
            js: js.clone(),
            kv,
            stream: format!("KV_{bucket}"),
            node: cluster.node.clone(),
            ttl: cluster.lease_ttl,
        })
    }

    fn held(&self, revision: u64, sent: Instant, ttl: Duration) -> Held {
        Held {
            revision,
            until: sent + ttl - ttl / MARGIN_DIVISOR,
        }
    }

    /// Takes the lease if nobody holds it. The new holder sets the bucket's max age to its
    /// `lease_ttl` (the connectors' settings may differ); until then it counts with the
    /// shorter of the two, so it never acts longer than the server keeps its value.
    pub async fn try_acquire(&self) -> Result<Option<Held>, String> {
        let sent = Instant::now();
        match self.kv.create(KEY, self.node.clone().into()).await {
            Ok(revision) => {
                let ttl = self.align().await?;
                Ok(Some(self.held(revision, sent, ttl)))
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Makes the bucket's max age this connector's `lease_ttl`; returns the shorter of the
    /// two.
    async fn align(&self) -> Result<Duration, String> {
        let mut stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| e.to_string())?;
        let mut config = stream
            .info()
            .await
            .map_err(|e| e.to_string())?
            .config
            .clone();
        let bucket = config.max_age;
        if bucket != self.ttl {
            warn!(bucket = ?bucket, lease_ttl = ?self.ttl, "leader lease bucket had another max age: set to this connector's lease_ttl");
            config.max_age = self.ttl;
            // NATS refuses a duplicate window longer than the max age.
            config.duplicate_window = config.duplicate_window.min(self.ttl);
            self.js
                .update_stream(&config)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(if bucket.is_zero() {
            self.ttl
        } else {
            bucket.min(self.ttl)
        })
    }

    /// Who holds the lease now, if anybody.
    pub async fn holder(&self) -> Result<Option<String>, String> {
        let value = self.kv.get(KEY).await.map_err(|e| e.to_string())?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    async fn renew(&self, revision: u64) -> Result<Held, Renewal> {
        let sent = Instant::now();
        match self
            .kv
            .update(KEY, self.node.clone().into(), revision)
            .await
        {
            Ok(revision) => Ok(self.held(revision, sent, self.ttl)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Err(Renewal::Lost),
            Err(e) => Err(Renewal::Failed(e.to_string())),
        }
    }

    /// Gives the lease up (a graceful stop), so the standby need not wait for it to run
    /// out. Only the holder's own revision is deleted.
    pub async fn release(&self, revision: u64) {
        match self.kv.delete_expect_revision(KEY, Some(revision)).await {
            Ok(()) => info!(revision, "leader lease released"),
            Err(e) => {
                warn!(revision, error = %e, "leader lease not released: the standby waits for it to run out")
            }
        }
    }

    /// How often a standby looks whether it can take the lease.
    pub fn poll_interval(&self) -> Duration {
        self.ttl / (RENEWALS_PER_TTL + 1)
    }
}

/// Renews a held lease in a task. Dropping it stops the renewals (the lease then runs out).
pub struct Keeper {
    revision: watch::Receiver<u64>,
    lost: Option<oneshot::Receiver<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Keeper {
    /// Starts renewing `held`; the [`Fence`] is open while the lease lasts.
    pub fn start(lease: Arc<Lease>, held: Held) -> (Keeper, Fence) {
        let (control, fence) = Fence::lease(held.until);
        let (revision_tx, revision) = watch::channel(held.revision);
        let (lost_tx, lost) = oneshot::channel();
        let task = tokio::spawn(async move {
            let why = renew(&lease, held, &control, &revision_tx).await;
            control.close();
            let _ = lost_tx.send(why);
        });
        (
            Keeper {
                revision,
                lost: Some(lost),
                task,
            },
            fence,
        )
    }

    /// Completes when the lease is lost, with the reason.
    pub async fn lost(&mut self) -> String {
        match self.lost.take() {
            Some(lost) => lost.await.unwrap_or_else(|_| "lease keeper stopped".into()),
            None => std::future::pending().await,
        }
    }

    /// The revision held now.
    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Renews until the lease is lost; returns why.
async fn renew(
    lease: &Lease,
    mut held: Held,
    control: &FenceControl,
    revision: &watch::Sender<u64>,
) -> String {
    let every = lease.ttl / RENEWALS_PER_TTL;
    loop {
        tokio::time::sleep(every).await;
        // A process paused past its lease finds it gone here, before it tries anything.
        if Instant::now() >= held.until {
            return "the lease ran out before it could be renewed (process paused or NATS \
                    unreachable)"
                .into();
        }
        let deadline = tokio::time::Instant::from_std(held.until);
        match tokio::time::timeout_at(deadline, lease.renew(held.revision)).await {
            Ok(Ok(renewed)) => {
                held = renewed;
                control.extend(held.until);
                revision.send_replace(held.revision);
            }
            Ok(Err(Renewal::Lost)) => {
                return "another connector holds the lease now".into();
            }
            Ok(Err(Renewal::Failed(e))) => {
                warn!(error = %e, "leader lease: renewal failed, retrying while it lasts");
            }
            Err(_) => return "the lease ran out while NATS did not answer".into(),
        }
    }
}
