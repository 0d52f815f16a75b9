//! Template reading of Lambda's asynchronous invocation settings: SAM's `EventInvokeConfig` and
//! `DeadLetterQueue`, `AWS::Lambda::EventInvokeConfig` resources, their ranges and destinations.

use std::collections::BTreeMap;
use std::path::Path;

use nightshift_local::template::{
    Destination, EventInvokeConfig, LoadOptions, Template, TemplateError,
};

fn load(yaml: &str) -> Result<Template, TemplateError> {
    let opts = LoadOptions {
        parameter_overrides: BTreeMap::new(),
        ..LoadOptions::default()
    };
    Template::from_yaml(yaml, Path::new(env!("CARGO_MANIFEST_DIR")), &opts)
}

fn load_err(yaml: &str) -> String {
    match load(yaml) {
        Ok(t) => panic!("expected an error, loaded {t:#?}"),
        Err(e) => e.to_string(),
    }
}

/// A SAM template with queues `Failures` and `Fifo.fifo`, a topic, function `Other`, and
/// function `F` with `props` (indented for its `Properties`).
fn sam(props: &str) -> String {
    format!(
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Failures: {{Type: 'AWS::SQS::Queue'}}
  Fifo:
    Type: AWS::SQS::Queue
    Properties: {{FifoQueue: true}}
  Topic: {{Type: 'AWS::SNS::Topic'}}
  Other:
    Type: AWS::Serverless::Function
    Properties: {{CodeUri: other}}
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: f
{props}
"#
    )
}

#[test]
fn event_invoke_defaults_are_awss() -> anyhow::Result<()> {
    let t = load(&sam(""))?;
    let f = t.function("F").expect("F");
    assert_eq!(f.event_invoke, EventInvokeConfig::default());
    assert_eq!(f.event_invoke.max_retry_attempts, 2);
    assert_eq!(f.event_invoke.max_event_age_s, 21_600);
    assert_eq!(f.dead_letter_queue, None);
    Ok(())
}

#[test]
fn event_invoke_sam_config_with_destinations_and_dead_letter_queue() -> anyhow::Result<()> {
    let t = load(&sam(r#"      EventInvokeConfig:
        MaximumRetryAttempts: 0
        MaximumEventAgeInSeconds: 60
        DestinationConfig:
          OnFailure: {Type: SQS, Destination: !GetAtt Failures.Arn}
          OnSuccess: {Type: Lambda, Destination: !GetAtt Other.Arn}
      DeadLetterQueue: {Type: SQS, TargetArn: !GetAtt Failures.Arn}"#))?;
    let f = t.function("F").expect("F");
    assert_eq!(
        f.event_invoke,
        EventInvokeConfig {
            max_retry_attempts: 0,
            max_event_age_s: 60,
            on_success: Some(Destination::Function("Other".into())),
            on_failure: Some(Destination::Queue("Failures".into())),
        }
    );
    assert_eq!(f.dead_letter_queue.as_deref(), Some("Failures"));
    Ok(())
}

#[test]
fn event_invoke_sns_and_eventbridge_destinations_load_as_unmodelled() -> anyhow::Result<()> {
    let t = load(&sam(r#"      EventInvokeConfig:
        DestinationConfig:
          OnFailure: {Type: SNS, Destination: !Ref Topic}
          OnSuccess: {Type: EventBridge, Destination: 'arn:aws:events:us-east-1:000000000000:event-bus/default'}
      DeadLetterQueue: {Type: SNS, TargetArn: !Ref Topic}"#))?;
    let f = t.function("F").expect("F");
    assert_eq!(
        f.event_invoke.on_failure,
        Some(Destination::Unmodelled {
            kind: "SNS".into(),
            target: "Topic".into()
        })
    );
    assert_eq!(
        f.event_invoke.on_success,
        Some(Destination::Unmodelled {
            kind: "EventBridge".into(),
            target: "arn:aws:events:us-east-1:000000000000:event-bus/default".into()
        })
    );
    assert_eq!(
        f.dead_letter_queue, None,
        "an SNS dead-letter topic is not modelled"
    );
    Ok(())
}

#[test]
fn event_invoke_config_resource_applies_to_the_function_it_names() -> anyhow::Result<()> {
    let t = load(&format!(
        "{}  Config:
    Type: AWS::Lambda::EventInvokeConfig
    Properties:
      FunctionName: !Ref F
      Qualifier: $LATEST
      MaximumRetryAttempts: 1
      DestinationConfig:
        OnFailure: {{Destination: !GetAtt Failures.Arn}}
",
        sam("")
    ))?;
    let f = t.function("F").expect("F");
    assert_eq!(f.event_invoke.max_retry_attempts, 1);
    assert_eq!(f.event_invoke.max_event_age_s, 21_600);
    assert_eq!(
        f.event_invoke.on_failure,
        Some(Destination::Queue("Failures".into()))
    );
    assert_eq!(
        t.function("Other").expect("Other").event_invoke,
        EventInvokeConfig::default()
    );
    Ok(())
}

#[test]
fn event_invoke_errors_name_the_resource_and_property() {
    assert_eq!(
        load_err(&sam("      EventInvokeConfig: {MaximumRetryAttempts: 3}")),
        "resource F: property EventInvokeConfig.MaximumRetryAttempts: must be between 0 and 2, got 3"
    );
    assert_eq!(
        load_err(&sam(
            "      EventInvokeConfig: {MaximumEventAgeInSeconds: 59}"
        )),
        "resource F: property EventInvokeConfig.MaximumEventAgeInSeconds: must be between 60 and 21600, got 59"
    );
    assert_eq!(
        load_err(&sam(
            "      EventInvokeConfig: {MaximumEventAgeInSeconds: 21601}"
        )),
        "resource F: property EventInvokeConfig.MaximumEventAgeInSeconds: must be between 60 and 21600, got 21601"
    );
    assert_eq!(
        load_err(&sam(
            "      EventInvokeConfig: {DestinationConfig: {OnFailure: {Type: Lambda, Destination: !GetAtt Failures.Arn}}}"
        )),
        "resource F: property EventInvokeConfig.DestinationConfig.OnFailure.Type: is Lambda but the destination is a SQS resource"
    );
    assert_eq!(
        load_err(&sam(
            "      EventInvokeConfig: {DestinationConfig: {OnFailure: {Type: Queue, Destination: x}}}"
        )),
        "resource F: property EventInvokeConfig.DestinationConfig.OnFailure.Type: expected SQS, SNS, Lambda, EventBridge or S3, got \"Queue\""
    );
    assert_eq!(
        load_err(&sam(
            "      EventInvokeConfig: {DestinationConfig: {OnFailure: {Type: SQS}}}"
        )),
        "resource F: property EventInvokeConfig.DestinationConfig.OnFailure.Destination: is required by the emulator: the queue or topic SAM creates without it is not modelled"
    );
    assert_eq!(
        load_err(&sam(
            "      EventInvokeConfig: {DestinationConfig: {OnFailure: {Type: SQS, Destination: 'arn:aws:sqs:us-east-1:000000000000:elsewhere'}}}"
        )),
        "resource F: property EventInvokeConfig.DestinationConfig.OnFailure.Destination: arn:aws:sqs:us-east-1:000000000000:elsewhere is not a queue of this template"
    );
    assert_eq!(
        load_err(&sam(
            "      EventInvokeConfig: {DestinationConfig: {OnFailure: {Type: SQS, Destination: !GetAtt Fifo.Arn}}}"
        )),
        "resource F: property EventInvokeConfig.DestinationConfig.OnFailure: Fifo is a FIFO queue; Lambda destinations must be standard queues"
    );
    assert_eq!(
        load_err(&sam("      DeadLetterQueue: {Type: SQS}")),
        "resource F: property DeadLetterQueue.TargetArn: is required but missing"
    );
    let twice = format!(
        "{}  Config:
    Type: AWS::Lambda::EventInvokeConfig
    Properties: {{FunctionName: !Ref F, Qualifier: $LATEST}}
",
        sam("      EventInvokeConfig: {MaximumRetryAttempts: 1}")
    );
    assert_eq!(
        load_err(&twice),
        "resource Config: property FunctionName: function F already has an EventInvokeConfig property"
    );
    let unknown = format!(
        "{}  Config:
    Type: AWS::Lambda::EventInvokeConfig
    Properties: {{FunctionName: nope, Qualifier: $LATEST}}
",
        sam("")
    );
    assert_eq!(
        load_err(&unknown),
        "resource Config: property FunctionName: nope is not a function of this template"
    );
}
