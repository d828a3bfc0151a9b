//! What the adapter knows about the PBX, rebuilt from AMI events: channels (one per call
//! leg, keyed by `Uniqueid`), calls (keyed by `Linkedid`, the [`CallRef`]) and queue
//! memberships. Pure: [`Model::apply`] turns one AMI event into the [`SwitchEvent`]s it
//! causes, so the mapping is unit-tested with literal AMI text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::codec::Message;
use crate::switch::{AgentState, CallRef, Direction, Extension, LegEvent, LegState, SwitchEvent};

/// Channel variable the dialplan or IVR sets to hand attached data to SAP.
pub const SAP_CAD_VARIABLE: &str = "SAP_CAD";
/// Call attribute name under which `SAP_CAD` reaches the session manager.
pub const SAP_CAD_ATTRIBUTE: &str = "Sap_Cad";
/// Channel variable carrying a MakeCall's correlation on calls the adapter originates.
pub const CTI_REF_VARIABLE: &str = "CTI_REF";
/// Prefix of the `Uniqueid` the adapter gives channels it originates (AMI `ChannelId`), so
/// their calls are recognised as outbound, also after a reconnect.
pub const ORIGINATE_PREFIX: &str = "ici-";

/// Turns an agent extension into an Asterisk interface and a channel name back into the
/// extension, from the configured pattern (`PJSIP/{extension}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces {
    prefix: String,
    suffix: String,
}

impl Interfaces {
    /// `pattern` must contain `{extension}` (the config validates it); without it the whole
    /// pattern is taken as a prefix.
    pub fn new(pattern: &str) -> Interfaces {
        let (prefix, suffix) = pattern.split_once("{extension}").unwrap_or((pattern, ""));
        Interfaces {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        }
    }

    /// The interface (device) of an extension: `PJSIP/2001`.
    pub fn interface(&self, extension: &str) -> String {
        format!("{}{extension}{}", self.prefix, self.suffix)
    }

    /// The extension of an interface (`PJSIP/2001`), if it matches the pattern.
    pub fn extension_of_interface(&self, interface: &str) -> Option<Extension> {
        let ext = interface
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        (!ext.is_empty()).then(|| ext.to_owned())
    }

    /// The extension of a channel (`PJSIP/2001-0000001a`): the interface is the name
    /// without Asterisk's `-<sequence>` suffix.
    pub fn extension_of_channel(&self, channel: &str) -> Option<Extension> {
        let (interface, _) = channel.rsplit_once('-')?;
        self.extension_of_interface(interface)
    }
}

#[derive(Debug, Clone, Default)]
struct Channel {
    name: String,
    linkedid: String,
    extension: Option<Extension>,
    /// AMI `ChannelState`: 0 Down, 3 Dialing, 4 Ring, 5 Ringing, 6 Up, 7 Busy.
    state: u8,
    caller: Option<String>,
    bridged: bool,
    held: bool,
    conferenced: bool,
    /// Asterisk reported this channel's own `ConfbridgeJoin` (`conferenced` is also set
    /// for the other parties of a conference the adapter builds).
    joined: bool,
    transferred: bool,
    /// Created by the adapter's Originate (the agent's phone rings first, then the far end).
    originated: bool,
}

/// A consultation call the adapter started with `Atxfer`. Asterisk gives its channels the
/// `Linkedid` of the held call; the adapter reports them under their own call id (the
/// `Uniqueid` of the first channel the transfer created) until the consultation ends.
#[derive(Debug, Clone)]
struct Consult {
    id: CallRef,
    /// The call the agent holds meanwhile (the `Linkedid` of every channel involved).
    held: CallRef,
    /// The agent's channel: on hold in `held` and talking on the consultation.
    transferer: String,
    destination: String,
    /// Channels created by the transfer (Local pair, the consulted phone).
    members: BTreeSet<String>,
    /// A conference was asked for: transfer events of the transferer do not complete it.
    conferencing: bool,
}

impl Consult {
    /// Key of the transferer's consultation leg in `Model::sent`.
    fn leg_key(&self) -> String {
        format!("{}>{}", self.transferer, self.id)
    }
}

#[derive(Debug, Clone, Default)]
struct Call {
    ani: Option<String>,
    dnis: Option<String>,
    queue: Option<String>,
    cad: Option<String>,
    correlation: Option<String>,
}

/// The adapter's picture of the PBX.
#[derive(Debug)]
pub struct Model {
    interfaces: Interfaces,
    /// Queues to watch; empty: all.
    queues: Vec<String>,
    channels: BTreeMap<String, Channel>,
    calls: HashMap<CallRef, Call>,
    /// The last snapshot sent per channel, so unchanged states are not repeated.
    sent: HashMap<String, LegEvent>,
    /// Queue memberships per extension: queue → (paused, reason).
    members: HashMap<Extension, BTreeMap<String, (bool, Option<String>)>>,
    agent_sent: HashMap<Extension, AgentState>,
    /// Custom states the connector asked for, per extension: a pause with that reason is
    /// reported back as the custom state.
    custom: HashMap<Extension, String>,
    /// Between `begin_resync` and `finish_resync`: events only update the picture.
    resyncing: bool,
    /// `Atxfer` sent, consultation channel not seen yet: held call → (transferer, number).
    pending_consults: HashMap<CallRef, (String, String)>,
    consults: Vec<Consult>,
}

impl Model {
    pub fn new(interface_pattern: &str, queues: Vec<String>) -> Model {
        Model {
            interfaces: Interfaces::new(interface_pattern),
            queues,
            channels: BTreeMap::new(),
            calls: HashMap::new(),
            sent: HashMap::new(),
            members: HashMap::new(),
            agent_sent: HashMap::new(),
            custom: HashMap::new(),
            resyncing: false,
            pending_consults: HashMap::new(),
            consults: Vec::new(),
        }
    }

    pub fn interfaces(&self) -> &Interfaces {
        &self.interfaces
    }

    /// Remembers that `extension` was asked into a custom state (a pause with that reason).
    pub fn set_custom(&mut self, extension: &str, state: Option<String>) {
        match state {
            Some(s) => self.custom.insert(extension.to_owned(), s),
            None => self.custom.remove(extension),
        };
    }

    /// Registers the correlation of a call the adapter is about to originate.
    pub fn expect_originate(&mut self, call: &str, correlation: String, destination: &str) {
        let entry = self.calls.entry(call.to_owned()).or_default();
        entry.correlation = Some(correlation);
        entry.dnis = Some(destination.to_owned());
    }

    /// The live channel of `extension` on `call`.
    pub fn channel_of(&self, call: &str, extension: &str) -> Option<(&str, &str)> {
        self.channels
            .iter()
            .filter(|(id, c)| {
                self.call_of(id).as_deref() == Some(call)
                    && c.extension.as_deref() == Some(extension)
            })
            .map(|(id, c)| (id.as_str(), c.name.as_str()))
            .next_back()
    }

    /// The call id a channel is reported under: its consultation call's while it is part of
    /// one, else its `Linkedid`.
    fn call_of(&self, id: &str) -> Option<CallRef> {
        if let Some(k) = self.consults.iter().find(|k| k.members.contains(id)) {
            return Some(k.id.clone());
        }
        self.channels.get(id).map(|c| c.linkedid.clone())
    }

    /// Registers an `Atxfer` from channel `transferer` on `held`: the next channel of that
    /// call starts the consultation call.
    pub fn expect_consult(&mut self, held: &str, transferer: &str, destination: &str) {
        self.pending_consults.insert(
            held.to_owned(),
            (transferer.to_owned(), destination.to_owned()),
        );
    }

    /// Forgets an `Atxfer` Asterisk refused.
    pub fn consult_failed(&mut self, held: &str) {
        self.pending_consults.remove(held);
    }

    /// The consultation call `transferer` (a channel) placed, if it is still on.
    pub fn consult_by_transferer(&self, transferer: &str) -> Option<(&str, &str)> {
        self.consults
            .iter()
            .find(|k| k.transferer == transferer)
            .map(|k| (k.id.as_str(), k.destination.as_str()))
    }

    /// The consultation call `id`: (held call, transferer channel, its name).
    pub fn consult(&self, id: &str) -> Option<(&str, &str, &str)> {
        let k = self.consults.iter().find(|k| k.id == id)?;
        let name = self.channels.get(&k.transferer)?.name.as_str();
        Some((k.held.as_str(), k.transferer.as_str(), name))
    }

    /// Whether the consultation call `id` still exists.
    pub fn has_consult(&self, id: &str) -> bool {
        self.consults.iter().any(|k| k.id == id)
    }

    /// Channels of consultation `id` that are phones (not Local): (uniqueid, name).
    pub fn consult_phones(&self, id: &str) -> Vec<(String, String)> {
        let Some(k) = self.consults.iter().find(|k| k.id == id) else {
            return Vec::new();
        };
        k.members
            .iter()
            .filter_map(|m| self.channels.get(m).map(|c| (m, c)))
            .filter(|(_, c)| !is_local(&c.name))
            .map(|(m, c)| (m.clone(), c.name.clone()))
            .collect()
    }

    /// Channels of the held call outside its consultation, other than the transferer and
    /// Local channels (the customer): (uniqueid, name).
    pub fn held_phones(&self, id: &str) -> Vec<(String, String)> {
        let Some(k) = self.consults.iter().find(|k| k.id == id) else {
            return Vec::new();
        };
        self.channels
            .iter()
            .filter(|(cid, c)| {
                c.linkedid == k.held
                    && **cid != k.transferer
                    && !k.members.contains(*cid)
                    && !is_local(&c.name)
            })
            .map(|(cid, c)| (cid.clone(), c.name.clone()))
            .collect()
    }

    /// A conference of consultation `id` was asked for: the transferer leaving its bridge
    /// does not complete a transfer, and the first `ConfbridgeJoin` ends the consultation.
    pub fn expect_conference(&mut self, id: &str) {
        if let Some(k) = self.consults.iter_mut().find(|k| k.id == id) {
            k.conferencing = true;
        }
    }

    /// The live channel of `party` (an extension or caller number as reported in
    /// `parties`) on `call`, other than `extension`'s own: (uniqueid, name).
    pub fn party_channel(
        &self,
        call: &str,
        extension: &str,
        party: &str,
    ) -> Option<(String, String)> {
        self.channels
            .iter()
            .filter(|(id, c)| {
                !is_local(&c.name)
                    && c.extension.as_deref() != Some(extension)
                    && self.call_of(id).as_deref() == Some(call)
            })
            .find(|(_, c)| {
                c.extension.as_deref() == Some(party) || c.caller.as_deref() == Some(party)
            })
            .map(|(id, c)| (id.clone(), c.name.clone()))
    }

    /// The extension of an agent's channel.
    pub fn channel_extension(&self, uniqueid: &str) -> Option<&str> {
        self.channels.get(uniqueid)?.extension.as_deref()
    }

    /// Whether the channel is in a ConfBridge.
    pub fn conferenced(&self, uniqueid: &str) -> bool {
        self.channels.get(uniqueid).is_some_and(|c| c.joined)
    }

    pub fn has_channel(&self, uniqueid: &str) -> bool {
        self.channels.contains_key(uniqueid)
    }

    /// Whether the channel is gone or was transferred away.
    pub fn left(&self, uniqueid: &str) -> bool {
        self.channels.get(uniqueid).is_none_or(|c| c.transferred)
    }

    pub fn has_call(&self, call: &str) -> bool {
        self.channels.values().any(|c| c.linkedid == call)
    }

    /// The last agent state reported for `extension`.
    pub fn agent_state(&self, extension: &str) -> Option<&AgentState> {
        self.agent_sent.get(extension)
    }

    /// Forgets channels and memberships before a resync (`CoreShowChannels`,
    /// `QueueStatus`); correlations of pending originates survive.
    pub fn begin_resync(&mut self) {
        self.channels.clear();
        self.sent.clear();
        self.members.clear();
        self.resyncing = true;
        self.calls.retain(|_, c| c.correlation.is_some());
        // A consultation cannot be told apart after a reconnect: its channels are
        // reported under the held call's id from now on.
        self.pending_consults.clear();
        self.consults.clear();
    }

    /// After a resync: every live agent leg, as the `LinkUp` list, and the agent states.
    pub fn finish_resync(&mut self) -> (Vec<LegEvent>, Vec<SwitchEvent>) {
        self.resyncing = false;
        let ids: Vec<String> = self.channels.keys().cloned().collect();
        let mut legs = Vec::new();
        for id in ids {
            if let Some(leg) = self.snapshot(&id, None) {
                self.sent.insert(id, leg.clone());
                legs.push(leg);
            }
        }
        let extensions: Vec<Extension> = self
            .members
            .keys()
            .chain(self.agent_sent.keys())
            .cloned()
            .collect();
        let mut agents = Vec::new();
        for ext in extensions {
            agents.extend(self.agent_event(&ext));
        }
        (legs, agents)
    }

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
            "BridgeEnter" => self.update(msg, |c, _| c.bridged = true),
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
            extension: self.interfaces.extension_of_channel(name),
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
        let value = msg.get("Value").unwrap_or("").to_owned();
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
            if let Some(channel) = self.channels.get_mut(id)
                && !channel.transferred
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
        let last = self.sent.remove(id);
        if let Some(mut leg) = last
            && !channel.transferred
        {
            let cause = if leg.state == LegState::Alerting {
                "abandoned".to_owned()
            } else {
                cause_name(msg.value("Cause"))
            };
            leg.state = LegState::Dropped;
            leg.cause = Some(cause);
            leg.correlation = None;
            out.push(SwitchEvent::Leg(Arc::new(leg)));
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

    /// The agent's state from its memberships, if it changed since last reported.
    fn agent_event(&mut self, ext: &str) -> Vec<SwitchEvent> {
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

    fn emit(&mut self, id: &str, cause: Option<&str>) -> Vec<SwitchEvent> {
        if self.resyncing {
            return Vec::new();
        }
        let Some(mut leg) = self.snapshot(id, cause) else {
            return Vec::new();
        };
        let previous = self.sent.get(id);
        if previous.is_some() {
            leg.correlation = None;
        }
        let mut out = Vec::new();
        if previous != Some(&leg) {
            if leg.state.is_final() {
                self.sent.remove(id);
            } else {
                self.sent.insert(id.to_owned(), leg.clone());
            }
            out.push(SwitchEvent::Leg(Arc::new(leg)));
        }
        if let Some(k) = self
            .consults
            .iter()
            .position(|k| k.transferer == id || k.members.contains(id))
        {
            out.extend(self.emit_consult(k));
        }
        out
    }

    /// The transferer's leg on consultation `k`, if it changed.
    fn emit_consult(&mut self, k: usize) -> Vec<SwitchEvent> {
        if self.resyncing {
            return Vec::new();
        }
        let key = self.consults[k].leg_key();
        let Some(mut leg) = self.consult_snapshot(k) else {
            return Vec::new();
        };
        if let Some(previous) = self.sent.get(&key) {
            leg.correlation = None;
            if *previous == leg {
                return Vec::new();
            }
        }
        self.sent.insert(key, leg.clone());
        vec![SwitchEvent::Leg(Arc::new(leg))]
    }

    /// The transferer's leg on consultation `k`: dialing until a consulted phone answers.
    fn consult_snapshot(&self, k: usize) -> Option<LegEvent> {
        let consult = &self.consults[k];
        let extension = self.channels.get(&consult.transferer)?.extension.clone()?;
        let phones: Vec<&Channel> = consult
            .members
            .iter()
            .filter_map(|m| self.channels.get(m))
            .filter(|c| !is_local(&c.name))
            .collect();
        let state = if phones.iter().any(|c| c.state == 6) {
            LegState::Connected
        } else {
            LegState::Dialing
        };
        let call = self.calls.get(&consult.id).cloned().unwrap_or_default();
        let mut attributes = BTreeMap::new();
        if let Some(ani) = &call.ani {
            attributes.insert("ani".to_owned(), ani.clone());
        }
        if let Some(dnis) = &call.dnis {
            attributes.insert("dnis".to_owned(), dnis.clone());
        }
        let mut parties: Vec<String> = phones
            .iter()
            .filter_map(|c| c.extension.clone().or_else(|| c.caller.clone()))
            .collect();
        if parties.is_empty() {
            parties.push(consult.destination.clone());
        }
        Some(LegEvent {
            call: consult.id.clone(),
            extension,
            state,
            direction: Direction::Outbound,
            queue: None,
            parties,
            attributes: attributes.into(),
            correlation: None,
            cause: None,
        })
    }

    /// The leg of channel `id` as the agent sees it; `None` for channels that are not an
    /// agent device or not yet visible (a queue's agent channel before it rings).
    fn snapshot(&self, id: &str, cause: Option<&str>) -> Option<LegEvent> {
        let channel = self.channels.get(id)?;
        let extension = channel.extension.clone()?;
        let call_id = self.call_of(id)?;
        let consult = self.consults.iter().find(|k| k.id == call_id);
        let transferring = self.consults.iter().any(|k| k.transferer == id);
        let state = if channel.transferred {
            LegState::Transferred
        } else if channel.conferenced {
            LegState::Conferenced
        } else if channel.held || transferring {
            LegState::Held
        } else {
            match channel.state {
                5 if !channel.originated => LegState::Alerting,
                6 if !channel.originated || channel.bridged => LegState::Connected,
                0 if !channel.originated => return None,
                _ => LegState::Dialing,
            }
        };
        let call = self.calls.get(&call_id).cloned().unwrap_or_default();
        let direction = if id == channel.linkedid {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        let mut parties: Vec<String> = consult
            .and_then(|k| self.channels.get(&k.transferer))
            .and_then(|c| c.extension.clone())
            .into_iter()
            .collect();
        parties.extend(
            self.channels
                .iter()
                .filter(|(other, c)| {
                    other.as_str() != id
                        && !is_local(&c.name)
                        && !c.transferred
                        && self.call_of(other).as_deref() == Some(call_id.as_str())
                })
                .filter_map(|(_, c)| c.extension.clone().or_else(|| c.caller.clone())),
        );
        let mut attributes = BTreeMap::new();
        if let Some(ani) = &call.ani {
            attributes.insert("ani".to_owned(), ani.clone());
        }
        if let Some(dnis) = &call.dnis {
            attributes.insert("dnis".to_owned(), dnis.clone());
        }
        if let Some(cad) = &call.cad {
            attributes.insert(SAP_CAD_ATTRIBUTE.to_owned(), cad.clone());
        }
        Some(LegEvent {
            call: call_id,
            extension,
            state,
            direction,
            queue: call.queue.clone(),
            parties,
            attributes: attributes.into(),
            // Only the originating leg answers for the MakeCall; the dialled party's leg
            // (possibly another agent) is a different interaction.
            correlation: call.correlation.clone().filter(|_| id == channel.linkedid),
            cause: cause.map(str::to_owned),
        })
    }
}

/// Local channels (`Local/2002@ctx-00000001;1`) are dialplan plumbing, not parties.
fn is_local(name: &str) -> bool {
    name.starts_with("Local/")
}

fn state_of(msg: &Message) -> u8 {
    msg.get("ChannelState")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
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
