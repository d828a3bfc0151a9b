//! The toolbar scenario on the built-in simulator: the lab's numbers as simulator
//! extensions and queue, the outside world through the simulator's control API (`/sim`).

use serde_json::{Value, json};

use crate::common::server::TestServer;

use super::{Backend, Lab, PickUp};

/// The simulator set up as the Asterisk lab: the same extensions, queue and customer
/// number, so both backends show SAP the same addresses.
pub struct SimLab {
    lab: Lab,
}

impl SimLab {
    pub fn new() -> SimLab {
        SimLab {
            lab: Lab::default(),
        }
    }

    async fn control(server: &TestServer, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = server.sim(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} /sim{path}: {status} {value}"
        );
        value
    }
}

impl Backend for SimLab {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The agents' and the supervisor's extensions; the customer is outside (its number
    /// is no extension), and answers only when the scenario says so.
    fn switch_config(&self) -> String {
        let lab = &self.lab;
        format!(
            "[switch.sim]\nextensions = [\"{}\", \"{}\", \"{}\"]\nremote_answer_after = \"off\"\n\
             [[switch.sim.queue]]\nname = \"{}\"\nnumber = \"{}\"\n",
            lab.agent1, lab.agent2, lab.supervisor, lab.queue, lab.queue_number
        )
    }

    /// The simulator needs no link.
    async fn ready(&mut self, _server: &TestServer) {}

    async fn customer_calls_queue(&mut self, server: &TestServer, data: &str) {
        let body = json!({
            "from": self.lab.customer,
            "queue": self.lab.queue,
            "attributes": {"Sap_Cad": data},
        });
        Self::control(server, "POST", "/calls", body).await;
    }

    async fn customer_answers(&mut self, server: &TestServer, call: &str) {
        Self::control(
            server,
            "POST",
            &format!("/calls/{call}/answer"),
            Value::Null,
        )
        .await;
    }

    async fn customer_hangs_up(&mut self, server: &TestServer, call: &str) {
        Self::control(
            server,
            "POST",
            &format!("/calls/{call}/hangup"),
            Value::Null,
        )
        .await;
    }

    /// The simulator answers, places and connects by itself.
    async fn pick_up(&mut self, _server: &TestServer, _device: &str, _why: PickUp) {}

    /// Every event of a step is sent when its answer or control action returns.
    fn records_expected(&self) -> bool {
        true
    }
}

/// The toolbar scenario on the simulator matches the expected events.
#[tokio::test]
async fn scenario_toolbar_on_the_simulator() {
    super::run("toolbar", &mut SimLab::new()).await;
}
