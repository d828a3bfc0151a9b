//! getPresenceQueueInfo reports the switch's own queues (the simulator's here): callers
//! waiting and the longest wait, agents logged in and ready, and the number to dial.

use std::time::{Duration, Instant};

use crate::common;

use common::fake_sap::FakeSap;
use common::server::{TestServer, text_of};
use ici_connector::soap::Element;
use serde_json::json;

const TWO_QUEUES: &str = r#"
[switch.sim]
extensions = ["2001", "2002"]
remote_answer_after = "off"

[[switch.sim.queue]]
name = "support"
number = "600"

[[switch.sim.queue]]
name = "sales"
number = "700"
members = ["2002"]
"#;

/// Each queue's fields by name, in the order SAP got them.
async fn presence(server: &TestServer, channel: Option<&str>) -> Vec<(String, Element)> {
    let params: Vec<(&str, &str)> = channel.map(|c| ("channel", c)).into_iter().collect();
    let answer = server.call("System", "getPresenceQueueInfo", &params).await;
    answer
        .ret()
        .children
        .iter()
        .map(|queue| (text_of(queue, "queue"), queue.clone()))
        .collect()
}

fn int(queue: &Element, field: &str) -> u64 {
    text_of(queue, field)
        .parse()
        .unwrap_or_else(|_| panic!("{field} of {queue:?}"))
}

fn queue<'a>(queues: &'a [(String, Element)], name: &str) -> &'a Element {
    &queues
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in {queues:?}"))
        .1
}

#[tokio::test]
async fn presence_comes_from_the_switchs_queues() {
    let server = TestServer::start(TWO_QUEUES).await;
    let sap = FakeSap::start().await;
    // A1 logs in not ready: a member of `support` (open to all), not of `sales`.
    server.log_in("A1", "2001", &sap.url, "app-a1", 3).await;

    // Two callers wait in `support`: nobody is ready.
    let first_rang = Instant::now();
    for caller in ["+49301111111", "+49302222222"] {
        let (status, body) = server
            .sim(
                "POST",
                "/calls",
                json!({"from": caller, "queue": "support"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let queues = presence(&server, None).await;
    let names: Vec<&str> = queues.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["sales", "support"],
        "every configured queue, by name"
    );
    let support = queue(&queues, "support");
    assert_eq!(text_of(support, "number"), "600");
    assert_eq!(text_of(support, "channel"), "phone");
    assert_eq!(int(support, "waiting"), 2);
    assert_eq!(int(support, "agentsLoggedIn"), 1);
    assert_eq!(int(support, "agentsReady"), 0);
    let sales = queue(&queues, "sales");
    assert_eq!(text_of(sales, "number"), "700");
    assert_eq!(
        (int(sales, "waiting"), int(sales, "agentsLoggedIn")),
        (0, 0)
    );
    assert_eq!(int(sales, "longestWait"), 0);

    // The longest wait grows with the clock (whole seconds) and never exceeds it.
    let waited = common::poll(
        "the first caller has waited a second",
        Duration::from_secs(10),
        || async {
            let queues = presence(&server, Some("phone")).await;
            let wait = int(queue(&queues, "support"), "longestWait");
            if wait >= 1 {
                Ok(wait)
            } else {
                Err(format!("longestWait {wait}"))
            }
        },
    )
    .await;
    assert!(waited <= first_rang.elapsed().as_secs(), "{waited}");

    // A2 logs in ready (member of both): one caller goes to A2, the other still waits.
    let sap2 = FakeSap::start().await;
    server.log_in("A2", "2002", &sap2.url, "app-a2", 2).await;
    let queues = presence(&server, None).await;
    let support = queue(&queues, "support");
    assert_eq!(int(support, "waiting"), 1);
    assert_eq!(int(support, "agentsLoggedIn"), 2);
    assert_eq!(int(support, "agentsReady"), 1);
    let sales = queue(&queues, "sales");
    assert_eq!(
        (int(sales, "agentsLoggedIn"), int(sales, "agentsReady")),
        (1, 1)
    );

    // ACD queues carry phone calls only.
    assert!(presence(&server, Some("chat")).await.is_empty());
    server.stop().await;
}

#[test]
fn check_config_names_the_queue_number_keys() {
    let toml = r#"
[switch]
kind = "asterisk"
[switch.asterisk]
host = "127.0.0.1"
username = "cti"
secret = "x"
queues = ["support"]
queue_numbers = { sales = "700", support = "" }
"#;
    let errors = ici_connector::config::Config::from_toml_str(toml)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains(
            "switch.asterisk.queue_numbers.sales: \"sales\" is not in switch.asterisk.queues"
        ),
        "{errors}"
    );
    assert!(
        errors.contains("switch.asterisk.queue_numbers.support: must not be empty"),
        "{errors}"
    );
}
