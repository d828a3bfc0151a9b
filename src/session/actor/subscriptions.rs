//! Subscriptions and publishing: who gets which event, each subscription's sequence and
//! outbox, the spool's records of them, and the end of a subscription (told to SAP).

use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::config::OverflowPolicy;
use crate::domain::{AppUrl, UserId};
use crate::notify::{
    EndReason, Feedback, OutboundEvent, PushError, SpoolContents, SpoolOp, StoredSubscription,
};
use crate::switch::LegEvent;

use super::super::{EventKind, IciEvent, SessionError, Target, Wire};
use super::execute::{Step, done};
use super::{Actor, Subscription};

/// Why a subscription whose outbox overflowed ends (told to SAP in subscriptionEnded).
const OVERFLOW_REASON: &str = "event queue overflow";
/// Why an agent's IC session counts as lost when SAP unsubscribed its last subscription.
const UNSUBSCRIBED_REASON: &str = "SAP unsubscribed";
/// Why getAttributes ends the user's earlier subscriptions: SAP opened a new IC session.
pub(super) const NEW_SESSION_REASON: &str = "new session";

impl Actor {
    pub(super) fn subscribe(
        &mut self,
        target: Target,
        url: AppUrl,
        app_id: String,
    ) -> Result<Step, SessionError> {
        if let Target::User(user) = &target {
            self.ensure_agent(user)?;
        }
        let existing = self
            .sub_index
            .get(&sub_key(&target))
            .into_iter()
            .flatten()
            .copied()
            .find(|&i| self.subscriptions[i].target == target && self.subscriptions[i].url == url);
        if existing.is_some_and(|i| self.subscriptions[i].app_ids.contains(&app_id)) {
            return done();
        }
        self.check_subscription_caps(&target)?;
        if let Some(sub) = existing.map(|i| &mut self.subscriptions[i]) {
            sub.app_ids.push(app_id);
            let stored = stored(sub);
            self.notifier
                .spool()
                .record(SpoolOp::PutSubscription(stored));
            return done();
        }
        let id = self.next_id();
        info!(subscription = id, %target, %url, %app_id, "subscribed");
        let outbox = self.notifier.open(id, url.uri());
        let sub = Subscription {
            id,
            target,
            url,
            app_ids: vec![app_id],
            sequence: 0,
            outbox,
        };
        self.notifier
            .spool()
            .record(SpoolOp::PutSubscription(stored(&sub)));
        self.push_subscription(sub);
        done()
    }

    /// Refuses one more subscription for `target` past `[events]
    /// max_subscriptions_per_target`, or past `max_subscriptions` in total. A subscription
    /// is what SAP subscribed: one appId at one appURL (several share an outbox).
    fn check_subscription_caps(&self, target: &Target) -> Result<(), SessionError> {
        let events = &self.config.events;
        let total: usize = self.subscriptions.iter().map(|s| s.app_ids.len()).sum();
        if total >= events.max_subscriptions {
            crate::metrics::subscription_refused("max_subscriptions");
            warn!(
                %target,
                limit = events.max_subscriptions,
                "subscription refused: too many in total"
            );
            return Err(SessionError::TooManySubscriptions {
                limit: events.max_subscriptions,
            });
        }
        let mine: usize = self
            .sub_index
            .get(&sub_key(target))
            .into_iter()
            .flatten()
            .map(|&i| &self.subscriptions[i])
            .filter(|s| s.target == *target)
            .map(|s| s.app_ids.len())
            .sum();
        if mine >= events.max_subscriptions_per_target {
            crate::metrics::subscription_refused("max_subscriptions_per_target");
            warn!(
                %target,
                limit = events.max_subscriptions_per_target,
                "subscription refused: too many for this target"
            );
            return Err(SessionError::TooManySubscriptionsFor {
                target: target.to_string(),
                limit: events.max_subscriptions_per_target,
            });
        }
        Ok(())
    }

    /// Forgets a subscription here and on the spool (its outbox, if still held by the
    /// caller, delivers what is queued when dropped).
    fn forget_subscription(&mut self, id: u64) {
        self.subscriptions.retain(|s| s.id != id);
        self.reindex_subscriptions();
        self.notifier
            .spool()
            .record(SpoolOp::RemoveSubscription(id));
    }

    /// Re-creates the subscriptions, agent addresses and attached data the spool kept
    /// across a restart; undelivered events go out first, in order.
    pub(in crate::session) fn restore(&mut self, contents: SpoolContents) {
        self.attached.restore(contents.attached);
        for (user, extension) in contents.agents {
            let Ok(user) = UserId::parse(&user) else {
                continue;
            };
            if self.ensure_agent(&user).is_ok() {
                self.set_extension(&user, Some(extension));
            }
        }
        for (stored, events) in contents.subscriptions {
            let target = match stored.kind.as_str() {
                "user" => UserId::parse(&stored.target).ok().map(Target::User),
                _ => Some(Target::Container(stored.target.clone())),
            };
            let (Some(target), Ok(url)) = (target, AppUrl::parse(&stored.url)) else {
                warn!(
                    subscription = stored.id,
                    "unreadable subscription in the spool; dropped"
                );
                self.notifier
                    .spool()
                    .record(SpoolOp::RemoveSubscription(stored.id));
                continue;
            };
            let events: Vec<OutboundEvent> = events
                .into_iter()
                .filter_map(|e| {
                    let name = EventKind::from_name(&e.name)?.name();
                    Some(OutboundEvent {
                        name,
                        sequence: e.sequence,
                        user: e.user,
                        call: e.call,
                        body: e.body,
                    })
                })
                .collect();
            info!(subscription = stored.id, pending = events.len(), %url, "subscription restored");
            self.next_id = self.next_id.max(stored.id + 1);
            let outbox = self.notifier.open_with(stored.id, url.uri(), events);
            self.push_subscription(Subscription {
                id: stored.id,
                target,
                url,
                app_ids: stored.app_ids,
                sequence: stored.sequence,
                outbox,
            });
        }
    }

    fn push_subscription(&mut self, sub: Subscription) {
        self.sub_index
            .entry(sub_key(&sub.target))
            .or_default()
            .push(self.subscriptions.len());
        self.subscriptions.push(sub);
    }

    fn reindex_subscriptions(&mut self) {
        self.sub_index.clear();
        for (i, sub) in self.subscriptions.iter().enumerate() {
            self.sub_index
                .entry(sub_key(&sub.target))
                .or_default()
                .push(i);
        }
    }

    pub(super) fn unsubscribe(&mut self, target: &Target, url: &AppUrl, app_id: &str) {
        if let Some(pos) = self
            .subscriptions
            .iter()
            .position(|s| s.target == *target && s.url == *url)
        {
            let sub = &mut self.subscriptions[pos];
            sub.app_ids.retain(|a| a != app_id);
            if sub.app_ids.is_empty() {
                info!(subscription = sub.id, "unsubscribed");
                let id = sub.id;
                self.forget_subscription(id);
                self.subscription_lost(target, UNSUBSCRIBED_REASON);
            } else {
                let stored = stored(sub);
                self.notifier
                    .spool()
                    .record(SpoolOp::PutSubscription(stored));
            }
        }
    }

    /// Ends every subscription for `target`, telling SAP with subscriptionEnded.
    pub(super) fn end_subscriptions(&mut self, target: &Target, reason: &'static str) {
        if !self.sub_index.contains_key(&sub_key(target)) {
            return;
        }
        let (ending, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.subscriptions)
            .into_iter()
            .partition(|s| s.target == *target);
        self.subscriptions = keep;
        self.reindex_subscriptions();
        for mut sub in ending {
            info!(subscription = sub.id, %reason, "ending subscription");
            let user = match target {
                Target::User(u) => u.to_string(),
                Target::Container(c) => c.clone(),
            };
            let ended = IciEvent::SubscriptionEnded { reason };
            let event = event_for(self.wire, &mut sub, user, None, &ended);
            if let Err(e) = sub.outbox.push_final(event) {
                warn!(subscription = sub.id, error = %e, "subscriptionEnded not queued");
            }
            self.notifier
                .spool()
                .record(SpoolOp::RemoveSubscription(sub.id));
            // Dropping the outbox lets it deliver what is queued, subscriptionEnded last.
        }
    }

    pub(super) fn publish_call(&mut self, user: &UserId, leg: &Arc<LegEvent>) {
        let event = IciEvent::PhoneCallChanged(self.phone_call(user, leg));
        self.publish(user, Some(&leg.extension), Some(&leg.call), &event);
    }

    /// Queues an event on every subscription of this user (or its address). A full outbox
    /// ends that subscription: SAP must subscribe again and resynchronise with getCalls.
    pub(super) fn publish(
        &mut self,
        user: &UserId,
        extension: Option<&str>,
        call: Option<&str>,
        event: &IciEvent,
    ) {
        let name = event.kind().name();
        let wire = self.wire;
        let mut overflowed = Vec::new();
        let mut candidates: Vec<usize> = [
            Some(sub_key(&Target::User(user.clone()))),
            extension.map(container_key),
            Some(container_key(user.as_str())),
        ]
        .into_iter()
        .flatten()
        .filter_map(|key| self.sub_index.get(&key))
        .flatten()
        .copied()
        .collect();
        candidates.sort_unstable();
        candidates.dedup();
        for i in candidates {
            let sub = &mut self.subscriptions[i];
            let matches = match &sub.target {
                Target::User(u) => u == user,
                Target::Container(c) => {
                    Some(c.as_str()) == extension || c.eq_ignore_ascii_case(user.as_str())
                }
            };
            if !matches {
                continue;
            }
            let event = event_for(wire, sub, user.to_string(), call.map(str::to_string), event);
            let coalesce = self.config.events.overflow == OverflowPolicy::Coalesce;
            // A copy only where a full outbox may still take the event after coalescing.
            let retry = coalesce.then(|| event.clone());
            let result = match sub.outbox.push(event) {
                Err(PushError::Full) if let Some(event) = retry => {
                    match call.and_then(|c| sub.outbox.coalesce(name, c)) {
                        Some(dropped) => {
                            warn!(
                                subscription = sub.id,
                                dropped,
                                reason = "coalesced",
                                "event queue full: superseded call state dropped"
                            );
                            crate::metrics::events_dropped("coalesced", 1);
                            sub.outbox.push(event)
                        }
                        None => Err(PushError::Full),
                    }
                }
                other => other,
            };
            match result {
                Ok(()) => {}
                Err(PushError::Full) => {
                    crate::metrics::events_dropped("overflow", 1);
                    overflowed.push(sub.id)
                }
                Err(PushError::Closed) => debug!(subscription = sub.id, "outbox closed"),
            }
        }
        for id in overflowed {
            warn!(
                subscription = id,
                reason = "overflow",
                "event queue full: ending the subscription"
            );
            let mut target = None;
            if let Some(sub) = self.subscriptions.iter_mut().find(|s| s.id == id) {
                let ended = IciEvent::SubscriptionEnded {
                    reason: OVERFLOW_REASON,
                };
                let ended = event_for(wire, sub, user.to_string(), None, &ended);
                let _ = sub.outbox.push_final(ended);
                target = Some(sub.target.clone());
            }
            self.forget_subscription(id);
            if let Some(target) = target {
                self.subscription_lost(&target, OVERFLOW_REASON);
            }
        }
    }

    pub(super) fn on_feedback(&mut self, feedback: Feedback) {
        match feedback {
            Feedback::Ended { id, reason } => {
                let target = self
                    .subscriptions
                    .iter()
                    .find(|s| s.id == id)
                    .map(|s| s.target.clone());
                match &reason {
                    EndReason::SessionGone { status } => {
                        info!(
                            subscription = id,
                            status, "SAP session gone; subscription ended"
                        )
                    }
                    other => warn!(subscription = id, reason = %other, "subscription ended"),
                }
                self.forget_subscription(id);
                if let Some(target) = target {
                    self.subscription_lost(&target, &reason.to_string());
                }
            }
        }
    }
}

/// The `sub_index` key of a subscription target. Containers match an extension exactly or
/// a user id in any case, so their key is lower case (a superset; matches are re-checked).
fn sub_key(target: &Target) -> String {
    match target {
        Target::User(user) => format!("u:{user}"),
        Target::Container(container) => container_key(container),
    }
}

fn container_key(container: &str) -> String {
    format!("c:{}", container.to_ascii_lowercase())
}

/// The stored form of a subscription.
fn stored(sub: &Subscription) -> StoredSubscription {
    let (kind, target) = match &sub.target {
        Target::User(u) => ("user", u.to_string()),
        Target::Container(c) => ("container", c.clone()),
    };
    StoredSubscription {
        id: sub.id,
        kind: kind.to_string(),
        target,
        url: sub.url.to_string(),
        app_ids: sub.app_ids.clone(),
        sequence: sub.sequence,
    }
}

/// Builds one event for a subscription: next sequence number, its app ids, the envelope
/// the wire layer writes.
fn event_for(
    wire: Wire,
    sub: &mut Subscription,
    user: String,
    call: Option<String>,
    event: &IciEvent,
) -> OutboundEvent {
    sub.sequence += 1;
    OutboundEvent {
        name: event.kind().name(),
        sequence: sub.sequence,
        user,
        call,
        body: (wire.event)(event, &sub.app_ids, sub.sequence),
    }
}
