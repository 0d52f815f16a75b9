//! The parts of the SQS API a user's code meets besides sending and receiving: permissions
//! and the `Policy` they maintain, tags, and which attributes a receive returns. Through the
//! real `aws-sdk-sqs` client; each rule cites its reference page:
//! - AddPermission / RemovePermission:
//!   <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_AddPermission.html>;
//! - tag quotas: <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-queues.html>;
//! - MessageAttributeNames and MessageSystemAttributeNames:
//!   <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html>.

use std::collections::HashMap;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};

use super::sqs::Emulator;

#[tokio::test]
async fn permissions_maintain_the_queue_policy() {
    let emu = Emulator::start().await;
    let url = emu.create("shared", &[]).await;
    emu.client
        .add_permission()
        .queue_url(&url)
        .label("PartnerSend")
        .aws_account_ids("111122223333")
        .actions("SendMessage")
        .send()
        .await
        .unwrap();
    emu.client
        .add_permission()
        .queue_url(&url)
        .label("PartnerRead")
        .aws_account_ids("111122223333")
        .aws_account_ids("444455556666")
        .actions("ReceiveMessage")
        .actions("DeleteMessage")
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value =
        serde_json::from_str(&emu.attribute(&url, QueueAttributeName::Policy).await).unwrap();
    let sids: Vec<_> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sids, ["PartnerSend", "PartnerRead"]);
    assert_eq!(
        policy["Statement"][1]["Action"],
        serde_json::json!(["SQS:ReceiveMessage", "SQS:DeleteMessage"])
    );

    let add = |label: &str, account: &str, actions: &[&str]| {
        let mut request = emu
            .client
            .add_permission()
            .queue_url(&url)
            .label(label)
            .aws_account_ids(account);
        for action in actions {
            request = request.actions(*action);
        }
        request.send()
    };
    for (result, code, text) in [
        (
            add("PartnerSend", "111122223333", &["SendMessage"]).await,
            "InvalidParameterValue",
            "Reason: Already exists.",
        ),
        (
            add("Owner", "111122223333", &["SetQueueAttributes"]).await,
            "InvalidParameterValue",
            "Only the queue owner is allowed to invoke this action.",
        ),
        (
            add("Many", "111122223333", &["SendMessage"; 8]).await,
            "OverLimit",
            "8 Actions were found, maximum allowed is 7.",
        ),
        (
            add("bad label", "111122223333", &["SendMessage"]).await,
            "InvalidParameterValue",
            "parameter Label",
        ),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.code(), Some(code), "{err:?}");
        assert!(err.message().unwrap().contains(text), "{err:?}");
    }

    emu.client
        .remove_permission()
        .queue_url(&url)
        .label("PartnerSend")
        .send()
        .await
        .unwrap();
    let err = emu
        .client
        .remove_permission()
        .queue_url(&url)
        .label("PartnerSend")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.message()
            .unwrap()
            .contains("can't find label on existing policy."),
        "{err:?}"
    );
    emu.client
        .remove_permission()
        .queue_url(&url)
        .label("PartnerRead")
        .send()
        .await
        .unwrap();
    let attributes = emu.all_attributes(&url).await;
    assert!(!attributes.contains_key(&QueueAttributeName::Policy));
}

#[tokio::test]
async fn tags_are_validated_and_nothing_changes_on_a_refusal() {
    let emu = Emulator::start().await;
    let url = emu.create("tagged", &[]).await;
    emu.client
        .tag_queue()
        .queue_url(&url)
        .tags("team", "jobs")
        .send()
        .await
        .unwrap();
    let err = emu
        .client
        .tag_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("MissingParameter"));
    let many: HashMap<String, String> = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
    let err = emu
        .client
        .tag_queue()
        .queue_url(&url)
        .set_tags(Some(many))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.message(), Some("Too many tags added for queue tagged."));
    let err = emu
        .client
        .tag_queue()
        .queue_url(&url)
        .tags("k".repeat(129), "v")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    let err = emu
        .client
        .untag_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    let tags = emu
        .client
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(
        tags,
        HashMap::from([("team".to_string(), "jobs".to_string())])
    );
    // Tags on CreateQueue follow the same rules.
    let err = emu
        .client
        .create_queue()
        .queue_name("over")
        .tags("", "v")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
}

#[tokio::test]
async fn receive_returns_the_attributes_asked_for_by_name_prefix_or_all() {
    let emu = Emulator::start().await;
    let url = emu.create("attrs", &[]).await;
    let string = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
    emu.client
        .send_message()
        .queue_url(&url)
        .message_body("b")
        .message_attributes("Custom.a", string("1"))
        .message_attributes("Custom.b", string("2"))
        .message_attributes("Custom", string("3"))
        .message_attributes("Other", string("4"))
        .send()
        .await
        .unwrap();
    let receive = |names: &[&str], system: &[MessageSystemAttributeName]| {
        let mut request = emu
            .client
            .receive_message()
            .queue_url(&url)
            .visibility_timeout(0);
        for n in names {
            request = request.message_attribute_names(*n);
        }
        for s in system {
            request = request.message_system_attribute_names(s.clone());
        }
        request.send()
    };
    let keys = |out: aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput| {
        let m = out.messages.unwrap().remove(0);
        let mut user: Vec<String> = m
            .message_attributes
            .unwrap_or_default()
            .into_keys()
            .collect();
        user.sort();
        let mut system: Vec<String> = m
            .attributes
            .unwrap_or_default()
            .into_keys()
            .map(|k| k.as_str().to_string())
            .collect();
        system.sort();
        (user, system)
    };
    // "bar.baz.*" returns the attributes starting with "bar.baz."; not "Custom" itself.
    let (user, system) = keys(receive(&["Custom.*"], &[]).await.unwrap());
    assert_eq!(user, ["Custom.a", "Custom.b"]);
    assert!(system.is_empty());
    let (user, _) = keys(receive(&[".*"], &[]).await.unwrap());
    assert_eq!(user.len(), 4);
    let (user, _) = keys(receive(&["Other", "Custom"], &[]).await.unwrap());
    assert_eq!(user, ["Custom", "Other"]);
    let (_, system) = keys(
        receive(
            &[],
            &[
                MessageSystemAttributeName::SenderId,
                MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
            ],
        )
        .await
        .unwrap(),
    );
    assert_eq!(system, ["ApproximateFirstReceiveTimestamp", "SenderId"]);
    let (_, system) = keys(
        receive(&[], &[MessageSystemAttributeName::All])
            .await
            .unwrap(),
    );
    for expected in [
        "ApproximateFirstReceiveTimestamp",
        "ApproximateReceiveCount",
        "SenderId",
        "SentTimestamp",
    ] {
        assert!(
            system.iter().any(|s| s == expected),
            "{expected} in {system:?}"
        );
    }
}
