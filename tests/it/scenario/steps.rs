//! The scenario file and carrying out one step: a SOAP request as SAP sends it, or what
//! the backend does outside the connector.

use std::path::Path;

use serde::Deserialize;

use crate::common::server::{SoapAnswer, TestServer, envelope_as, params};

use super::{Backend, PickUp, Recorder};

/// A scenario file (see `tests/fixtures/scenarios/toolbar.toml` for the format).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The IVR's attached data (`{ivr}`).
    pub ivr: String,
    /// The attached data SAP sets (`{sap_data}`).
    pub sap_data: String,
    #[serde(rename = "user")]
    pub users: Vec<User>,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// A SAP user and the lab device it works at.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: String,
    /// `agent1`, `agent2` or `supervisor` (see [`super::Lab::device`]).
    pub device: String,
}

/// One step: a SOAP operation (`user`, `op`, `params` or `xml`) or a `world` action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub user: Option<String>,
    /// `Interface.operation`, e.g. `PhoneCall.hold`.
    pub op: Option<String>,
    #[serde(default)]
    pub params: Vec<(String, String)>,
    pub xml: Option<String>,
    pub world: Option<World>,
    /// `customer_calls_queue`: the IVR's attached data.
    pub data: Option<String>,
    /// `customer_answers`, `customer_hangs_up`: the call (`c1`, ...).
    pub call: Option<String>,
}

/// What happens outside the connector: what the customer does.
#[derive(Debug, Clone, Copy, Deserialize)]
pub enum World {
    #[serde(rename = "customer_calls_queue")]
    CallsQueue,
    #[serde(rename = "customer_answers")]
    Answers,
    #[serde(rename = "customer_hangs_up")]
    HangsUp,
}

impl Scenario {
    pub fn load(path: &Path) -> Scenario {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let scenario: Scenario =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (i, step) in scenario.steps.iter().enumerate() {
            let op = step.op.is_some() && step.user.is_some() && step.world.is_none();
            let world = step.world.is_some() && step.op.is_none();
            assert!(
                op ^ world,
                "{}: step {i} needs either user and op, or world",
                path.display()
            );
        }
        scenario
    }
}

impl World {
    /// As the scenario file names it.
    fn name(self) -> &'static str {
        match self {
            World::CallsQueue => "customer_calls_queue",
            World::Answers => "customer_answers",
            World::HangsUp => "customer_hangs_up",
        }
    }
}

impl Step {
    /// How the step reads in the recorded output, placeholders unexpanded (the same for
    /// every backend).
    pub fn describe(&self) -> String {
        match (&self.world, &self.op) {
            (Some(world), _) => {
                let mut text = format!("world {}", world.name());
                if let Some(call) = &self.call {
                    text.push_str(&format!(" call={call}"));
                }
                text
            }
            (None, Some(op)) => {
                let mut text = format!("{} {op}", self.user.as_deref().unwrap_or("-"));
                for (name, value) in &self.params {
                    let value = if value.len() > 40 {
                        "…"
                    } else {
                        value.as_str()
                    };
                    text.push_str(&format!(" {name}={value}"));
                }
                if let Some(xml) = &self.xml {
                    text.push_str(&format!(" {xml}"));
                }
                text
            }
            (None, None) => unreachable!("checked by Scenario::load"),
        }
    }
}

/// What a step answered: a SOAP answer, or nothing (a world action).
pub enum Outcome {
    Soap { op: String, answer: SoapAnswer },
    World,
}

/// Carries out one step.
pub async fn perform(
    step: &Step,
    recorder: &mut Recorder,
    backend: &mut impl Backend,
    server: &TestServer,
) -> Outcome {
    if let Some(world) = step.world {
        let call = step.call.as_deref().map(|c| recorder.call_id(c));
        let call = || call.clone().expect("this world step names a call");
        match world {
            World::CallsQueue => {
                let data = recorder.expand(step.data.as_deref().unwrap_or_default());
                backend.customer_calls_queue(server, &data).await;
            }
            World::Answers => backend.customer_answers(server, &call()).await,
            World::HangsUp => backend.customer_hangs_up(server, &call()).await,
        }
        return Outcome::World;
    }
    let user = step.user.as_deref().expect("checked by Scenario::load");
    let op = step.op.as_deref().expect("checked by Scenario::load");
    let (interface, operation) = op
        .split_once('.')
        .unwrap_or_else(|| panic!("op {op:?} is not Interface.operation"));
    let xml = match &step.xml {
        Some(xml) => recorder.expand(xml),
        None => {
            let pairs: Vec<(String, String)> = step
                .params
                .iter()
                .map(|(name, value)| (name.clone(), recorder.expand(value)))
                .collect();
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            params(&pairs)
        }
    };
    let answer = server
        .post(envelope_as(user, interface, operation, &xml))
        .await;
    let succeeded = answer.status == 200 && answer.element.name != "Fault";
    let why = match operation {
        "accept" => Some(PickUp::Accept),
        "dial" => Some(PickUp::Dial),
        "listen" => Some(PickUp::Listen),
        _ => None,
    };
    if let (true, Some(why)) = (succeeded, why) {
        let device = recorder.device_of(user).to_owned();
        backend.pick_up(server, &device, why).await;
    }
    Outcome::Soap {
        op: operation.to_owned(),
        answer,
    }
}
