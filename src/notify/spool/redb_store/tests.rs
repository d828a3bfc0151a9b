//! The redb store: order, numbering across crashes, damage, migration, refusals.

use super::super::StoredAttached;
use super::*;
use redb::ReadableDatabase;

fn event(sequence: u64) -> StoredEvent {
    StoredEvent {
        name: "phoneCallChanged".into(),
        sequence,
        user: "A".into(),
        call: Some("c".into()),
        body: format!("<e>body of event number {sequence:04}</e>"),
    }
}

fn sub(id: u64) -> StoredSubscription {
    StoredSubscription {
        id,
        kind: "user".into(),
        target: "A".into(),
        url: "http://sap/".into(),
        app_ids: vec!["X".into()],
        sequence: 0,
    }
}

fn with_events(id: u64, sequences: std::ops::RangeInclusive<u64>) -> Vec<SpoolOp> {
    let mut ops = vec![SpoolOp::PutSubscription(sub(id))];
    ops.extend(sequences.map(|s| SpoolOp::Append(id, event(s))));
    ops
}

fn sequences(contents: &SpoolContents, id: u64) -> Vec<u64> {
    let (_, events) = contents
        .subscriptions
        .iter()
        .find(|(s, _)| s.id == id)
        .expect("subscription loaded");
    events.iter().map(|e| e.sequence).collect()
}

fn quarantined(dir: &Path) -> Vec<serde_json::Value> {
    let db = Database::open(dir.join(FILE_NAME)).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(QUARANTINE).unwrap();
    table
        .iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            let json = unseal(&k.value().to_be_bytes(), v.value()).unwrap();
            serde_json::from_slice(json).unwrap()
        })
        .collect()
}

#[test]
fn survives_reopen_in_order_and_forgets_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path()).unwrap();
        let mut ops = with_events(1, 1..=5);
        ops.push(SpoolOp::PutSubscription(sub(2)));
        ops.push(SpoolOp::Append(2, event(1)));
        ops.push(SpoolOp::Agent("A".into(), Some("2001".into())));
        store.apply(&ops).unwrap();
        store
            .apply(&[
                SpoolOp::Remove(1, 1),
                SpoolOp::Remove(1, 2),
                SpoolOp::RemoveSubscription(2),
            ])
            .unwrap();
        store.close_clean().unwrap();
    }
    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(contents.subscriptions.len(), 1);
    assert_eq!(contents.subscriptions[0].0.id, 1);
    assert_eq!(contents.subscriptions[0].0.sequence, 5, "a graceful stop");
    assert_eq!(sequences(&contents, 1), [3, 4, 5]);
    assert_eq!(contents.agents["A"], "2001");
    assert!(quarantined(dir.path()).is_empty());
}

#[test]
fn sequence_never_goes_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(dir.path()).unwrap();
    store
        .apply(&[
            SpoolOp::PutSubscription(sub(1)),
            SpoolOp::Append(1, event(7)),
            SpoolOp::Remove(1, 7),
        ])
        .unwrap();
    // A later update of the app ids carries an older sequence.
    store.apply(&[SpoolOp::PutSubscription(sub(1))]).unwrap();
    store.close_clean().unwrap();
    let contents = store.load().unwrap();
    assert_eq!(contents.subscriptions[0].0.sequence, 7);
    assert!(contents.subscriptions[0].1.is_empty());
}

#[test]
fn after_a_crash_numbering_resumes_above_the_reservation() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path()).unwrap();
        store.load().unwrap();
        store.apply(&with_events(1, 1..=3)).unwrap();
        // A subscription without events yet reserves too: its first numbers may be out.
        store.apply(&[SpoolOp::PutSubscription(sub(2))]).unwrap();
        // No close_clean: the process dies here.
    }
    let mut store = RedbStore::open(dir.path()).unwrap();
    let contents = store.load().unwrap();
    let resumed = |id: u64| {
        contents
            .subscriptions
            .iter()
            .find(|(s, _)| s.id == id)
            .unwrap()
            .0
            .sequence
    };
    assert_eq!(resumed(1), 3 + SEQUENCE_RESERVE);
    assert_eq!(resumed(2), SEQUENCE_RESERVE);
    assert_eq!(
        sequences(&contents, 1),
        [1, 2, 3],
        "nothing on disk is lost"
    );

    // The next numbers reserve ahead of themselves again; a graceful stop makes the
    // following start continue exactly.
    let next = resumed(1) + 1;
    store.apply(&[SpoolOp::Append(1, event(next))]).unwrap();
    store.close_clean().unwrap();
    drop(store);
    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(contents.subscriptions[0].0.sequence, next);
    // That load cleared the flag: a crash now resumes above the reservation again.
    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(
        contents.subscriptions[0].0.sequence,
        next + SEQUENCE_RESERVE
    );
}

/// Writes `raw` as the stored record of event (1, `sequence`), bypassing the store.
fn overwrite_event(dir: &Path, sequence: u64, raw: &[u8]) {
    let db = Database::open(dir.join(FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(EVENTS)
        .unwrap()
        .insert((1, sequence), raw)
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn damaged_records_go_to_quarantine_and_the_rest_loads() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path()).unwrap();
        store.apply(&with_events(1, 1..=5)).unwrap();
        store.close_clean().unwrap();
    }
    // A flipped byte inside the body of event 2.
    let mut flipped = seal(&event_key(1, 2), &serde_json::to_vec(&event(2)).unwrap());
    let last = flipped.len() - 3;
    flipped[last] ^= 0x01;
    overwrite_event(dir.path(), 2, &flipped);
    // A record whose checksum holds but whose JSON does not.
    overwrite_event(dir.path(), 3, &seal(&event_key(1, 3), b"{\"name\": broken"));
    // A bare JSON record (format 1) in a format-2 spool.
    overwrite_event(dir.path(), 4, &serde_json::to_vec(&event(4)).unwrap());

    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(sequences(&contents, 1), [1, 5]);
    assert_eq!(contents.subscriptions[0].0.sequence, 5);
    let kept = quarantined(dir.path());
    let found: Vec<(u64, &str)> = kept
        .iter()
        .map(|q| {
            (
                q["sequence"].as_u64().unwrap(),
                q["table"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, [(2, "events"), (3, "events"), (4, "events")]);
    assert!(kept[0]["reason"].as_str().unwrap().contains("checksum"));
    assert!(kept[1]["reason"].as_str().unwrap().contains("undecodable"));
    assert!(
        kept[2]["reason"]
            .as_str()
            .unwrap()
            .contains("without a checksum")
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(kept[0]["raw"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, flipped, "the damaged bytes are kept for inspection");
    // Quarantined once: the next start finds a clean spool.
    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(sequences(&contents, 1), [1, 5]);
    assert_eq!(quarantined(dir.path()).len(), 3);
}

#[test]
fn a_damaged_subscription_takes_its_events_to_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path()).unwrap();
        let mut ops = with_events(1, 1..=2);
        ops.extend(with_events(2, 1..=1));
        store.apply(&ops).unwrap();
    }
    {
        let db = Database::open(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(SUBSCRIPTIONS)
            .unwrap()
            .insert(1, &b"\x01\0\0\0\0{}"[..])
            .unwrap();
        txn.commit().unwrap();
    }
    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(contents.subscriptions.len(), 1);
    assert_eq!(sequences(&contents, 2), [1]);
    let tables: Vec<String> = quarantined(dir.path())
        .iter()
        .map(|q| format!("{} {}", q["table"], q["key"]))
        .collect();
    assert_eq!(
        tables,
        [
            "\"subscriptions\" \"1\"",
            "\"events\" \"1/1\"",
            "\"events\" \"1/2\""
        ]
    );
}

#[test]
fn a_format_1_spool_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What the previous version wrote: bare JSON, an `agents` table of strings.
        const SUBS_V1: TableDefinition<u64, &[u8]> = TableDefinition::new("subscriptions");
        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut subs = txn.open_table(SUBS_V1).unwrap();
            let mut old = sub(1);
            old.sequence = 4;
            subs.insert(1, serde_json::to_vec(&old).unwrap().as_slice())
                .unwrap();
            let mut events = txn.open_table(EVENTS).unwrap();
            for s in 2..=4 {
                events
                    .insert((1, s), serde_json::to_vec(&event(s)).unwrap().as_slice())
                    .unwrap();
            }
            events.insert((1, 3), &b"{\"name\": broken"[..]).unwrap();
            txn.open_table(AGENTS_V1)
                .unwrap()
                .insert("A", "2001")
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(sequences(&contents, 1), [2, 4]);
    assert_eq!(
        contents.subscriptions[0].0.sequence, 4,
        "numbering continues"
    );
    assert_eq!(contents.agents["A"], "2001");
    let kept = quarantined(dir.path());
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["sequence"], 3);
    // Every record now carries a checksum, and the old table is gone.
    let db = Database::open(dir.path().join(FILE_NAME)).unwrap();
    let txn = db.begin_read().unwrap();
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_string())
        .collect();
    assert!(!names.contains(&"agents".to_string()), "{names:?}");
    let events = txn.open_table(EVENTS).unwrap();
    for entry in events.iter().unwrap() {
        let (key, raw) = entry.unwrap();
        let (id, sequence) = key.value();
        assert!(unseal(&event_key(id, sequence), raw.value()).is_ok());
    }
}

fn refusal(dir: &Path) -> String {
    match RedbStore::open(dir) {
        Ok(_) => panic!("the spool in {} was accepted", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_empty_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE_NAME);
    std::fs::write(&file, b"").unwrap();
    let message = refusal(dir.path());
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("empty (0 bytes)"), "{message}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "left as it was");
}

#[test]
fn foreign_files_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE_NAME);
    let name = file.display().to_string();

    std::fs::write(&file, b"this is a text file, not a spool\n").unwrap();
    let message = refusal(dir.path());
    assert!(
        message.contains(&name) && message.contains("not a redb database"),
        "{message}"
    );

    std::fs::write(&file, b"redb").unwrap();
    let message = refusal(dir.path());
    assert!(
        message.contains(&name) && message.contains("too short"),
        "{message}"
    );

    std::fs::remove_file(&file).unwrap();
    {
        const OTHER: TableDefinition<&str, &str> = TableDefinition::new("settings");
        let db = Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(OTHER).unwrap().insert("a", "b").unwrap();
        txn.commit().unwrap();
    }
    let message = refusal(dir.path());
    assert!(
        message.contains(&name) && message.contains("not an event spool"),
        "{message}"
    );

    std::fs::remove_file(&file).unwrap();
    {
        let db = Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(FORMAT_KEY, FORMAT + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let message = refusal(dir.path());
    assert!(
        message.contains(&name) && message.contains("newer version"),
        "{message}"
    );
}

#[test]
fn a_new_spool_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    RedbStore::open(&dir.path().join("sub")).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path().join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [FILE_NAME]);
}

/// Flips one byte of every copy of `needle` in the file (redb may keep stale copies
/// in free pages).
fn flip_in_file(file: &Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(file).unwrap();
    let mut flipped = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        let pos = at + pos;
        bytes[pos + needle.len() - 1] ^= 0x01;
        flipped += 1;
        at = pos + needle.len();
    }
    std::fs::write(file, bytes).unwrap();
    flipped
}

#[test]
fn a_byte_flipped_on_disk_is_caught_and_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path()).unwrap();
        store.load().unwrap();
        store.apply(&with_events(1, 1..=5)).unwrap();
        store.close_clean().unwrap();
    }
    let file = dir.path().join(FILE_NAME);
    assert!(flip_in_file(&file, b"event number 0003") > 0);
    let mut store = RedbStore::open(dir.path()).unwrap();
    let contents = store.load().unwrap();
    assert_eq!(sequences(&contents, 1), [1, 2, 4, 5]);
    // The store goes on working, and the next open passes redb's check again.
    store.apply(&[SpoolOp::Append(1, event(6))]).unwrap();
    store.close_clean().unwrap();
    drop(store);
    let kept = quarantined(dir.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["sequence"], 3);
    Database::builder()
        .set_check_integrity_on_open(true)
        .open(&file)
        .expect("the damaged page was rewritten without the record");
    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(sequences(&contents, 1), [1, 2, 4, 5, 6]);
}

fn pin(pin: &str) -> StoredAttached {
    vec![(
        "IVR".into(),
        format!(r#"<Application id="IVR"><pin>{pin}</pin></Application>"#),
    )]
}

#[test]
fn attached_data_survives_reopen_until_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path()).unwrap();
        store
            .apply(&[
                SpoolOp::Attached("call-1".into(), Some(pin("1111"))),
                SpoolOp::Attached("call-2".into(), Some(pin("2222"))),
                SpoolOp::Attached("item-3".into(), Some(Vec::new())),
            ])
            .unwrap();
        store
            .apply(&[
                SpoolOp::Attached("call-1".into(), None),
                SpoolOp::Attached("call-2".into(), Some(pin("2223"))),
            ])
            .unwrap();
    }
    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    let expected: BTreeMap<String, StoredAttached> = [
        ("call-2".to_string(), pin("2223")),
        ("item-3".to_string(), Vec::new()),
    ]
    .into();
    assert_eq!(contents.attached, expected);
}

#[test]
fn a_spool_from_before_attached_data_opens_and_gains_the_table() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path()).unwrap();
        store.apply(&with_events(1, 1..=2)).unwrap();
        store.close_clean().unwrap();
    }
    {
        // The previous version's format-2 spool: every table but `attached_data`.
        let db = Database::open(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        assert!(txn.delete_table(attached::ATTACHED).unwrap());
        txn.commit().unwrap();
    }
    let mut store = RedbStore::open(dir.path()).unwrap();
    let contents = store.load().unwrap();
    assert_eq!(
        sequences(&contents, 1),
        [1, 2],
        "the old spool loads as it was"
    );
    assert!(contents.attached.is_empty());
    store
        .apply(&[SpoolOp::Attached("call-1".into(), Some(pin("1")))])
        .unwrap();
    drop(store);
    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(contents.attached["call-1"], pin("1"));
}

#[test]
fn a_damaged_attached_record_goes_to_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path()).unwrap();
        store
            .apply(&[
                SpoolOp::Attached("call-1".into(), Some(pin("1111"))),
                SpoolOp::Attached("call-2".into(), Some(pin("2222"))),
            ])
            .unwrap();
    }
    {
        // call-1's record under call-2's key fails its checksum.
        let db = Database::open(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(attached::ATTACHED).unwrap();
            let moved = table.get("call-1").unwrap().unwrap().value().to_vec();
            table.insert("call-2", moved.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(contents.attached.keys().collect::<Vec<_>>(), ["call-1"]);
    let kept = quarantined(dir.path());
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["table"], "attached_data");
    assert_eq!(kept[0]["key"], "call-2");
}
