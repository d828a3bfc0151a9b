//! Attached data SAP set (`setAttachedData`) is kept in the event spool with its call or
//! item: a `kill -9` after the answer loses none of it, and it leaves the spool when its
//! call ends.

use crate::common;

use common::fake_sap::FakeSap;
use common::process::Process;
use common::server::{Endpoints, SoapAnswer, envelope_as, params};
use serde_json::json;

const CONFIG: &str = "[switch.sim]\nremote_answer_after = \"off\"\n";

fn cad(pin: &str) -> String {
    format!(
        r#"<ItemAttachedData><Application id="IVR"><pin>{pin}</pin></Application></ItemAttachedData>"#
    )
}

async fn item_op(api: &Endpoints, op: &str, pairs: &[(&str, &str)]) -> SoapAnswer {
    api.post(envelope_as("A1", "Item", op, &params(pairs)))
        .await
}

async fn set_attached(api: &Endpoints, item: &str, pin: &str) {
    item_op(
        api,
        "setAttachedData",
        &[("itemId", item), ("attachedData", &cad(pin))],
    )
    .await
    .ok();
}

/// The attached data of `item` as text, or the fault string.
async fn attached(api: &Endpoints, item: &str) -> Result<String, String> {
    let answer = item_op(api, "getAttachedData", &[("itemId", item)]).await;
    if answer.status == 200 {
        Ok(answer.ret().text.to_string())
    } else {
        Err(answer.fault().1)
    }
}

/// Rings 2001 from `from` and waits until SAP heard of it; returns the call id.
async fn ring(api: &Endpoints, fake: &mut FakeSap, from: &str) -> String {
    let (status, body) = api
        .sim("POST", "/calls", json!({"from": from, "to": "2001"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let call = body["callId"].as_str().unwrap().to_string();
    expect_state(fake, &call, "alerting").await;
    call
}

async fn expect_state(fake: &mut FakeSap, call: &str, state: &str) {
    let event = fake.next_event().await;
    assert_eq!(event.name, "phoneCallChanged");
    assert_eq!(event.field("callId").as_deref(), Some(call));
    assert_eq!(event.field("state").as_deref(), Some(state));
}

#[tokio::test]
async fn attached_data_survives_sigkill_and_leaves_with_its_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = FakeSap::start().await;
    let first = Process::start_in(dir.path(), CONFIG);
    let api = &first.endpoints;
    api.log_in("A1", "2001", &fake.url, "IC-1", 2).await;
    assert_eq!(fake.next_event().await.name, "workmodeChanged");

    // A call whose data SAP set, and that ended before the crash.
    let ended = ring(api, &mut fake, "4711").await;
    set_attached(api, &ended, "1111").await;
    let (status, _) = api
        .sim("POST", &format!("/calls/{ended}/hangup"), json!(null))
        .await;
    assert_eq!(status, 200);
    expect_state(&mut fake, &ended, "dropped").await;

    // A live call and an item created for a later dial, each with data SAP set. Their
    // answers come once the data is on disk, and with it everything queued before (the
    // ended call's removal among it).
    let live = ring(api, &mut fake, "4712").await;
    set_attached(api, &live, "2222").await;
    let created = item_op(api, "create", &[("containerId", "2001")]).await;
    let item = created.ret().text.to_string();
    set_attached(api, &item, "3333").await;
    assert!(attached(api, &live).await.unwrap().contains("2222"));
    first.kill(); // SIGKILL: no shutdown code runs

    let second = Process::start_in(dir.path(), CONFIG);
    let api = &second.endpoints;
    let kept = attached(api, &live).await;
    assert!(
        kept.as_ref().is_ok_and(|data| data.contains("2222")),
        "the live call's data survives: {kept:?}"
    );
    let kept = attached(api, &item).await;
    assert!(
        kept.as_ref().is_ok_and(|data| data.contains("3333")),
        "the item's data survives: {kept:?}"
    );
    let gone = attached(api, &ended).await;
    assert!(
        gone.is_err(),
        "the ended call's data left the spool with it: {gone:?}"
    );
    second.kill();
}
