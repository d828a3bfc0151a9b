//! How each AMI event changes the model: channels appearing, changing state and hanging
//! up, transfers, consultation calls, conferences, channel variables and queue members.
//!
//! Separate from the model's queries because this is the part that follows Asterisk's event
//! vocabulary, and the part the literal-AMI unit tests exercise.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{
    CTI_REF_VARIABLE, Call, Channel, Consult, Model, ORIGINATE_PREFIX, SAP_CAD_VARIABLE,
    SPY_PREFIX, STATE_DOWN, is_local,
};
use crate::switch::asterisk::HOLD_CONTEXT;
use crate::switch::asterisk::codec::Message;
use crate::switch::{AgentState, LegState, SwitchEvent};

impl Model {
    /// Applies one AMI event; returns what to tell the session manager.
    pub fn apply(&mut self, msg: &Message) -> Vec<SwitchEvent> {
        let Some(event) = msg.event() else {
            return Vec::new();
        };
        match event {
            "Newchannel" | "CoreShowChannel" => self.on_channel(msg),
            "Newstate" => self.update(msg, |c, m| {
                c.state = state_of(m);
                if let Some(caller) = m.value("CallerIDNum") {
                    c.caller = Some(caller.to_owned());
                }
            }),
            "BridgeEnter" => self.update(msg, |c, m| {
                c.bridged = true;
                c.bridge = m.value("BridgeUniqueid").map(str::to_owned);
                if c.held && c.parked_with.is_some() {
                    // Retrieved from a server-side hold: bridged with its party again.
                    c.parked_with = None;
                    c.held = false;
                }
            }),
            "Newexten" => {
                // A hold asked for right after the answer can move the agent's channel
                // before Asterisk bridged it: no BridgeLeave, but it arrives in the park.
                let parked = msg.value("Context") == Some(HOLD_CONTEXT);
                let Some(id) = msg.value("Uniqueid") else {
                    return Vec::new();
                };
                match self.channels.get_mut(id) {
                    Some(c) if parked && c.parked_with.is_some() && !c.held => {
                        c.held = true;
                        self.emit(id, None)
                    }
                    _ => Vec::new(),
                }
            }
            "BridgeLeave" => {
                let Some(id) = msg.value("Uniqueid") else {
                    return Vec::new();
                };
                let Some(c) = self.channels.get_mut(id) else {
                    return Vec::new();
                };
                c.bridge = None;
                // Only a server-side hold makes leaving a bridge news: the agent's channel
                // was taken out to be parked. Otherwise a hangup or transfer follows.
                if c.parked_with.is_none() || c.held {
                    return Vec::new();
                }
                c.held = true;
                self.emit(id, None)
            }
            "Hold" => self.update(msg, |c, _| c.held = true),
            "Unhold" => self.update(msg, |c, _| c.held = false),
            "ConfbridgeJoin" => {
                let mut out = self.on_conference_join(msg);
                out.extend(self.update(msg, |c, _| {
                    c.conferenced = true;
                    c.joined = true;
                    c.held = false;
                }));
                out
            }
            "ConfbridgeLeave" => {
                // Mostly a hangup follows; the next change reports the leg.
                if let Some(c) = msg
                    .value("Uniqueid")
                    .and_then(|id| self.channels.get_mut(id))
                {
                    c.conferenced = false;
                    c.joined = false;
                }
                Vec::new()
            }
            "QueueCallerJoin" | "QueueEntry" | "AgentCalled" => {
                if let (Some(call), Some(queue)) = (msg.value("Linkedid"), msg.value("Queue")) {
                    self.calls.entry(call.to_owned()).or_default().queue = Some(queue.to_owned());
                }
                Vec::new()
            }
            "VarSet" => {
                self.on_var(msg);
                Vec::new()
            }
            "BlindTransfer" | "AttendedTransfer" => self.on_transfer(msg),
            "Hangup" => self.on_hangup(msg),
            "QueueMemberAdded" | "QueueMemberPause" | "QueueMember" | "QueueMemberStatus" => {
                self.on_member(msg, true)
            }
            "QueueMemberRemoved" => self.on_member(msg, false),
            "AgentComplete" => self.on_agent_complete(msg),
            _ => Vec::new(),
        }
    }

    fn on_channel(&mut self, msg: &Message) -> Vec<SwitchEvent> {
        let (Some(id), Some(name)) = (msg.value("Uniqueid"), msg.value("Channel")) else {
            return Vec::new();
        };
        let linkedid = msg.value("Linkedid").unwrap_or(id).to_owned();
        let root = id == linkedid;
        let call = self.calls.entry(linkedid.clone()).or_default();
        if root {
            if call.ani.is_none() {
                call.ani = msg.value("CallerIDNum").map(str::to_owned);
            }
            if call.dnis.is_none() {
                call.dnis = msg.value("Exten").filter(|e| *e != "s").map(str::to_owned);
            }
        }
        let channel = Channel {
            name: name.to_owned(),
            linkedid,
            // A supervisor's listening channel is plumbing, not the supervisor's call.
            extension: (!id.starts_with(SPY_PREFIX))
                .then(|| self.interfaces.extension_of_channel(name))
                .flatten(),
            state: state_of(msg),
            caller: msg.value("CallerIDNum").map(str::to_owned),
            bridged: msg.value("BridgeId").is_some(),
            originated: root && id.starts_with(ORIGINATE_PREFIX),
            ..Channel::default()
        };
        self.channels.insert(id.to_owned(), channel);
        if msg.event() == Some("CoreShowChannel") {
            return Vec::new();
        }
        let mut out = Vec::new();
        let held = self.channels[id].linkedid.clone();
        if let Some((transferer, destination)) = self.pending_consults.remove(&held) {
            // The first channel the Atxfer creates starts the consultation call.
            let from = self
                .channels
                .get(&transferer)
                .and_then(|c| c.extension.clone());
            self.calls.insert(
                id.to_owned(),
                Call {
                    ani: from,
                    dnis: Some(destination.clone()),
                    ..Call::default()
                },
            );
            self.consults.push(Consult {
                id: id.to_owned(),
                held,
                transferer: transferer.clone(),
                destination,
                members: BTreeSet::from([id.to_owned()]),
                conferencing: false,
            });
            out.extend(self.emit(&transferer, None));
        } else if let Some(k) = self
            .consults
            .iter_mut()
            .find(|k| k.held == held && k.transferer != id)
        {
            k.members.insert(id.to_owned());
        }
        out.extend(self.emit(id, None));
        out
    }

    /// Leaves of the consultation call `k`'s members and the transferer's consultation leg
    /// end with `cause`; the consultation is forgotten and its channels are reported under
    /// the held call from now on.
    fn end_consult(&mut self, k: usize, own: LegState, cause: &str) -> Vec<SwitchEvent> {
        let consult = self.consults.remove(k);
        let mut out = Vec::new();
        if let Some(mut leg) = self.sent.remove(&consult.leg_key()) {
            leg.state = own;
            leg.cause = Some(cause.to_owned());
            leg.correlation = None;
            out.push(SwitchEvent::Leg(Arc::new(leg)));
        }
        for member in &consult.members {
            if let Some(mut leg) = self.sent.remove(member) {
                leg.state = LegState::Dropped;
                leg.cause = Some(cause.to_owned());
                leg.correlation = None;
                out.push(SwitchEvent::Leg(Arc::new(leg)));
            }
        }
        self.calls.remove(&consult.id);
        out
    }

    /// The transferer completed the consultation transfer (hung up, or Asterisk reported
    /// the `AttendedTransfer`): its legs on both calls are transferred, the consulted
    /// party's leg moves from the consultation call to the held one.
    fn complete_consult(&mut self, k: usize) -> Vec<SwitchEvent> {
        let transferer = self.consults[k].transferer.clone();
        let members = self.consults[k].members.clone();
        let mut out = Vec::new();
        if let Some(channel) = self.channels.get_mut(&transferer) {
            channel.transferred = true;
        }
        out.extend(self.emit(&transferer, Some("transferred")));
        out.extend(self.end_consult(k, LegState::Transferred, "transferred"));
        for member in members {
            out.extend(self.emit(&member, None));
        }
        out
    }

    /// The first channel of a consultation being conferenced joined the ConfBridge: the
    /// consultation call ends (cause `conferenced`) and everybody on it, the transferer
    /// and the held call's parties are reported conferenced on the held call.
    fn on_conference_join(&mut self, msg: &Message) -> Vec<SwitchEvent> {
        let Some(id) = msg.value("Uniqueid") else {
            return Vec::new();
        };
        let Some(linkedid) = self.channels.get(id).map(|c| c.linkedid.clone()) else {
            return Vec::new();
        };
        let Some(k) = self
            .consults
            .iter()
            .position(|k| k.conferencing && k.held == linkedid)
        else {
            return Vec::new();
        };
        let mut out = self.end_consult(k, LegState::Dropped, "conferenced");
        let ids: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.linkedid == linkedid && !is_local(&c.name))
            .map(|(cid, _)| cid.clone())
            .collect();
        for cid in &ids {
            if let Some(c) = self.channels.get_mut(cid) {
                c.conferenced = true;
            }
        }
        for cid in ids {
            out.extend(self.emit(&cid, None));
        }
        out
    }

    fn update(
        &mut self,
        msg: &Message,
        f: impl FnOnce(&mut Channel, &Message),
    ) -> Vec<SwitchEvent> {
        let Some(id) = msg.value("Uniqueid") else {
            return Vec::new();
        };
        let Some(channel) = self.channels.get_mut(id) else {
            return Vec::new();
        };
        f(channel, msg);
        self.emit(id, None)
    }

    fn on_var(&mut self, msg: &Message) {
        let (Some(call), Some(var)) = (msg.value("Linkedid"), msg.value("Variable")) else {
            return;
        };
        let value = unescape(msg.get("Value").unwrap_or(""));
        // Inherited variables show up as `__SAP_CAD` on the channel that sets them.
        let var = var.trim_start_matches('_');
        let entry = self.calls.entry(call.to_owned()).or_default();
        if var.eq_ignore_ascii_case(SAP_CAD_VARIABLE) {
            entry.cad = Some(value);
        } else if var.eq_ignore_ascii_case(CTI_REF_VARIABLE) && entry.correlation.is_none() {
            entry.correlation = Some(value);
        }
    }

    fn on_transfer(&mut self, msg: &Message) -> Vec<SwitchEvent> {
        if msg.get("Result") != Some("Success") {
            return Vec::new();
        }
        let mut out = Vec::new();
        for key in [
            "TransfererUniqueid",
            "OrigTransfererUniqueid",
            "SecondTransfererUniqueid",
        ] {
            let Some(id) = msg.value(key) else { continue };
            if let Some(k) = self.consults.iter().position(|k| k.transferer == id) {
                if !self.consults[k].conferencing {
                    out.extend(self.complete_consult(k));
                }
                continue;
            }
            // An agent that left its consultation for a conference completes Asterisk's
            // attended transfer, reported once it is already in the ConfBridge: it stays.
            if let Some(channel) = self.channels.get_mut(id)
                && !channel.transferred
                && !channel.conferenced
            {
                channel.transferred = true;
                out.extend(self.emit(id, Some("transferred")));
            }
        }
        out
    }

    fn on_hangup(&mut self, msg: &Message) -> Vec<SwitchEvent> {
        let Some(id) = msg.value("Uniqueid") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(k) = self.consults.iter().position(|k| k.transferer == id) {
            // The transferer hanging up completes an attended transfer on Asterisk.
            if self.consults[k].conferencing {
                out.extend(self.end_consult(k, LegState::Dropped, "normal"));
            } else {
                out.extend(self.complete_consult(k));
            }
        }
        let Some(channel) = self.channels.remove(id) else {
            return out;
        };
        self.spies.retain(|_, spy| spy != id);
        // A server-side hold leaves two channels waiting for each other: when one hangs up,
        // the other has nobody to come back to.
        if let Some(partner) = channel
            .parked_with
            .as_deref()
            .and_then(|p| self.channels.get(p))
        {
            self.orphans.push(partner.name.clone());
        }
        let waiting: Vec<String> = self
            .channels
            .values()
            .filter(|c| c.parked_with.as_deref() == Some(id))
            .map(|c| c.name.clone())
            .collect();
        self.orphans.extend(waiting);
        let last = self.sent.remove(id);
        if let Some(mut leg) = last
            && !channel.transferred
        {
            let cause = if leg.state == LegState::Alerting && channel.rerouted {
                "rerouted".to_owned()
            } else if leg.state == LegState::Alerting {
                "abandoned".to_owned()
            } else {
                cause_name(msg.value("Cause"))
            };
            leg.state = LegState::Dropped;
            leg.cause = Some(cause);
            leg.correlation = None;
            out.push(SwitchEvent::Leg(Arc::new(leg)));
        }
        if let Some(extension) = self.wrap_after.remove(id) {
            out.push(SwitchEvent::WrapUp {
                extension,
                active: true,
            });
        }
        if let Some(k) = self.consults.iter().position(|k| k.members.contains(id)) {
            self.consults[k].members.remove(id);
            if self.consults[k].members.is_empty() {
                // The consulted party is gone (or the consultation was cancelled): the
                // transferer is back on the held call.
                let transferer = self.consults[k].transferer.clone();
                out.extend(self.end_consult(k, LegState::Dropped, "normal"));
                out.extend(self.emit(&transferer, None));
            } else {
                out.extend(self.emit_consult(k));
            }
        }
        if !self.has_call(&channel.linkedid) {
            self.calls.remove(&channel.linkedid);
        }
        out
    }

    fn on_member(&mut self, msg: &Message, present: bool) -> Vec<SwitchEvent> {
        let (Some(queue), Some(interface)) = (
            msg.value("Queue"),
            msg.value("Interface").or_else(|| msg.value("Location")),
        ) else {
            return Vec::new();
        };
        if !self.queues.is_empty() && !self.queues.iter().any(|q| q == queue) {
            return Vec::new();
        }
        let Some(ext) = self.interfaces.extension_of_interface(interface) else {
            return Vec::new();
        };
        let queues = self.members.entry(ext.clone()).or_default();
        if present {
            let paused = msg.get("Paused") == Some("1");
            let reason = msg.value("PausedReason").map(str::to_owned);
            queues.insert(queue.to_owned(), (paused, reason));
        } else {
            queues.remove(queue);
        }
        self.agent_event(&ext)
    }

    /// An agent's answered queue call ended: with wrap-up time, its after-call work begins
    /// (the link times its end).
    fn on_agent_complete(&mut self, msg: &Message) -> Vec<SwitchEvent> {
        if !self.wrap_up || self.resyncing {
            return Vec::new();
        }
        let (Some(queue), Some(interface)) = (msg.value("Queue"), msg.value("Interface")) else {
            return Vec::new();
        };
        if !self.queues.is_empty() && !self.queues.iter().any(|q| q == queue) {
            return Vec::new();
        }
        let Some(extension) = self.interfaces.extension_of_interface(interface) else {
            return Vec::new();
        };
        // The agent's channel on that call: named in the event, or found by extension
        // (the event does not always name it).
        let call = msg.value("Linkedid");
        let agent = msg
            .value("DestUniqueid")
            .filter(|id| self.channels.contains_key(*id))
            .map(str::to_owned)
            .or_else(|| {
                self.channels
                    .iter()
                    .find(|(_, c)| {
                        c.extension.as_deref() == Some(extension.as_str())
                            && Some(c.linkedid.as_str()) == call
                    })
                    .map(|(id, _)| id.clone())
            });
        if let Some(agent) = agent {
            self.wrap_after.insert(agent, extension);
            return Vec::new();
        }
        vec![SwitchEvent::WrapUp {
            extension,
            active: true,
        }]
    }

    /// The agent's state from its memberships, if it changed since last reported.
    pub(super) fn agent_event(&mut self, ext: &str) -> Vec<SwitchEvent> {
        if self.resyncing {
            return Vec::new();
        }
        let queues = self.members.get(ext);
        let state = match queues {
            None => AgentState::LoggedOut,
            Some(q) if q.is_empty() => AgentState::LoggedOut,
            Some(q) if q.values().any(|(paused, _)| !paused) => AgentState::Ready,
            Some(q) => {
                let reason = q.values().find_map(|(_, r)| r.clone());
                match (&reason, self.custom.get(ext)) {
                    (Some(r), Some(custom)) if r == custom => AgentState::Custom {
                        state: custom.clone(),
                    },
                    _ => AgentState::NotReady { reason },
                }
            }
        };
        if self.agent_sent.get(ext) == Some(&state) {
            return Vec::new();
        }
        self.agent_sent.insert(ext.to_owned(), state.clone());
        vec![SwitchEvent::Agent {
            extension: ext.to_owned(),
            state,
        }]
    }
}

/// A channel's AMI `ChannelState`; Down if the event does not say.
fn state_of(msg: &Message) -> u8 {
    msg.get("ChannelState")
        .and_then(|s| s.parse().ok())
        .unwrap_or(STATE_DOWN)
}

/// Q.850 cause code → the connector's cause vocabulary.
fn cause_name(code: Option<&str>) -> String {
    match code.and_then(|c| c.parse::<u16>().ok()) {
        Some(16) | Some(0) | None => "normal".into(),
        Some(17) => "busy".into(),
        Some(18) | Some(19) => "no_answer".into(),
        Some(21) => "rejected".into(),
        Some(26) => "answered_elsewhere".into(),
        Some(other) => format!("cause_{other}"),
    }
}

/// A `VarSet` value as the dialplan set it: Asterisk 22 escapes `"` and `\` with a
/// backslash there (`id=\"IVR\"`), which would break the XML of `SAP_CAD`.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('"' | '\\'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}
