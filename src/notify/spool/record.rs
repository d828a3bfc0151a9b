//! The envelope around every record the spool stores: a version byte, a CRC-32 and the
//! payload, so a record damaged on disk (a flipped bit, a torn or foreign write) is
//! recognised when it is read instead of being delivered or crashing the decoder.
//!
//! ```text
//! [version: u8 = 1][crc32: u32, little endian][payload: JSON]
//! ```
//!
//! The checksum covers the version, the record's key and the payload: a record moved under
//! another key fails as well. Spools of format 1 (before the envelope) stored bare JSON, so
//! their records start with `{`; they are migrated when opened ([`super::redb_store`]).

/// The first byte of an enveloped record.
const VERSION: u8 = 1;
/// Version byte and checksum.
const HEADER: usize = 5;
/// How every format-1 record begins (a JSON object).
const BARE_JSON: u8 = b'{';

/// Why a stored record cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Shorter than the envelope's header.
    #[error("record too short ({0} bytes)")]
    Truncated(usize),
    /// A bare JSON record (format 1) where an enveloped one belongs.
    #[error("record without a checksum")]
    NoEnvelope,
    /// A version this build does not know.
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    /// The content is not what was written.
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    /// The checksum holds but the payload does not decode.
    #[error("undecodable record: {0}")]
    Decode(String),
}

fn checksum(key: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[VERSION]);
    hasher.update(key);
    hasher.update(payload);
    hasher.finalize()
}

/// `payload` in its envelope, for storing under `key`.
pub fn seal(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER + payload.len());
    record.push(VERSION);
    record.extend_from_slice(&checksum(key, payload).to_le_bytes());
    record.extend_from_slice(payload);
    record
}

/// `value` as JSON in its envelope, for storing under `key`: the event path, serialised
/// straight into the record rather than into a buffer that is then copied.
pub fn seal_json<T: serde::Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut record = vec![VERSION, 0, 0, 0, 0];
    serde_json::to_writer(&mut record, value)?;
    let sum = checksum(key, &record[HEADER..]);
    record[1..HEADER].copy_from_slice(&sum.to_le_bytes());
    Ok(record)
}

/// The payload of a record stored under `key`, once its checksum holds.
pub fn unseal<'a>(key: &[u8], record: &'a [u8]) -> Result<&'a [u8], RecordError> {
    match record.first() {
        None => return Err(RecordError::Truncated(0)),
        Some(&BARE_JSON) => return Err(RecordError::NoEnvelope),
        Some(&VERSION) => {}
        Some(&other) => return Err(RecordError::UnknownVersion(other)),
    }
    if record.len() < HEADER {
        return Err(RecordError::Truncated(record.len()));
    }
    let stored = u32::from_le_bytes(record[1..HEADER].try_into().expect("four bytes"));
    let payload = &record[HEADER..];
    let computed = checksum(key, payload);
    if stored != computed {
        return Err(RecordError::Checksum { stored, computed });
    }
    Ok(payload)
}

/// The key bytes of a subscription record (its id).
pub fn subscription_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The key bytes of an event record (subscription, sequence).
pub fn event_key(id: u64, sequence: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&sequence.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let record = seal(b"k", br#"{"a":1}"#);
        assert_eq!(unseal(b"k", &record), Ok(&br#"{"a":1}"#[..]));
    }

    #[test]
    fn json_is_sealed_like_its_bytes() {
        let value = serde_json::json!({"name": "phoneCallChanged", "sequence": 3});
        let sealed = seal_json(b"k", &value).unwrap();
        assert_eq!(sealed, seal(b"k", &serde_json::to_vec(&value).unwrap()));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let record = seal(b"key", br#"{"body":"<soap/>"}"#);
        for byte in 0..record.len() {
            for bit in 0..8 {
                let mut damaged = record.clone();
                damaged[byte] ^= 1 << bit;
                assert!(unseal(b"key", &damaged).is_err(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn a_record_under_another_key_fails() {
        let record = seal(&event_key(1, 2), b"{}");
        assert!(matches!(
            unseal(&event_key(1, 3), &record),
            Err(RecordError::Checksum { .. })
        ));
    }

    #[test]
    fn bare_json_and_short_records_are_told_apart() {
        assert_eq!(unseal(b"k", b"{}"), Err(RecordError::NoEnvelope));
        assert_eq!(unseal(b"k", b""), Err(RecordError::Truncated(0)));
        assert_eq!(unseal(b"k", &[VERSION, 0]), Err(RecordError::Truncated(2)));
        assert_eq!(unseal(b"k", b"xyz"), Err(RecordError::UnknownVersion(b'x')));
    }
}
