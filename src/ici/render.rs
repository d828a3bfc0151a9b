//! Rendering the session manager's typed answers and events into SOAP values and event
//! envelopes: the field names and order are the catalog's types (`TYPES`), checked below.

use crate::session::{
    Answer, AttributesView, IciEvent, PhoneCallView, PresenceQueueView, ReasonView, Wire,
    WorkmodeView,
};
use crate::soap::{self, Value};

use super::attached;
use super::catalog::Interface;

/// What the session manager is given to write events and read switch attached data.
pub const WIRE: Wire = Wire {
    event,
    attached_data: attached::parse,
    attached_document: attached::document,
};

/// The `<return>` of an operation's response; `None` for an empty response.
pub fn answer(answer: Answer) -> Option<Value> {
    Some(match answer {
        Answer::Done => return None,
        Answer::WorkcenterCapability(on) => Value::Bool(on),
        Answer::PresenceQueues(queues) => {
            Value::List(queues.into_iter().map(presence_queue).collect())
        }
        Answer::Attributes(view) => attributes(*view),
        Answer::Id(id) => Value::Text(id),
        Answer::AttachedData(data) => Value::Text(attached::document(&data)),
        Answer::Calls(calls) => Value::List(calls.iter().map(phone_call).collect()),
        Answer::Call(call) => phone_call(&call),
    })
}

/// The envelope of one event for one subscription (catalog operations of the Event
/// interface): its app ids and sequence number first, then the event's own parameters.
pub fn event(event: &IciEvent, app_ids: &[String], sequence: u64) -> String {
    let app_ids = ("appIds", Value::text_list(app_ids.iter().cloned()));
    let sequence = ("sequence", Value::Int(sequence as i64));
    let params = match event {
        IciEvent::PhoneCallChanged(call) => vec![
            app_ids,
            sequence,
            ("phoneCall", phone_call(call)),
            ("attachedData", attached_document(call)),
        ],
        IciEvent::WorkmodeChanged {
            user,
            workmode,
            reason,
        } => vec![
            app_ids,
            sequence,
            ("userId", Value::text(user.as_str())),
            ("workmode", Value::Int(workmode.0.into())),
            ("reason", Value::opt_text(reason.as_deref())),
        ],
        IciEvent::SubscriptionEnded { reason } => {
            vec![app_ids, sequence, ("reason", Value::text(*reason))]
        }
    };
    soap::write_call(Interface::Event.namespace(), event.kind().name(), &params)
}

/// The `PhoneCall` structure.
pub fn phone_call(call: &PhoneCallView) -> Value {
    let leg = &call.leg;
    Value::Struct(vec![
        ("callId", Value::text(leg.call.as_str())),
        ("containerId", Value::text(leg.extension.as_str())),
        ("userId", Value::text(call.user.as_str())),
        ("state", Value::text(leg.state.as_str())),
        ("direction", Value::text(leg.direction.as_str())),
        ("remoteAddress", Value::opt_text(call.remote.as_deref())),
        (
            "remoteAddressRaw",
            Value::opt_text(call.remote_raw.as_deref()),
        ),
        ("dialedAddress", Value::opt_text(call.dialed.as_deref())),
        (
            "dialedAddressRaw",
            Value::opt_text(call.dialed_raw.as_deref()),
        ),
        ("queue", Value::opt_text(leg.queue.as_deref())),
        (
            "parties",
            Value::text_list(leg.parties.iter().map(String::as_str)),
        ),
        ("attachedData", attached_document(call)),
        ("reason", Value::opt_text(leg.cause.as_deref())),
    ])
}

/// A call's attached data document, nil when it has none.
fn attached_document(call: &PhoneCallView) -> Value {
    Value::opt_text(call.attached.as_deref().map(attached::document))
}

/// The `UserAttributes` structure.
fn attributes(view: AttributesView) -> Value {
    Value::Struct(vec![
        ("userId", Value::text(view.user.as_str())),
        ("channels", Value::text_list(view.channels)),
        ("currentChannels", Value::text_list(view.current_channels)),
        ("queues", Value::text_list(view.queues)),
        ("currentQueues", Value::text_list(view.current_queues)),
        (
            "workmodes",
            Value::List(view.workmodes.into_iter().map(workmode).collect()),
        ),
        (
            "currentWorkmode",
            Value::Int(view.current_workmode.0.into()),
        ),
        (
            "reasons",
            Value::List(view.reasons.into_iter().map(reason).collect()),
        ),
        ("addresses", Value::text_list(view.addresses)),
        (
            "workcenterCapability",
            Value::Bool(view.workcenter_capability),
        ),
        ("maxInteractions", Value::Int(view.max_interactions as i64)),
        ("capabilities", Value::text_list(view.capabilities)),
    ])
}

/// The `Workmode` structure.
fn workmode(view: WorkmodeView) -> Value {
    Value::Struct(vec![
        ("id", Value::Int(view.id.into())),
        ("text", Value::Text(view.text)),
        ("selectable", Value::Bool(view.selectable)),
    ])
}

/// The `Reason` structure.
fn reason(view: ReasonView) -> Value {
    Value::Struct(vec![
        ("code", Value::Text(view.code)),
        ("text", Value::Text(view.text)),
    ])
}

/// The `PresenceQueue` structure.
fn presence_queue(view: PresenceQueueView) -> Value {
    Value::Struct(vec![
        ("queue", Value::Text(view.queue)),
        ("channel", Value::Text(view.channel)),
        ("waiting", Value::Int(view.waiting as i64)),
        ("agentsReady", Value::Int(view.agents_ready as i64)),
    ])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{AttachedData, UserId, Workmode};
    use crate::ici::catalog::{self, Kind, OPERATIONS};
    use crate::soap::parse_request;
    use crate::switch::{Direction, LegEvent, LegState};

    fn call() -> PhoneCallView {
        let mut data = AttachedData::default();
        data.set("IVR".into(), r#"<Application id="IVR"/>"#.into());
        PhoneCallView {
            user: UserId::parse("A1").unwrap(),
            leg: Arc::new(LegEvent {
                call: "c1".into(),
                extension: "2001".into(),
                state: LegState::Alerting,
                direction: Direction::Inbound,
                queue: Some("support".into()),
                parties: vec!["555".into()],
                attributes: Default::default(),
                correlation: None,
                cause: None,
            }),
            remote: Some("+555".into()),
            remote_raw: Some("555".into()),
            dialed: None,
            dialed_raw: None,
            attached: Some(Arc::new(data)),
        }
    }

    fn attributes_view() -> AttributesView {
        AttributesView {
            user: UserId::parse("A1").unwrap(),
            channels: vec!["phone".into()],
            current_channels: vec![],
            queues: vec![],
            current_queues: vec![],
            workmodes: vec![WorkmodeView {
                id: 2,
                text: "Ready".into(),
                selectable: true,
            }],
            current_workmode: Workmode::READY,
            reasons: vec![ReasonView {
                code: "BRK".into(),
                text: "Break".into(),
            }],
            addresses: vec!["2001".into()],
            workcenter_capability: false,
            max_interactions: 6,
            capabilities: vec!["hold"],
        }
    }

    /// The field names of a rendered structure.
    fn fields(value: &Value) -> Vec<&'static str> {
        match value {
            Value::Struct(fields) => fields.iter().map(|(name, _)| *name).collect(),
            other => panic!("not a structure: {other:?}"),
        }
    }

    fn catalog_fields(name: &str) -> Vec<&'static str> {
        catalog::type_spec(name)
            .unwrap_or_else(|| panic!("{name} is not in the catalog"))
            .fields
            .iter()
            .map(|(field, _)| *field)
            .collect()
    }

    #[test]
    fn structures_have_the_catalog_fields_in_order() {
        let presence = PresenceQueueView {
            queue: "support".into(),
            channel: "phone".into(),
            waiting: 1,
            agents_ready: 0,
        };
        let samples = [
            ("PhoneCall", phone_call(&call())),
            ("UserAttributes", attributes(attributes_view())),
            ("Workmode", workmode(attributes_view().workmodes.remove(0))),
            ("Reason", reason(attributes_view().reasons.remove(0))),
            ("PresenceQueue", presence_queue(presence)),
        ];
        for (name, value) in samples {
            assert_eq!(fields(&value), catalog_fields(name), "{name}");
        }
    }

    #[test]
    fn events_have_the_catalog_parameters_in_order() {
        let events = [
            IciEvent::PhoneCallChanged(call()),
            IciEvent::WorkmodeChanged {
                user: UserId::parse("A1").unwrap(),
                workmode: Workmode::NOT_READY,
                reason: None,
            },
            IciEvent::SubscriptionEnded {
                reason: "new session",
            },
        ];
        for ici_event in events {
            let xml = event(&ici_event, &["app".into()], 7);
            let request = parse_request(xml.as_bytes()).expect("an envelope");
            let spec = OPERATIONS
                .iter()
                .find(|o| o.kind == Kind::Event(ici_event.kind()))
                .expect("every event is in the catalog");
            assert_eq!(request.operation_name(), spec.name);
            assert_eq!(request.namespace(), Some(Interface::Event.namespace()));
            let params: Vec<&str> = request
                .operation
                .children
                .iter()
                .map(|e| e.name.as_str())
                .collect();
            let expected: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
            assert_eq!(params, expected, "{}", spec.name);
        }
    }

    #[test]
    fn a_phone_call_event_carries_the_attached_data_twice() {
        let xml = event(&IciEvent::PhoneCallChanged(call()), &["app".into()], 1);
        let document = "&lt;ItemAttachedData&gt;&lt;Application id=&quot;IVR&quot;/&gt;\
                        &lt;/ItemAttachedData&gt;";
        assert_eq!(xml.matches(document).count(), 2, "{xml}");
        assert!(xml.contains("<sequence>1</sequence>"), "{xml}");
        assert!(xml.contains("<appIds><item>app</item></appIds>"), "{xml}");
    }

    #[test]
    fn answers_render_as_before() {
        assert_eq!(answer(Answer::Done), None);
        assert_eq!(
            answer(Answer::Id("item-1".into())),
            Some(Value::text("item-1"))
        );
        assert_eq!(
            answer(Answer::AttachedData(Arc::default())),
            Some(Value::text("<ItemAttachedData></ItemAttachedData>"))
        );
        assert_eq!(
            answer(Answer::WorkcenterCapability(true)),
            Some(Value::Bool(true))
        );
    }
}
