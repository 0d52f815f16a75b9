//! The `Policy` attribute that AddPermission and RemovePermission maintain: one statement per
//! label, as the AddPermission reference describes it,
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_AddPermission.html>.
//! Permissions are kept, shown and journaled; they are not enforced (every caller is the
//! queue's owner here).

use serde_json::{Value, json};

use super::error::SqsError;

/// "An Amazon SQS policy can have a maximum of seven actions per statement."
pub const MAX_ACTIONS: usize = 7;

/// Actions a permission may grant: the shared-queue actions of the SQS API permissions
/// reference
/// (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html>);
/// `SendMessage`, `DeleteMessage` and `ChangeMessageVisibility` also cover their batch forms.
const SHARED_ACTIONS: &[&str] = &[
    "*",
    "ChangeMessageVisibility",
    "DeleteMessage",
    "GetQueueAttributes",
    "GetQueueUrl",
    "ListDeadLetterSourceQueues",
    "PurgeQueue",
    "ReceiveMessage",
    "SendMessage",
];

/// Actions only the queue's owner may perform: refused in a permission.
const OWNER_ACTIONS: &[&str] = &[
    "AddPermission",
    "CreateQueue",
    "DeleteQueue",
    "ListQueues",
    "ListQueueTags",
    "RemovePermission",
    "SetQueueAttributes",
    "TagQueue",
    "UntagQueue",
];

/// The policy after adding a statement `label` granting `actions` to `accounts`, on the queue
/// `queue_arn` whose current policy is `current`. Nothing changes when any part is invalid.
pub fn add(
    current: Option<&str>,
    queue_arn: &str,
    label: &str,
    accounts: &[String],
    actions: &[String],
) -> Result<String, SqsError> {
    if label.is_empty() {
        return Err(SqsError::MissingParameter(
            "The request must contain the parameter Label.".to_string(),
        ));
    }
    let valid_label = label.len() <= 80
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_label {
        return Err(SqsError::invalid_value(
            "Label",
            label,
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length.",
        ));
    }
    if accounts.is_empty() {
        return Err(SqsError::MissingParameter(
            "The request must contain the parameter AWSAccountIds.".to_string(),
        ));
    }
    if actions.is_empty() {
        return Err(SqsError::MissingParameter(
            "The request must contain the parameter Actions.".to_string(),
        ));
    }
    if actions.len() > MAX_ACTIONS {
        return Err(SqsError::OverLimit(format!(
            "{} Actions were found, maximum allowed is {MAX_ACTIONS}.",
            actions.len()
        )));
    }
    for action in actions {
        let reason = if OWNER_ACTIONS.contains(&action.as_str()) {
            "Only the queue owner is allowed to invoke this action."
        } else if SHARED_ACTIONS.contains(&action.as_str()) {
            continue;
        } else {
            "Please refer to the appropriate WSDL for a list of valid actions."
        };
        return Err(SqsError::invalid_value(
            "ActionName",
            format!("SQS:{action}"),
            reason,
        ));
    }
    for account in accounts {
        // An account id is 12 digits ("Your AWS account identifiers").
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SqsError::invalid_value(
                "PrincipalId",
                format!("[{account}]"),
                "Unable to verify.",
            ));
        }
    }
    let mut policy = parse(current, queue_arn)?;
    let statements = statements(&mut policy)?;
    if statements.iter().any(|s| s["Sid"] == label) {
        return Err(SqsError::invalid_value("Label", label, "Already exists."));
    }
    let one_or_many = |items: Vec<String>| match items.as_slice() {
        [one] => json!(one),
        _ => json!(items),
    };
    statements.push(json!({
        "Sid": label,
        "Effect": "Allow",
        "Principal": {"AWS": one_or_many(
            accounts.iter().map(|a| format!("arn:aws:iam::{a}:root")).collect()
        )},
        "Action": one_or_many(actions.iter().map(|a| format!("SQS:{a}")).collect()),
        "Resource": queue_arn,
    }));
    Ok(policy.to_string())
}

/// The policy after removing statement `label`; `None` when no statement is left.
pub fn remove(
    current: Option<&str>,
    queue_arn: &str,
    label: &str,
) -> Result<Option<String>, SqsError> {
    let not_found =
        || SqsError::invalid_value("Label", label, "can't find label on existing policy.");
    let Some(current) = current else {
        return Err(not_found());
    };
    let mut policy = parse(Some(current), queue_arn)?;
    let statements = statements(&mut policy)?;
    let before = statements.len();
    statements.retain(|s| s["Sid"] != label);
    if statements.len() == before {
        return Err(not_found());
    }
    Ok((!statements.is_empty()).then(|| policy.to_string()))
}

fn parse(current: Option<&str>, queue_arn: &str) -> Result<Value, SqsError> {
    match current {
        None => Ok(json!({
            "Version": "2012-10-17",
            "Id": format!("{queue_arn}/SQSDefaultPolicy"),
            "Statement": [],
        })),
        Some(text) => serde_json::from_str(text).map_err(|_| {
            SqsError::InvalidAttributeValue(
                "The queue's Policy attribute is not a JSON policy document.".to_string(),
            )
        }),
    }
}

fn statements(policy: &mut Value) -> Result<&mut Vec<Value>, SqsError> {
    let Some(object) = policy.as_object_mut() else {
        return Err(SqsError::InvalidAttributeValue(
            "The queue's Policy attribute is not a JSON policy document.".to_string(),
        ));
    };
    // A single statement may be written as an object rather than a list.
    let statement = object.entry("Statement").or_insert_with(|| json!([]));
    if statement.is_object() {
        *statement = json!([statement.take()]);
    }
    statement.as_array_mut().ok_or_else(|| {
        SqsError::InvalidAttributeValue(
            "The queue's Policy has a Statement that is neither a list nor an object.".to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:sqs:us-east-1:000000000000:q";

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn statements_are_added_and_removed_by_label() {
        let one = add(
            None,
            ARN,
            "Send",
            &strings(&["111122223333"]),
            &strings(&["SendMessage"]),
        )
        .unwrap();
        let value: Value = serde_json::from_str(&one).unwrap();
        assert_eq!(value["Id"], format!("{ARN}/SQSDefaultPolicy"));
        assert_eq!(
            value["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::111122223333:root"
        );
        assert_eq!(value["Statement"][0]["Action"], "SQS:SendMessage");
        let two = add(
            Some(&one),
            ARN,
            "Read",
            &strings(&["111122223333", "444455556666"]),
            &strings(&["ReceiveMessage", "DeleteMessage"]),
        )
        .unwrap();
        let err = add(
            Some(&two),
            ARN,
            "Send",
            &strings(&["111122223333"]),
            &strings(&["*"]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Reason: Already exists."), "{err}");
        let left = remove(Some(&two), ARN, "Send").unwrap().unwrap();
        assert!(!left.contains("\"Send\""));
        assert_eq!(remove(Some(&left), ARN, "Read").unwrap(), None);
        let err = remove(Some(&left), ARN, "Nope").unwrap_err();
        assert!(err.to_string().contains("can't find label"), "{err}");
        assert!(remove(None, ARN, "Send").is_err());
    }

    #[test]
    fn bad_permissions_are_refused_with_aws_codes() {
        let ok_accounts = strings(&["111122223333"]);
        let ok_actions = strings(&["SendMessage"]);
        let cases: Vec<(Result<String, SqsError>, &str)> = vec![
            (
                add(None, ARN, "", &ok_accounts, &ok_actions),
                "MissingParameter",
            ),
            (
                add(None, ARN, "a b", &ok_accounts, &ok_actions),
                "InvalidParameterValue",
            ),
            (
                add(None, ARN, &"a".repeat(81), &ok_accounts, &ok_actions),
                "InvalidParameterValue",
            ),
            (add(None, ARN, "L", &[], &ok_actions), "MissingParameter"),
            (add(None, ARN, "L", &ok_accounts, &[]), "MissingParameter"),
            (
                add(None, ARN, "L", &strings(&["12"]), &ok_actions),
                "InvalidParameterValue",
            ),
            (
                add(
                    None,
                    ARN,
                    "L",
                    &ok_accounts,
                    &strings(&["SetQueueAttributes"]),
                ),
                "InvalidParameterValue",
            ),
            (
                add(None, ARN, "L", &ok_accounts, &strings(&["Fly"])),
                "InvalidParameterValue",
            ),
            (
                add(None, ARN, "L", &ok_accounts, &strings(&["SendMessage"; 8])),
                "OverLimit",
            ),
        ];
        for (result, code) in cases {
            let err = result.unwrap_err();
            assert_eq!(err.wire().query_code, code, "{err}");
        }
    }
}
