//! The `attached_data` table: item attached data by call (or item) id, each record the
//! JSON of a [`StoredAttached`] in the checksummed envelope, keyed and checked by the id.
//!
//! The table came after format 2 was first released. It is created when a format-2 spool
//! without it is opened (so an older spool opens unchanged, with no attached data), and a
//! version before it opens a spool that has it and leaves the table alone: no format number
//! changes, in either direction.

use std::collections::BTreeMap;

use redb::{ReadableTable, Table, TableDefinition};

use super::super::StoredAttached;
use super::super::record::{RecordError, seal_json, unseal};
use super::Damage;

pub(super) const ATTACHED: TableDefinition<&str, &[u8]> = TableDefinition::new("attached_data");

/// Stores (`Some`) or forgets (`None`) the attached data of `key`.
pub(super) fn put(
    table: &mut Table<&str, &[u8]>,
    key: &str,
    data: Option<&StoredAttached>,
) -> Result<(), String> {
    match data {
        Some(data) => {
            let sealed = seal_json(key.as_bytes(), data).map_err(|e| e.to_string())?;
            table
                .insert(key, sealed.as_slice())
                .map_err(|e| e.to_string())?;
        }
        None => {
            table.remove(key).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Every record that holds, and the damaged ones (removed from the table) for quarantine.
pub(super) fn load(
    table: &mut Table<&str, &[u8]>,
) -> Result<(BTreeMap<String, StoredAttached>, Vec<Damage>), redb::StorageError> {
    let mut attached = BTreeMap::new();
    let mut damaged = Vec::new();
    for entry in table.iter()? {
        let (key, raw) = entry?;
        let (key, raw) = (key.value(), raw.value());
        match decode(key, raw) {
            Ok(data) => {
                attached.insert(key.to_string(), data);
            }
            Err(reason) => damaged.push(Damage {
                table: "attached_data",
                key: key.to_string(),
                subscription: None,
                sequence: None,
                raw: raw.to_vec(),
                reason: reason.to_string(),
                quiet: false,
            }),
        }
    }
    for damage in &damaged {
        table.remove(damage.key.as_str())?;
    }
    Ok((attached, damaged))
}

fn decode(key: &str, raw: &[u8]) -> Result<StoredAttached, RecordError> {
    let json = unseal(key.as_bytes(), raw)?;
    serde_json::from_slice(json).map_err(|e| RecordError::Decode(e.to_string()))
}
