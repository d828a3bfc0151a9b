//! What the backends can do, as README's table says and getAttributes reports: every
//! catalog operation has a row, and the simulator does all of them.

use ici_connector::ici::catalog::{Interface, OPERATIONS};
use ici_connector::switch::Capability;

use crate::common::server::{TestServer, items_of};

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));

/// The rows of README's backend table: (interface, operation, simulator, asterisk).
fn table() -> Vec<[String; 4]> {
    let section = README
        .split("## What each switch backend can do")
        .nth(1)
        .expect("README has the section \"What each switch backend can do\"");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| Interface |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            assert_eq!(cells.len(), 5, "README table row: {line}");
            [
                cells[0].clone(),
                cells[1].clone(),
                cells[3].clone(),
                cells[4].clone(),
            ]
        })
        .collect()
}

/// Every operation of the catalog is in README's table once, works on the simulator, and
/// says what it does on Asterisk; the capability names listed are the ones SAP gets.
#[test]
fn readme_table_covers_every_catalog_operation() {
    let rows = table();
    // Events are what SAP receives, not operations it asks for.
    let operations: Vec<_> = OPERATIONS
        .iter()
        .filter(|op| op.interface != Interface::Event)
        .collect();
    for op in &operations {
        let matching: Vec<_> = rows
            .iter()
            .filter(|r| format!("Ici{}Interface", r[0]) == op.interface.name() && r[1] == op.name)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "README backend table: {} {} must have exactly one row",
            op.interface.name(),
            op.name
        );
        let [_, _, sim, asterisk] = matching[0];
        assert!(sim.starts_with("works"), "{}: simulator {sim:?}", op.name);
        assert!(!asterisk.is_empty(), "{}: no Asterisk entry", op.name);
    }
    assert_eq!(rows.len(), operations.len(), "rows for unknown operations");
    for capability in Capability::ALL {
        assert!(
            README.contains(&format!("`{capability}`")),
            "README does not name the capability {capability}"
        );
    }
}

/// getAttributes tells SAP every capability of the simulator, in the stable order.
#[tokio::test]
async fn get_attributes_lists_what_the_simulator_can_do() {
    let server = TestServer::start("").await;
    let answer = server
        .call("User", "getAttributes", &[("userId", "A1")])
        .await;
    let all: Vec<String> = Capability::ALL.iter().map(|c| c.to_string()).collect();
    assert_eq!(items_of(answer.ret(), "capabilities"), all);
    server.stop().await;
}
