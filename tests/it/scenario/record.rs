//! What SAP received, as text both backends can match: one block per step (its
//! description, its answer, then each user's events in order), every field of every event
//! on a line of its own, call ids as `c1`, `c2`, ... in the order first seen.
//!
//! ```text
//! == 14 A1 PhoneCall.consult callId={c1} address={agent2}
//! -> ok c2
//! A1 #6 phoneCallChanged
//!   phoneCall.callId: c1
//!   phoneCall.state: held
//!   ...
//! ```

use std::collections::BTreeMap;

use ici_connector::soap::{Element, parse_request};

use crate::common::fake_sap::{FakeSap, Received};

use super::steps::Outcome;
use super::{Lab, Scenario, Step};

/// Operations whose answer is a new call's id.
const ANSWERS_A_CALL: [&str; 2] = ["consult", "dial"];

/// The recording state of one run: users and their receivers, call ids seen.
pub struct Recorder {
    /// (user id, device, event path), in the scenario's order.
    users: Vec<(String, String, String)>,
    /// The fake SAP's base URL (`http://127.0.0.1:PORT`).
    base: String,
    lab: Lab,
    ivr: String,
    sap_data: String,
    /// Raw call ids in the order first seen: `c1` is `calls[0]`.
    calls: Vec<String>,
    /// The last sequence number each user received.
    sequences: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn new(scenario: &Scenario, lab: &Lab, sap: &FakeSap) -> Recorder {
        Recorder {
            users: scenario
                .users
                .iter()
                .map(|u| {
                    (
                        u.id.clone(),
                        lab.device(&u.device).to_owned(),
                        format!("/{}", u.id),
                    )
                })
                .collect(),
            base: sap.url_for(""),
            lab: lab.clone(),
            ivr: scenario.ivr.clone(),
            sap_data: scenario.sap_data.clone(),
            calls: Vec::new(),
            sequences: BTreeMap::new(),
        }
    }

    pub fn user_of_path(&self, path: &str) -> Option<String> {
        self.users
            .iter()
            .find(|(_, _, p)| p == path)
            .map(|(u, _, _)| u.clone())
    }

    pub fn user_of_url(&self, url: &str) -> Option<String> {
        self.user_of_path(url.strip_prefix(&self.base)?)
    }

    pub fn device_of(&self, user: &str) -> &str {
        self.users
            .iter()
            .find(|(u, _, _)| u == user)
            .map(|(_, d, _)| d.as_str())
            .unwrap_or_else(|| panic!("scenario: no user {user}"))
    }

    pub fn last_sequence(&self, user: &str) -> u64 {
        self.sequences.get(user).copied().unwrap_or(0)
    }

    /// The switch's id of call `c<n>`.
    pub fn call_id(&self, name: &str) -> String {
        let n: usize = name
            .strip_prefix('c')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("scenario: {name:?} is not a call (c1, c2, ...)"));
        self.calls
            .get(n.wrapping_sub(1))
            .cloned()
            .unwrap_or_else(|| panic!("scenario: call {name} not seen yet ({:?})", self.calls))
    }

    /// `c<n>` for a raw call id, numbering a new one.
    fn normalise_call(&mut self, raw: &str) -> String {
        let n = match self.calls.iter().position(|c| c == raw) {
            Some(i) => i + 1,
            None => {
                self.calls.push(raw.to_owned());
                self.calls.len()
            }
        };
        format!("c{n}")
    }

    /// `text` with its placeholders replaced.
    pub fn expand(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .map(|e| start + e)
                .unwrap_or_else(|| panic!("scenario: unclosed placeholder in {text:?}"));
            let name = &rest[start + 1..end];
            let value = match name {
                "agent1" | "agent2" | "supervisor" => self.lab.device(name).to_owned(),
                "customer" => self.lab.customer.clone(),
                "queue" => self.lab.queue.clone(),
                "queue_number" => self.lab.queue_number.clone(),
                "ivr" => self.ivr.clone(),
                "sap_data" => self.sap_data.clone(),
                _ if name.starts_with("url:") => format!("{}/{}", self.base, &name[4..]),
                _ => self.call_id(name),
            };
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    pub fn header(&self, index: usize, step: &Step) -> String {
        format!("== {index} {}", step.describe())
    }

    /// The text of one step: header, answer, then each user's events.
    pub fn block(
        &mut self,
        header: &str,
        outcome: Outcome,
        events: BTreeMap<String, Vec<Received>>,
    ) -> String {
        let mut text = format!("{header}\n");
        if let Outcome::Soap { op, answer } = outcome {
            if answer.element.name == "Fault" {
                let (code, string) = answer.fault();
                text.push_str(&format!("-> fault {code}: {string}\n"));
            } else if ANSWERS_A_CALL.contains(&op.as_str()) {
                let call = self.normalise_call(&answer.ret().text);
                text.push_str(&format!("-> ok {call}\n"));
            } else {
                answer.ok();
                text.push_str("-> ok\n");
            }
        }
        let order: Vec<String> = self.users.iter().map(|(u, _, _)| u.clone()).collect();
        for user in order {
            for event in events.get(&user).into_iter().flatten() {
                text.push_str(&self.event(&user, event));
            }
        }
        text
    }

    fn event(&mut self, user: &str, event: &Received) -> String {
        let sequence = event.sequence.unwrap_or(0);
        self.sequences.insert(user.to_owned(), sequence);
        let request = parse_request(event.body.as_bytes())
            .unwrap_or_else(|f| panic!("event is not SOAP ({f}): {}", event.body));
        let mut text = format!("{user} #{sequence} {}\n", event.name);
        let mut fields = Vec::new();
        for child in &request.operation.children {
            if child.name != "appIds" && child.name != "sequence" {
                flatten(child, "", &mut fields);
            }
        }
        for (path, value) in fields {
            let value = match value {
                None => "(nil)".to_owned(),
                Some(v) if path.ends_with("callId") => self.normalise_call(&v),
                Some(v) => match self.calls.iter().position(|c| *c == v) {
                    Some(i) => format!("c{}", i + 1),
                    None => v.escape_debug().to_string(),
                },
            };
            text.push_str(&format!("  {path}: {value}\n"));
        }
        text
    }
}

/// Every leaf of `element` as (dotted path, text or `None` for nil); list items are
/// numbered (`parties.0`).
fn flatten(element: &Element, prefix: &str, out: &mut Vec<(String, Option<String>)>) {
    let path = if prefix.is_empty() {
        element.name.to_string()
    } else {
        format!("{prefix}.{}", element.name)
    };
    if element.children.is_empty() {
        out.push((path, (!element.nil).then(|| element.text.to_string())));
        return;
    }
    for (i, child) in element.children.iter().enumerate() {
        if child.name == "item" {
            let item = format!("{path}.{i}");
            if child.children.is_empty() {
                out.push((item, (!child.nil).then(|| child.text.to_string())));
            } else {
                for grandchild in &child.children {
                    flatten(grandchild, &item, out);
                }
            }
        } else {
            flatten(child, &path, out);
        }
    }
}

/// One step of an expected file.
pub struct Expected {
    pub text: String,
    counts: BTreeMap<String, usize>,
}

impl Expected {
    /// How many events each user received in this step.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.counts.clone()
    }
}

/// Splits an expected file into steps (each begins with `== `).
pub fn parse(text: &str) -> Vec<Expected> {
    let mut steps: Vec<Expected> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("== ") {
            steps.push(Expected {
                text: String::new(),
                counts: BTreeMap::new(),
            });
        }
        let step = steps
            .last_mut()
            .expect("an expected file begins with a step header (== )");
        step.text.push_str(line);
        let event_line = !line.starts_with("== ")
            && !line.starts_with("->")
            && !line.starts_with(' ')
            && !line.trim().is_empty();
        if event_line && let Some(user) = line.split_whitespace().next() {
            *step.counts.entry(user.to_owned()).or_default() += 1;
        }
    }
    steps
}
