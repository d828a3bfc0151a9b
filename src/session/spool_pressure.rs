//! The session manager under a disk slower than the switch: it waits for room in the
//! spool's bounded queue between messages, so the queue stays within its bound plus one
//! message's changes, and every event the switch reported is on disk, in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::Config;
use crate::domain::{AppUrl, AttachedData, UserId};
use crate::notify::spool::{SpoolError, SpoolStore};
use crate::notify::{Notifier, NotifierSettings, Spool, SpoolContents, SpoolOp};
use crate::switch::{AgentState, EventSink, SwitchEvent};

use super::{FEEDBACK_QUEUE, Operation, Parts, Target, Wire};

/// The spool writer's queue in this test: small, so the switch outruns it at once.
const BOUND: usize = 4;
/// Agent state changes the switch reports, each one `workmodeChanged` for one subscription.
const CHANGES: usize = 200;
/// What one commit costs on the slow disk.
const SLOW_COMMIT: Duration = Duration::from_millis(2);

/// A store whose commits take [`SLOW_COMMIT`], keeping what it was given.
struct Slow(Arc<Mutex<Vec<SpoolOp>>>);

impl SpoolStore for Slow {
    fn apply(&mut self, ops: &[SpoolOp]) -> Result<(), SpoolError> {
        std::thread::sleep(SLOW_COMMIT);
        self.0.lock().unwrap().extend_from_slice(ops);
        Ok(())
    }
    fn load(&mut self) -> Result<SpoolContents, SpoolError> {
        Ok(SpoolContents::default())
    }
}

/// Envelopes that say only which event they are.
const WIRE: Wire = Wire {
    event: |event, _, sequence| format!("{:?} #{sequence}", event.kind()),
    attached_data: |_| Ok(AttachedData::default()),
    attached_document: |_| String::new(),
};

#[tokio::test]
async fn a_slow_disk_slows_the_session_manager_and_loses_nothing() {
    let applied = Arc::new(Mutex::new(Vec::new()));
    let (spool, _) = Spool::start_bounded(Slow(Arc::clone(&applied)), BOUND).unwrap();
    let (feedback_tx, feedback) = mpsc::channel(FEEDBACK_QUEUE);
    let notifier = Notifier::with_spool(NotifierSettings::default(), feedback_tx, spool.clone());
    let config = Arc::new(Config::default());
    let (sim_events, _sim_events) = mpsc::channel(1);
    let (switch, _control) = crate::switch::sim::start(
        crate::switch::sim::SimSettings {
            extensions: config.switch.sim.extensions.clone(),
            queues: Vec::new(),
            remote_answer_after: None,
        },
        EventSink::new(sim_events),
    );
    // The switch events come from this test, not from the simulator.
    let (switch_tx, switch_events) = mpsc::channel(super::SWITCH_EVENT_QUEUE);
    let (session, task) = super::start(Parts {
        config,
        switch: Arc::new(switch),
        switch_events,
        notifier,
        feedback,
        restored: SpoolContents::default(),
        wire: WIRE,
    });
    let user = UserId::parse("A1").unwrap();
    session
        .execute(
            Operation::SetAddresses {
                user: user.clone(),
                addresses: vec!["2001".into()],
            },
            None,
        )
        .await
        .unwrap();
    session
        .execute(
            Operation::Subscribe {
                target: Target::User(user.clone()),
                // Nothing listens there: the events stay queued, which is all this needs.
                url: AppUrl::parse("http://127.0.0.1:9/sap").unwrap(),
                app_id: "IC-1".into(),
            },
            None,
        )
        .await
        .unwrap();

    for n in 0..CHANGES {
        let state = match n % 2 {
            0 => AgentState::NotReady { reason: None },
            _ => AgentState::Ready,
        };
        let event = SwitchEvent::Agent {
            extension: "2001".into(),
            state,
        };
        switch_tx.send(event).await.unwrap();
    }
    // Answered once the actor has taken every switch event (it takes them first).
    session
        .execute(Operation::GetAttributes { user }, None)
        .await
        .unwrap();
    spool.committed(spool.last_queued()).await;

    let (_, high_water) = spool.queue_depth();
    assert!(
        (BOUND..=BOUND + 1).contains(&high_water),
        "the queue filled and held at most one message past its bound: {high_water}"
    );
    let sequences: Vec<u64> = applied
        .lock()
        .unwrap()
        .iter()
        .filter_map(|op| match op {
            SpoolOp::Append(_, event) if event.name == "workmodeChanged" => Some(event.sequence),
            _ => None,
        })
        .collect();
    assert_eq!(
        sequences,
        (1..=CHANGES as u64).collect::<Vec<_>>(),
        "every event on disk, in order"
    );
    drop(session);
    task.await.unwrap();
}
