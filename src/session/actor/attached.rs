//! Item attached data by call id (or by item id before its call exists), kept in the event
//! spool as it changes: what SAP set with `setAttachedData` survives a restart, and leaves
//! the spool when the call ends (or the reaper drops it as an orphan).
//!
//! A map with the few operations the actor uses; every change is queued for the spool in
//! the actor's own order, so an operation's answer, which waits for what it queued
//! ([`super::execute`]), also confirms its attached data is on disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tracing::info;

use crate::domain::AttachedData;
use crate::notify::{Spool, SpoolOp, StoredAttached};

pub(super) struct AttachedTable {
    /// Shared with the views that carry it; changed copy-on-write.
    map: HashMap<String, Arc<AttachedData>>,
    spool: Spool,
}

impl AttachedTable {
    pub(super) fn new(spool: Spool) -> AttachedTable {
        AttachedTable {
            map: HashMap::new(),
            spool,
        }
    }

    /// Takes back what the spool kept from the previous run.
    pub(super) fn restore(&mut self, stored: BTreeMap<String, StoredAttached>) {
        if !stored.is_empty() {
            info!(items = stored.len(), "attached data restored");
        }
        for (key, applications) in stored {
            let mut data = AttachedData::default();
            for (id, element) in applications {
                data.set(id, element);
            }
            self.map.insert(key, Arc::new(data));
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&Arc<AttachedData>> {
        self.map.get(key)
    }

    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }

    pub(super) fn insert(&mut self, key: String, data: Arc<AttachedData>) {
        self.store(&key, Some(&data));
        self.map.insert(key, data);
    }

    /// Changes the data of `key` (empty if it has none yet).
    pub(super) fn update(&mut self, key: String, change: impl FnOnce(&mut AttachedData)) {
        let data = self.map.entry(key.clone()).or_default();
        change(Arc::make_mut(data));
        let data = Arc::clone(data);
        self.store(&key, Some(&data));
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<Arc<AttachedData>> {
        let removed = self.map.remove(key)?;
        self.store(key, None);
        Some(removed)
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&String) -> bool) {
        let spool = &self.spool;
        self.map.retain(|key, _| {
            let kept = keep(key);
            if !kept {
                spool.record(SpoolOp::Attached(key.clone(), None));
            }
            kept
        });
    }

    fn store(&self, key: &str, data: Option<&AttachedData>) {
        let stored = data.map(|data| {
            data.ids()
                .into_iter()
                .zip(data.elements().map(str::to_string))
                .collect()
        });
        self.spool
            .record(SpoolOp::Attached(key.to_string(), stored));
    }
}
