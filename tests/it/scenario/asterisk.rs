//! The toolbar scenario on the Asterisk lab (tests/asterisk: Asterisk 22, baresip phones
//! 2001 and 2002 for the agents, 2003 the customer, 2004 the supervisor), the outside world
//! through the phones' control sockets and the PBX's CLI.
//!
//! Ignored: the lab's phones (baresip) cannot be answered from SAP (no SIP NOTIFY `talk`,
//! no remote answer), so the scenario's `Item.accept` answers with a fault there where the
//! simulator connects the call, and alternate is not offered on Asterisk. Run it with
//! `cargo test --test it scenario_toolbar_on_asterisk -- --ignored` to see where the two
//! backends part (the first difference is printed, the whole run is written to
//! `$TMPDIR/toolbar.asterisk.events`).

use base64::Engine as _;

use crate::asterisk_flow::{Teardown, lab_lock, pbx, phone, ready, setup};
use crate::common;
use crate::common::server::TestServer;

use super::{Backend, Lab, PickUp, STEP_WAIT};

/// baresip control ports per extension (tests/asterisk/setup.sh).
const PHONES: [(&str, u16); 4] = [
    ("2001", 4451),
    ("2002", 4452),
    ("2003", 4453),
    ("2004", 4454),
];

/// The AstDB key the lab's queue number reads the IVR's attached data from (base64, so
/// the document passes the CLI unchanged): tests/asterisk/etc/extensions.conf, 600.
const IVR_DATA_KEY: &str = "ici cad";

pub struct AsteriskLab {
    lab: Lab,
}

impl AsteriskLab {
    fn port(&self, device: &str) -> u16 {
        PHONES
            .iter()
            .find(|(ext, _)| *ext == device)
            .map(|(_, port)| *port)
            .unwrap_or_else(|| panic!("no lab phone {device}"))
    }
}

impl Backend for AsteriskLab {
    fn name(&self) -> &'static str {
        "asterisk"
    }

    fn lab(&self) -> &Lab {
        &self.lab
    }

    fn switch_config(&self) -> String {
        "[switch]\nkind = \"asterisk\"\n[switch.asterisk]\nhost = \"127.0.0.1\"\n\
         username = \"cti\"\nsecret = \"ctipass\"\nqueues = [\"support\"]\n\
         reconnect_min = \"200ms\"\nreconnect_max = \"1s\"\n"
            .into()
    }

    async fn ready(&mut self, server: &TestServer) {
        ready(server, 200, "AMI link up").await;
    }

    async fn customer_calls_queue(&mut self, _server: &TestServer, data: &str) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        pbx(&format!("database put {IVR_DATA_KEY} {encoded}")).expect("IVR data into AstDB");
        phone(
            self.port(&self.lab.customer),
            "dial",
            "sip:600@127.0.0.1:5160",
        )
        .await;
    }

    async fn customer_answers(&mut self, server: &TestServer, call: &str) {
        let port = self.port(&self.lab.customer);
        common::poll("the customer's phone answers", STEP_WAIT, || async {
            // The INVITE may reach the phone a little after AMI announced the call.
            phone(port, "accept", "").await;
            let status = server.status().await;
            let connected = status["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| a["interactions"].as_array().cloned().unwrap_or_default())
                .any(|i| i["call_id"] == call && i["state"] == "connected");
            match connected {
                true => Ok(()),
                false => Err(status["agents"].to_string()),
            }
        })
        .await
    }

    /// The runner waits for the events the hangup causes.
    async fn customer_hangs_up(&mut self, _server: &TestServer, _call: &str) {
        phone(self.port(&self.lab.customer), "hangup", "").await;
    }

    /// accept never gets here (it faults with `answer = "phone"`); dial rings the agent's
    /// phone first and listen the supervisor's: they answer.
    async fn pick_up(&mut self, _server: &TestServer, device: &str, why: PickUp) {
        if why != PickUp::Accept {
            phone(self.port(device), "accept", "").await;
        }
    }
}

/// The toolbar scenario on the Asterisk lab against the simulator's expected events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the lab's phones cannot be answered from SAP, alternate is not offered on Asterisk"]
async fn scenario_toolbar_on_asterisk() {
    let _lock = lab_lock().await;
    if let Err(reason) = setup(None) {
        println!("SKIPPED: {reason}");
        return;
    }
    let _teardown = Teardown;
    super::run(
        "toolbar",
        &mut AsteriskLab {
            lab: Lab::default(),
        },
    )
    .await;
}
