//! What the adapter knows about the PBX, rebuilt from AMI events: channels (one per call
//! leg, keyed by `Uniqueid`), calls (keyed by `Linkedid`, the [`CallRef`]) and queue
//! memberships. Pure: [`Model::apply`] turns one AMI event into the [`SwitchEvent`]s it
//! causes, so the mapping is unit-tested with literal AMI text.
//!
//! This file holds the picture itself and the questions the actor asks of it; how each AMI
//! event changes the picture is in `model/apply.rs`, how a channel becomes the leg an agent
//! sees (and when that is worth an event) in `model/legs.rs`.

mod apply;
mod legs;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::switch::{AgentState, CallRef, Extension, LegEvent, SwitchEvent};

/// Channel variable the dialplan or IVR sets to hand attached data to SAP.
pub const SAP_CAD_VARIABLE: &str = "SAP_CAD";
/// Call attribute name under which `SAP_CAD` reaches the session manager.
pub const SAP_CAD_ATTRIBUTE: &str = "Sap_Cad";
/// Channel variable carrying a MakeCall's correlation on calls the adapter originates.
pub const CTI_REF_VARIABLE: &str = "CTI_REF";
/// Prefix of the `Uniqueid` the adapter gives channels it originates (AMI `ChannelId`), so
/// their calls are recognised as outbound, also after a reconnect.
pub const ORIGINATE_PREFIX: &str = "ici-";
/// Prefix of the `Uniqueid` of a supervisor's listening channel (ChanSpy): plumbing, never a
/// call leg of the supervisor. Starts with [`ORIGINATE_PREFIX`]'s letters but is told apart
/// first.
pub const SPY_PREFIX: &str = "ici-spy-";

/// AMI `ChannelState` values the model tells apart (Asterisk's `ast_channel_state`).
const STATE_DOWN: u8 = 0;
const STATE_RINGING: u8 = 5;
const STATE_UP: u8 = 6;

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
    /// The bridge the channel is in (`BridgeUniqueid`), if any.
    bridge: Option<String>,
    /// Server-side hold: the other party's channel (`Uniqueid`), waiting in music on hold
    /// while this agent channel is parked. Set when the hold is asked for; the leg is held
    /// once the channel has left its bridge.
    parked_with: Option<String>,
    /// SAP rerouted this alerting leg back to its queue: it ends with cause `rerouted`.
    rerouted: bool,
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
    /// Channels to hang up because the party they waited for is gone (a parked agent leg
    /// whose customer hung up in music on hold, or the other way round).
    orphans: Vec<String>,
    /// Listening (ChanSpy) channels: (call, supervisor extension) → spy channel `Uniqueid`.
    spies: HashMap<(CallRef, Extension), String>,
    /// Whether the queues have wrap-up time (`[switch.asterisk] wrap_up`).
    wrap_up: bool,
    /// Agents in wrap-up and when it ends.
    wrapping: HashMap<Extension, tokio::time::Instant>,
    /// Wrap-up that begins once this agent channel (`Uniqueid`) has hung up: Asterisk
    /// reports `AgentComplete` before the agent's `Hangup`, SAP is told the call ended first.
    wrap_after: HashMap<String, Extension>,
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
            orphans: Vec::new(),
            spies: HashMap::new(),
            wrap_up: false,
            wrapping: HashMap::new(),
            wrap_after: HashMap::new(),
        }
    }

    /// The watched queues have wrap-up time: a completed queue call starts it.
    pub fn set_wrap_up(&mut self, on: bool) {
        self.wrap_up = on;
    }

    /// `extension`'s wrap-up (reported active) ends at `until`.
    pub fn wrap_up_until(&mut self, extension: &str, until: tokio::time::Instant) {
        self.wrapping.insert(extension.to_owned(), until);
    }

    /// Ends `extension`'s wrap-up early; whether it was in one.
    pub fn end_wrap_up(&mut self, extension: &str) -> bool {
        self.wrapping.remove(extension).is_some()
    }

    /// The agents whose wrap-up is over at `now` (forgotten here).
    pub fn due_wrap_ups(&mut self, now: tokio::time::Instant) -> Vec<Extension> {
        let due: Vec<Extension> = self
            .wrapping
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(ext, _)| ext.clone())
            .collect();
        for ext in &due {
            self.wrapping.remove(ext);
        }
        due
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

    /// The channel bridged with `uniqueid`'s (the other party of a two-party call), if
    /// exactly one is: (uniqueid, name). `None` when alone or in a bridge of three or more.
    pub fn bridge_partner(&self, uniqueid: &str) -> Option<(String, String)> {
        let bridge = self.channels.get(uniqueid)?.bridge.as_deref()?;
        let mut others = self
            .channels
            .iter()
            .filter(|(id, c)| id.as_str() != uniqueid && c.bridge.as_deref() == Some(bridge));
        let (id, c) = others.next()?;
        others
            .next()
            .is_none()
            .then(|| (id.clone(), c.name.clone()))
    }

    /// The other party of `uniqueid`'s call for a server-side hold: its bridge partner, or,
    /// right after an answer when Asterisk has not bridged them yet, the one other live
    /// phone channel of the same call. `None` when that is not exactly one.
    pub fn call_partner(&self, uniqueid: &str) -> Option<(String, String)> {
        if let Some(partner) = self.bridge_partner(uniqueid) {
            return Some(partner);
        }
        let call = self.call_of(uniqueid)?;
        let mut others = self.channels.iter().filter(|(id, c)| {
            id.as_str() != uniqueid
                && !is_local(&c.name)
                && !c.transferred
                && c.state == STATE_UP
                && self.call_of(id).as_deref() == Some(call.as_str())
        });
        let (id, c) = others.next()?;
        others
            .next()
            .is_none()
            .then(|| (id.clone(), c.name.clone()))
    }

    /// Server-side hold of `agent` (a channel) with `partner` is being asked for.
    pub fn expect_park(&mut self, agent: &str, partner: &str) {
        if let Some(c) = self.channels.get_mut(agent) {
            c.parked_with = Some(partner.to_owned());
        }
    }

    /// Asterisk refused the server-side hold of `agent`.
    pub fn park_failed(&mut self, agent: &str) {
        if let Some(c) = self.channels.get_mut(agent) {
            c.parked_with = None;
        }
    }

    /// The party waiting in music on hold for `agent`'s parked channel: (uniqueid, name).
    pub fn parked_partner(&self, agent: &str) -> Option<(String, String)> {
        let partner = self.channels.get(agent)?.parked_with.as_deref()?;
        let c = self.channels.get(partner)?;
        Some((partner.to_owned(), c.name.clone()))
    }

    /// Whether the channel is held (on the phone or by the server).
    pub fn held(&self, uniqueid: &str) -> bool {
        self.channels.get(uniqueid).is_none_or(|c| c.held)
    }

    /// Whether the channel is held by the phone itself (re-INVITE), not by the server.
    pub fn held_on_phone(&self, uniqueid: &str) -> bool {
        self.channels
            .get(uniqueid)
            .is_some_and(|c| c.held && c.parked_with.is_none())
    }

    /// Whether the channel was answered (or is gone).
    pub fn answered(&self, uniqueid: &str) -> bool {
        self.channels
            .get(uniqueid)
            .is_none_or(|c| c.state == STATE_UP)
    }

    /// Whether the channel is ringing (an agent leg SAP sees alerting).
    pub fn ringing(&self, uniqueid: &str) -> bool {
        self.channels
            .get(uniqueid)
            .is_some_and(|c| c.state == STATE_RINGING && !c.originated)
    }

    /// SAP sends the alerting leg `uniqueid` back to its queue.
    pub fn expect_reroute(&mut self, uniqueid: &str) {
        if let Some(c) = self.channels.get_mut(uniqueid) {
            c.rerouted = true;
        }
    }

    /// Channels to hang up now (see `orphans`).
    pub fn take_orphans(&mut self) -> Vec<String> {
        std::mem::take(&mut self.orphans)
    }

    /// The channel to keep `call`'s variables on: its root (the caller's, whose variables
    /// the call's later channels inherit), else any live phone channel of the call: name.
    pub fn root_channel(&self, call: &str) -> Option<&str> {
        if let Some(root) = self.channels.get(call) {
            return Some(root.name.as_str());
        }
        self.channels
            .iter()
            .find(|(id, c)| !is_local(&c.name) && self.call_of(id).as_deref() == Some(call))
            .map(|(_, c)| c.name.as_str())
    }

    /// An agent's live channel on `call` other than `except`'s: the one a supervisor
    /// listens to (name).
    pub fn agent_channel_on(&self, call: &str, except: &str) -> Option<String> {
        self.channels
            .iter()
            .filter(|(id, c)| {
                c.extension.as_deref().is_some_and(|e| e != except)
                    && !c.transferred
                    && self.call_of(id).as_deref() == Some(call)
            })
            .map(|(_, c)| c.name.clone())
            .next_back()
    }

    /// A supervisor's listening channel on `call` is being originated as `spy`.
    pub fn expect_spy(&mut self, call: &str, supervisor: &str, spy: &str) {
        self.spies
            .insert((call.to_owned(), supervisor.to_owned()), spy.to_owned());
    }

    /// The supervisor's listening channel on `call`: (uniqueid, name), if it is up.
    pub fn spy(&self, call: &str, supervisor: &str) -> Option<(String, String)> {
        let id = self.spies.get(&(call.to_owned(), supervisor.to_owned()))?;
        let c = self.channels.get(id)?;
        Some((id.clone(), c.name.clone()))
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
        self.orphans.clear();
        self.spies.clear();
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
}

/// Local channels (`Local/2002@ctx-00000001;1`) are dialplan plumbing, not parties.
fn is_local(name: &str) -> bool {
    name.starts_with("Local/")
}
