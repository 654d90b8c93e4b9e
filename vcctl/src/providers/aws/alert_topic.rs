//! A stack's alert topic, the same way in both AWS shapes: an SNS topic subscribed by the
//! stack's `alerts.email` and by no one else (a subscription the stack no longer names is
//! removed), and no topic without `alerts:`. Planned into `Change<TopicOp>` and applied op by
//! op.

use anyhow::Result;

use crate::cloud::aws::Stamp;
use crate::cloud::aws::sns::{self, Topic};
use crate::plan::{Action, Change};

#[derive(Debug, Clone, PartialEq)]
pub enum TopicOp {
    Create,
    Subscribe(String),
    /// A subscription, by its ARN.
    Unsubscribe(String),
    /// The topic, by its ARN.
    Delete(String),
}

impl TopicOp {
    /// A stable name, for fault injection in tests.
    pub fn name(&self) -> &'static str {
        match self {
            TopicOp::Create => "topic",
            TopicOp::Subscribe(_) => "subscribe",
            TopicOp::Unsubscribe(_) => "unsubscribe",
            TopicOp::Delete(_) => "delete_topic",
        }
    }
}

/// The changes that make the topic at `arn` what `email` says, in the order they apply.
pub fn plan(arn: &str, email: Option<&str>, found: Option<&Topic>) -> Vec<Change<TopicOp>> {
    let change = |action, resource: String, detail: String, op| Change { action, resource, detail, op };
    let Some(email) = email else {
        return found
            .map(|t| {
                let detail = "no `alerts:` in the stack file".to_string();
                change(Action::Delete, format!("alert topic {}", t.arn), detail, TopicOp::Delete(t.arn.clone()))
            })
            .into_iter()
            .collect();
    };
    let mut out = Vec::new();
    if found.is_none() {
        let detail = "SNS, the action of every alarm".to_string();
        out.push(change(Action::Create, format!("alert topic {arn}"), detail, TopicOp::Create));
    }
    let subs = found.map_or(&[][..], |t| t.subscriptions.as_slice());
    if !subs.iter().any(|s| s.protocol == "email" && s.endpoint == email) {
        let detail = format!("{email} (AWS mails a confirmation link first)");
        out.push(change(Action::Create, "alert subscription".into(), detail, TopicOp::Subscribe(email.into())));
    }
    for s in subs.iter().filter(|s| s.endpoint != email) {
        // A pending subscription has no ARN to remove by; it lapses by itself in 3 days.
        if let Some(sub) = &s.arn {
            let detail = format!("{} {}: not in the stack file", s.protocol, s.endpoint);
            out.push(change(Action::Delete, "alert subscription".into(), detail, TopicOp::Unsubscribe(sub.clone())));
        }
    }
    out
}

/// Carries out one planned operation on the topic `name` at `arn`.
pub async fn apply(client: &aws_sdk_sns::Client, name: &str, arn: &str, op: &TopicOp, stamp: &Stamp) -> Result<()> {
    match op {
        TopicOp::Create => sns::create(client, name, stamp).await.map(|_| ()),
        TopicOp::Subscribe(email) => sns::subscribe(client, arn, email).await,
        TopicOp::Unsubscribe(sub) => sns::unsubscribe(client, sub).await,
        TopicOp::Delete(topic) => sns::delete(client, topic).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::sns::Subscription;

    fn topic(subs: &[(&str, Option<&str>)]) -> Topic {
        let subscriptions = subs
            .iter()
            .map(|(e, arn)| Subscription {
                protocol: "email".into(),
                endpoint: e.to_string(),
                arn: arn.map(str::to_string),
            })
            .collect();
        Topic { arn: "arn:t".into(), subscriptions, owner: Default::default() }
    }

    fn ops(changes: Vec<Change<TopicOp>>) -> Vec<TopicOp> {
        changes.into_iter().map(|c| c.op).collect()
    }

    #[test]
    fn one_subscriber_the_stacks_and_no_topic_without_alerts() {
        assert_eq!(ops(plan("arn:t", Some("a@x.eu"), None)), [TopicOp::Create, TopicOp::Subscribe("a@x.eu".into())]);
        assert!(plan("arn:t", Some("a@x.eu"), Some(&topic(&[("a@x.eu", Some("s1"))]))).is_empty());
        // The address changed: the new one subscribed, the old removed (a pending one lapses).
        let moved = topic(&[("old@x.eu", Some("s1")), ("pending@x.eu", None)]);
        assert_eq!(
            ops(plan("arn:t", Some("a@x.eu"), Some(&moved))),
            [TopicOp::Subscribe("a@x.eu".into()), TopicOp::Unsubscribe("s1".into())]
        );
        assert_eq!(ops(plan("arn:t", None, Some(&moved))), [TopicOp::Delete("arn:t".into())]);
        assert!(plan("arn:t", None, None).is_empty());
    }
}
