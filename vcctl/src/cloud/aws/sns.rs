//! The stack's alert topic (`alerts: {email: ...}`): one SNS topic, tagged with the stack,
//! subscribed by the stack's email, the action of every alarm. AWS sends the address a
//! confirmation first; `status` says whether it was confirmed.

use anyhow::{Context, Result};
use aws_sdk_sns::Client;
use aws_sdk_sns::types::Tag;
use serde::Serialize;

use super::{Owner, Stamp, error};

/// What AWS calls a subscription the address has not confirmed yet.
const PENDING: &str = "PendingConfirmation";

#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    pub protocol: String,
    pub endpoint: String,
    /// `None` until the address confirms it.
    pub arn: Option<String>,
}

impl Subscription {
    pub fn confirmed(&self) -> bool {
        self.arn.is_some()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Topic {
    pub arn: String,
    pub subscriptions: Vec<Subscription>,
    #[serde(skip)]
    pub owner: Owner,
}

/// The topic's ARN: known before it exists, so alarms can name it in a plan.
pub fn arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:sns:{region}:{account}:{name}")
}

/// The topic at `arn`, with its subscriptions and tags, if it exists.
pub async fn find(sns: &Client, arn: &str) -> Result<Option<Topic>> {
    let attrs = sns.get_topic_attributes().topic_arn(arn).send().await;
    match attrs {
        Ok(_) => {}
        Err(e) if super::code_of(&e).is_some_and(|c| c == "NotFound" || c == "NotFoundException") => return Ok(None),
        Err(e) => return Err(error("sns:GetTopicAttributes", &format!("looking up topic {arn}"), e)),
    }
    let tags = sns
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| error("sns:ListTagsForResource", &format!("reading the tags of {arn}"), e))?;
    let owner = Owner::from_tags(tags.tags().iter().map(|t| (Some(t.key()), Some(t.value()))));
    Ok(Some(Topic { arn: arn.to_string(), subscriptions: subscriptions(sns, arn).await?, owner }))
}

async fn subscriptions(sns: &Client, arn: &str) -> Result<Vec<Subscription>> {
    let mut out = Vec::new();
    let mut pages = sns.list_subscriptions_by_topic().topic_arn(arn).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| error("sns:ListSubscriptionsByTopic", &format!("listing who {arn} alerts"), e))?;
        for s in page.subscriptions() {
            out.push(Subscription {
                protocol: s.protocol().unwrap_or_default().to_string(),
                endpoint: s.endpoint().unwrap_or_default().to_string(),
                arn: s.subscription_arn().filter(|a| *a != PENDING && a.starts_with("arn:")).map(str::to_string),
            });
        }
    }
    Ok(out)
}

/// The stack's tags, as SNS takes them.
fn tags(stamp: &Stamp) -> Result<Vec<Tag>> {
    Ok(stamp.pairs().iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect::<Result<_, _>>()?)
}

pub async fn create(sns: &Client, name: &str, stamp: &Stamp) -> Result<String> {
    let tags = tags(stamp)?;
    let out = sns
        .create_topic()
        .name(name)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| error("sns:CreateTopic", &format!("creating topic `{name}`"), e))?;
    out.topic_arn().map(str::to_string).context("CreateTopic returned no ARN")
}

/// Puts the stack's tags on a topic an older vcctl made.
pub async fn tag(sns: &Client, arn: &str, stamp: &Stamp) -> Result<()> {
    let tags = tags(stamp)?;
    sns.tag_resource()
        .resource_arn(arn)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| error("sns:TagResource", &format!("tagging topic {arn}"), e))?;
    Ok(())
}

/// Subscribes `email`; AWS mails it a confirmation link.
pub async fn subscribe(sns: &Client, arn: &str, email: &str) -> Result<()> {
    sns.subscribe()
        .topic_arn(arn)
        .protocol("email")
        .endpoint(email)
        .send()
        .await
        .map_err(|e| error("sns:Subscribe", &format!("subscribing {email} to {arn}"), e))?;
    Ok(())
}

pub async fn unsubscribe(sns: &Client, subscription_arn: &str) -> Result<()> {
    sns.unsubscribe()
        .subscription_arn(subscription_arn)
        .send()
        .await
        .map_err(|e| error("sns:Unsubscribe", &format!("removing subscription {subscription_arn}"), e))?;
    Ok(())
}

/// Deletes the topic and, with it, its subscriptions.
pub async fn delete(sns: &Client, arn: &str) -> Result<()> {
    sns.delete_topic()
        .topic_arn(arn)
        .send()
        .await
        .map_err(|e| error("sns:DeleteTopic", &format!("deleting topic {arn}"), e))?;
    Ok(())
}

/// Publishes one message (`subject`: at most 100 characters, as SNS takes).
pub async fn publish(sns: &Client, arn: &str, subject: &str, message: &str) -> Result<()> {
    let subject: String = subject.chars().filter(|c| !c.is_control()).take(100).collect();
    sns.publish()
        .topic_arn(arn)
        .subject(subject)
        .message(message)
        .send()
        .await
        .map_err(|e| error("sns:Publish", &format!("publishing to {arn}"), e))?;
    Ok(())
}
