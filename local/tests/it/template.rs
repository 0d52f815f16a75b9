//! Tests of template loading: the real `infra/template.yaml`, every intrinsic form, the env
//! file merge, and the error for each kind of mistake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nightshift_local::sqs::attributes::RedriveAllowPolicy;
use nightshift_local::template::{
    LoadOptions, RetryPolicy, ScheduleKind, SqsEventSource, Template, TemplateError,
};

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra")
}

fn opts() -> LoadOptions {
    LoadOptions {
        env_file: None,
        port: 45_678,
        region: "eu-central-1".to_owned(),
        stack_name: "nightshift".to_owned(),
        parameter_overrides: BTreeMap::new(),
    }
}

fn load(yaml: &str) -> Result<Template, TemplateError> {
    Template::from_yaml(yaml, Path::new(env!("CARGO_MANIFEST_DIR")), &opts())
}

fn load_err(yaml: &str) -> String {
    match load(yaml) {
        Ok(t) => panic!("expected an error, loaded {t:#?}"),
        Err(e) => e.to_string(),
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const URL: &str = "http://127.0.0.1:45678/000000000000";
const SQS_ARN: &str = "arn:aws:sqs:eu-central-1:000000000000";

// ------------------------------------------------------------------ real template

#[test]
fn real_template_with_env_local_resolves_to_local_values() -> anyhow::Result<()> {
    let mut o = opts();
    o.env_file = Some(infra().join("env.local.json"));
    let t = Template::load(&infra().join("template.yaml"), &o)?;

    assert_eq!(
        t.functions.keys().collect::<Vec<_>>(),
        [
            "DailyReportFunction",
            "EmailSenderFunction",
            "QueueProcessorFunction"
        ]
    );
    let qp = &t.functions["QueueProcessorFunction"];
    assert_eq!(qp.name, "nightshift-QueueProcessorFunction");
    assert_eq!(
        qp.arn,
        "arn:aws:lambda:eu-central-1:000000000000:function:nightshift-QueueProcessorFunction"
    );
    assert_eq!(qp.binary, "queue-processor");
    assert!(
        qp.code_uri
            .as_ref()
            .is_some_and(|p| p.ends_with("infra/../functions/queue-processor"))
    );
    assert_eq!((qp.timeout_s, qp.memory_mb), (30, 256));
    assert_eq!(qp.reserved_concurrency, None);
    assert_eq!(qp.log_format.as_deref(), Some("JSON"));
    // ApplicationLogLevel is !FindInMap [LogLevels, !Ref LogLevel, Application].
    assert_eq!(qp.log_level.as_deref(), Some("INFO"));
    assert_eq!(
        qp.env,
        map(&[
            ("STORE_URL", "sqlite://.nightshift/state.db"),
            ("IDEMPOTENCY_TTL_SECONDS", "1558800"),
            ("RUST_LOG", "info"),
            ("NIGHTSHIFT_METRICS_NAMESPACE", "nightshift"),
            ("JOBS_QUEUE_URL", &format!("{URL}/nightshift-jobs")),
            ("JOBS_DLQ_URL", &format!("{URL}/nightshift-jobs-dlq")),
            (
                "INVENTORY_QUEUE_URL",
                &format!("{URL}/nightshift-inventory.fifo"),
            ),
            (
                "INVENTORY_DLQ_URL",
                &format!("{URL}/nightshift-inventory-dlq.fifo"),
            ),
            ("EMAILS_QUEUE_URL", &format!("{URL}/nightshift-emails")),
            ("SCHEDULER_GROUP", "nightshift-jobs"),
            (
                "SCHEDULER_ROLE_ARN",
                "arn:aws:iam::000000000000:role/nightshift-JobsSchedulerRole",
            ),
            (
                "JOBS_QUEUE_ARN",
                "arn:aws:sqs:eu-central-1:000000000000:nightshift-jobs",
            ),
            ("RETRY_HORIZON_SECONDS", "3600"),
        ])
    );

    let es = &t.functions["EmailSenderFunction"];
    assert_eq!(es.binary, "email-sender");
    assert_eq!((es.timeout_s, es.memory_mb), (30, 256));
    assert_eq!(es.reserved_concurrency, Some(2));
    assert_eq!(
        es.env,
        map(&[
            ("STORE_URL", "sqlite://.nightshift/state.db"),
            ("IDEMPOTENCY_TTL_SECONDS", "1558800"),
            ("RUST_LOG", "info"),
            ("NIGHTSHIFT_METRICS_NAMESPACE", "nightshift"),
            ("MAIL_URL", "file://.nightshift/outbox"),
            ("MAIL_FROM", "nightshift@example.com"),
            ("MAIL_MAX_PER_SECOND", "14"),
            ("MAIL_INSTANCES", "2"),
            ("EMAILS_QUEUE_URL", &format!("{URL}/nightshift-emails")),
            ("EMAILS_DLQ_URL", &format!("{URL}/nightshift-emails-dlq")),
            ("MAIL_CONFIGURATION_SET", "nightshift-mail"),
            (
                "MAIL_FEEDBACK_QUEUE_URL",
                &format!("{URL}/nightshift-mail-feedback"),
            ),
            (
                "MAIL_FEEDBACK_DLQ_URL",
                &format!("{URL}/nightshift-mail-feedback-dlq"),
            ),
            ("RETRY_HORIZON_SECONDS", "3600"),
        ])
    );

    let dr = &t.functions["DailyReportFunction"];
    assert_eq!(dr.binary, "daily-report");
    assert_eq!((dr.timeout_s, dr.memory_mb), (60, 512));
    assert_eq!(
        dr.env,
        map(&[
            ("STORE_URL", "sqlite://.nightshift/state.db"),
            ("IDEMPOTENCY_TTL_SECONDS", "1558800"),
            ("RUST_LOG", "info"),
            ("NIGHTSHIFT_METRICS_NAMESPACE", "nightshift"),
            ("BLOBS_URL", "file://.nightshift/reports"),
            ("EMAILS_QUEUE_URL", &format!("{URL}/nightshift-emails")),
            ("REPORT_TIME_ZONE", "Europe/Berlin"),
            ("REPORT_RECIPIENTS", "ops@example.com"),
            ("REPORT_LOOKBACK_DAYS", "7"),
            (
                "REPORT_DLQ_URLS",
                &format!(
                    "{URL}/nightshift-jobs-dlq,{URL}/nightshift-inventory-dlq.fifo,{URL}/nightshift-emails-dlq"
                ),
            ),
        ])
    );

    assert_eq!(t.queues.len(), 10);
    let inventory = t.queue("InventoryQueue").expect("inventory queue");
    assert_eq!(inventory.name, "nightshift-inventory.fifo");
    assert!(inventory.fifo && inventory.content_based_deduplication);
    assert_eq!(
        inventory.redrive.as_ref().map(|r| r.dlq_name.as_str()),
        Some("nightshift-inventory-dlq.fifo")
    );
    assert!(t.queue("InventoryDLQ").expect("inventory dlq").fifo);
    let jobs = t.queue("JobsQueue").expect("jobs queue");
    assert_eq!(jobs.name, "nightshift-jobs");
    assert_eq!(jobs.url, format!("{URL}/nightshift-jobs"));
    assert_eq!(jobs.arn, format!("{SQS_ARN}:nightshift-jobs"));
    // Derived from the 1 h retry horizon (nightshift::retry::RetryPlan).
    assert_eq!(jobs.visibility_timeout_s, 270);
    assert_eq!(jobs.retention_s, 345_600);
    assert!(!jobs.fifo);
    let redrive = jobs.redrive.as_ref().expect("jobs redrive");
    assert_eq!(
        (
            redrive.dlq_logical_id.as_str(),
            redrive.dlq_name.as_str(),
            redrive.max_receive_count
        ),
        ("JobsDLQ", "nightshift-jobs-dlq", 15)
    );
    let emails = t.queue("EmailsQueue").expect("emails queue");
    assert_eq!(emails.visibility_timeout_s, 270);
    assert_eq!(
        emails.redrive.as_ref().map(|r| r.dlq_logical_id.as_str()),
        Some("EmailsDLQ")
    );
    let dlq = t.queue_by_name("nightshift-jobs-dlq").expect("dlq by name");
    assert_eq!(
        (
            dlq.retention_s,
            dlq.visibility_timeout_s,
            dlq.redrive.is_none()
        ),
        (1_209_600, 30, true)
    );
    let order: Vec<&str> = t
        .queues_in_creation_order()
        .iter()
        .map(|q| q.logical_id.as_str())
        .collect();
    let pos = |id: &str| order.iter().position(|q| *q == id).expect(id);
    assert_eq!(order.len(), 10);
    assert!(pos("JobsDLQ") < pos("JobsQueue"));
    assert!(pos("MailFeedbackDLQ") < pos("MailFeedbackQueue"));
    assert!(pos("InventoryDLQ") < pos("InventoryQueue"));
    assert!(pos("EmailsDLQ") < pos("EmailsQueue"));

    assert_eq!(
        t.event_sources,
        vec![
            SqsEventSource {
                id: "EmailSenderFunctionEmails".into(),
                function: "EmailSenderFunction".into(),
                queue: "EmailsQueue".into(),
                batch_size: 10,
                maximum_batching_window_s: 1,
                report_batch_item_failures: true,
                maximum_concurrency: Some(2),
                enabled: true,
                filter_patterns: vec![],
            },
            SqsEventSource {
                id: "EmailSenderFunctionFeedback".into(),
                function: "EmailSenderFunction".into(),
                queue: "MailFeedbackQueue".into(),
                batch_size: 100,
                maximum_batching_window_s: 20,
                report_batch_item_failures: true,
                maximum_concurrency: Some(2),
                enabled: true,
                filter_patterns: vec![],
            },
            SqsEventSource {
                id: "QueueProcessorFunctionJobs".into(),
                function: "QueueProcessorFunction".into(),
                queue: "JobsQueue".into(),
                batch_size: 10,
                maximum_batching_window_s: 1,
                report_batch_item_failures: true,
                maximum_concurrency: Some(5),
                enabled: true,
                filter_patterns: vec![],
            },
            SqsEventSource {
                id: "QueueProcessorFunctionInventory".into(),
                function: "QueueProcessorFunction".into(),
                queue: "InventoryQueue".into(),
                batch_size: 10,
                maximum_batching_window_s: 0,
                report_batch_item_failures: true,
                maximum_concurrency: Some(2),
                enabled: true,
                filter_patterns: vec![],
            },
        ]
    );

    assert_eq!(t.schedules.len(), 1);
    let s = &t.schedules[0];
    assert_eq!(s.id, "DailyReportFunctionDaily");
    assert_eq!(s.name, "nightshift-daily-report");
    assert_eq!(s.target.function(), Some("DailyReportFunction"));
    assert_eq!(s.expression, "cron(0 4 * * ? *)");
    assert_eq!(s.timezone, "Europe/Berlin");
    assert_eq!(s.kind, ScheduleKind::ScheduleV2);
    assert_eq!(
        s.input.as_deref(),
        Some(r#"{"scheduled_time":"<aws.scheduler.scheduled-time>"}"#)
    );
    assert_eq!(
        s.retry_policy,
        RetryPolicy {
            max_event_age_s: 3600,
            max_retry_attempts: 3
        }
    );
    assert_eq!(s.dead_letter_queue.as_deref(), Some("ReportScheduleDLQ"));
    assert_eq!(s.flexible_window_minutes, None);
    assert!(s.enabled);
    assert_eq!((s.start_date, s.end_date), (None, None));
    Ok(())
}

#[test]
fn real_template_without_env_file_keeps_cloud_defaults_and_takes_overrides() -> anyhow::Result<()> {
    let mut o = opts();
    o.stack_name = "dev".into();
    o.parameter_overrides = map(&[
        ("ReportTimeZone", "America/New_York"),
        ("LogLevel", "debug"),
    ]);
    let t = Template::load(&infra().join("template.yaml"), &o)?;
    let dr = &t.functions["DailyReportFunction"];
    assert_eq!(dr.env["STORE_URL"], "dynamodb://dev-state");
    assert_eq!(
        dr.env["BLOBS_URL"],
        "s3://dev-reports-000000000000-eu-central-1"
    );
    assert_eq!(dr.env["REPORT_TIME_ZONE"], "America/New_York");
    assert_eq!(dr.env["RUST_LOG"], "debug");
    assert_eq!(dr.log_level.as_deref(), Some("DEBUG"));
    assert_eq!(dr.env["EMAILS_QUEUE_URL"], format!("{URL}/dev-emails"));
    assert_eq!(t.functions["EmailSenderFunction"].env["MAIL_URL"], "ses");
    assert_eq!(dr.name, "dev-DailyReportFunction");
    assert_eq!(t.schedules[0].timezone, "America/New_York");
    // queue-processor's run-time schedules: the template's schedule group (which the
    // Scheduler API then serves), the role they send with, and their target, all resolved.
    let qp = &t.functions["QueueProcessorFunction"];
    assert_eq!(qp.env["SCHEDULER_GROUP"], "dev-jobs");
    assert_eq!(
        qp.env["SCHEDULER_ROLE_ARN"],
        "arn:aws:iam::000000000000:role/dev-JobsSchedulerRole"
    );
    assert_eq!(
        qp.env["JOBS_QUEUE_ARN"],
        "arn:aws:sqs:eu-central-1:000000000000:dev-jobs"
    );
    assert_eq!(t.schedule_groups, ["dev-jobs"]);
    Ok(())
}

#[test]
fn real_template_rejects_a_disallowed_parameter_value() {
    let mut o = opts();
    o.parameter_overrides = map(&[("LogLevel", "loud")]);
    let e = Template::load(&infra().join("template.yaml"), &o).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"parameter LogLevel: value "loud" is not one of the AllowedValues ["trace","debug","info","warn","error"]"#
    );
}

// ---------------------------------------------------------------- intrinsic forms

const FORMS: &str = r#"
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: test}
  Rate: {Type: Number, Default: 7}
  Names: {Type: CommaDelimitedList, Default: "a, b,c"}
Resources:
  Named:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub '${AWS::StackName}-${Stage}-named'
  Plain:
    Type: AWS::SQS::Queue
  Fifo:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
      ContentBasedDeduplication: 'true'
      VisibilityTimeout: '45'
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: the-binary
    Properties:
      FunctionName: !Join ['-', [!Ref 'AWS::StackName', fn]]
      CodeUri: ../crates/ignored
      Handler: bootstrap
      Runtime: provided.al2023
      Environment:
        Variables:
          REF_PARAM: !Ref Stage
          REF_NUMBER: !Ref Rate
          REF_QUEUE: !Ref Named
          REF_FN: !Ref Other
          REF_LONG: {Ref: Plain}
          ARN_DOT: !GetAtt Named.Arn
          ARN_LIST: !GetAtt [Named, QueueName]
          URL_ATT: !GetAtt Fifo.QueueUrl
          FN_ARN: !GetAtt Other.Arn
          LONG_GETATT_LIST: {'Fn::GetAtt': [Plain, Arn]}
          LONG_GETATT_DOT: {'Fn::GetAtt': Plain.QueueName}
          PSEUDO: !Sub '${AWS::Region}/${AWS::AccountId}/${AWS::StackName}/${AWS::Partition}'
          SUB_ATT: !Sub 'arn=${Named.Arn} url=${Plain}'
          SUB_VARS: !Sub
            - '${Q}|${N}|${Stage}|${!Literal}'
            - Q: !GetAtt Plain.QueueName
              N: 3
          LONG_SUB: {'Fn::Sub': ['${X}-${Rate}', {X: {Ref: Stage}}]}
          JOIN_LIST: !Join [',', !Ref Names]
          LONG_JOIN: {'Fn::Join': ['', [a, {Ref: Stage}, 1, true]]}
          NUMBER: 14
          BOOL: false
          GONE: !Ref AWS::NoValue
  Other:
    Type: AWS::Lambda::Function
    Properties:
      Code: ../functions/other-crate/
      Handler: bootstrap
      Runtime: provided.al2023
      Role: arn:aws:iam::000000000000:role/r
"#;

#[test]
fn template_every_intrinsic_form_resolves() -> anyhow::Result<()> {
    let t = load(FORMS)?;
    let f = t.function("Fn").expect("Fn");
    assert_eq!(f.name, "nightshift-fn");
    assert_eq!(f.binary, "the-binary");
    assert_eq!((f.timeout_s, f.memory_mb), (3, 128));
    let other = t.function("Other").expect("Other");
    assert_eq!(other.binary, "other-crate");
    assert_eq!(other.name, "nightshift-Other");
    let fifo = t.queue("Fifo").expect("fifo");
    assert_eq!(fifo.name, "nightshift-Fifo.fifo");
    assert!(fifo.fifo && fifo.content_based_deduplication);
    assert_eq!(fifo.visibility_timeout_s, 45);
    let plain = t.queue("Plain").expect("plain");
    assert_eq!(
        (
            plain.name.as_str(),
            plain.visibility_timeout_s,
            plain.delay_s
        ),
        ("nightshift-Plain", 30, 0)
    );
    assert_eq!(
        (
            plain.retention_s,
            plain.max_message_size,
            plain.receive_wait_s
        ),
        (345_600, 1_048_576, 0)
    );
    assert_eq!(
        f.env,
        map(&[
            ("REF_PARAM", "test"),
            ("REF_NUMBER", "7"),
            ("REF_QUEUE", &format!("{URL}/nightshift-test-named")),
            ("REF_FN", "nightshift-Other"),
            ("REF_LONG", &format!("{URL}/nightshift-Plain")),
            ("ARN_DOT", &format!("{SQS_ARN}:nightshift-test-named")),
            ("ARN_LIST", "nightshift-test-named"),
            ("URL_ATT", &format!("{URL}/nightshift-Fifo.fifo")),
            (
                "FN_ARN",
                "arn:aws:lambda:eu-central-1:000000000000:function:nightshift-Other"
            ),
            ("LONG_GETATT_LIST", &format!("{SQS_ARN}:nightshift-Plain")),
            ("LONG_GETATT_DOT", "nightshift-Plain"),
            ("PSEUDO", "eu-central-1/000000000000/nightshift/aws"),
            (
                "SUB_ATT",
                &format!("arn={SQS_ARN}:nightshift-test-named url={URL}/nightshift-Plain")
            ),
            ("SUB_VARS", "nightshift-Plain|3|test|${Literal}"),
            ("LONG_SUB", "test-7"),
            ("JOIN_LIST", "a,b,c"),
            ("LONG_JOIN", "atest1true"),
            ("NUMBER", "14"),
            ("BOOL", "false"),
        ])
    );
    Ok(())
}

#[test]
fn find_in_map_looks_up_mappings_with_resolved_keys() -> anyhow::Result<()> {
    let yaml = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  LogLevel: {Type: String, Default: debug}
Mappings:
  LogLevels:
    debug: {Application: DEBUG}
    info: {Application: INFO}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      LoggingConfig:
        LogFormat: JSON
        ApplicationLogLevel: !FindInMap [LogLevels, !Ref LogLevel, Application]
      Environment:
        Variables:
          LEVEL: {'Fn::FindInMap': [LogLevels, info, Application]}
"#;
    let t = load(yaml)?;
    let f = &t.functions["Fn"];
    assert_eq!(f.log_level.as_deref(), Some("DEBUG"));
    assert_eq!(f.env, map(&[("LEVEL", "INFO")]));
    let err = load_err(&yaml.replace("[LogLevels, info,", "[LogLevels, warn,"));
    assert!(
        err.contains(
            "!FindInMap [LogLevels, warn, Application]: mapping LogLevels has no key \"warn\""
        ),
        "{err}"
    );
    let err = load_err(&yaml.replace("[LogLevels, !Ref", "[Levels, !Ref"));
    assert!(err.contains("no mapping \"Levels\" in Mappings"), "{err}");
    Ok(())
}

#[test]
fn template_globals_merge_maps_and_let_functions_override() -> anyhow::Result<()> {
    let t = load(
        r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 20
    MemorySize: 1024
    Environment:
      Variables: {A: global, B: global}
Resources:
  One:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: one
      Timeout: 5
      ReservedConcurrentExecutions: 2
      Environment:
        Variables: {B: local, C: local}
  Two:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: two/}
"#,
    )?;
    let one = &t.functions["One"];
    assert_eq!((one.timeout_s, one.memory_mb), (5, 1024));
    assert_eq!(one.reserved_concurrency, Some(2));
    assert_eq!(
        one.env,
        map(&[("A", "global"), ("B", "local"), ("C", "local")])
    );
    let two = &t.functions["Two"];
    assert_eq!((two.timeout_s, two.binary.as_str()), (20, "two"));
    assert_eq!(two.env, map(&[("A", "global"), ("B", "global")]));
    Ok(())
}

#[test]
fn template_port_and_region_are_inputs() -> anyhow::Result<()> {
    let mut o = opts();
    o.port = 9;
    o.region = "ap-south-2".into();
    let t = Template::from_yaml(
        "Resources:\n  Q: {Type: 'AWS::SQS::Queue', Properties: {QueueName: q}}\n",
        Path::new("."),
        &o,
    )?;
    let q = &t.queues["Q"];
    assert_eq!(q.url, "http://127.0.0.1:9/000000000000/q");
    assert_eq!(q.arn, "arn:aws:sqs:ap-south-2:000000000000:q");
    Ok(())
}

// ------------------------------------------------------ standalone resources + events

#[test]
fn template_standalone_resources_and_legacy_events_are_modelled() -> anyhow::Result<()> {
    let t = load(
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      Events:
        Every5:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)
            Input: '{"k":1}'
            Enabled: false
            DeadLetterConfig: {Type: SQS}
        Flex:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: at(2030-01-01T00:00:00)
            OmitName: true
            State: DISABLED
            StartDate: '2029-12-31T00:00:00Z'
            FlexibleTimeWindow: {Mode: FLEXIBLE, MaximumWindowInMinutes: 15}
            DeadLetterConfig: {Type: SQS, QueueLogicalId: FlexDLQ}
        Api:
          Type: Api
          Properties: {Path: /x, Method: get}
  Q:
    Type: AWS::SQS::Queue
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref Fn
      EventSourceArn: !GetAtt Q.Arn
      BatchSize: 100
      MaximumBatchingWindowInSeconds: 5
      Enabled: false
      FilterCriteria:
        Filters:
          - Pattern: '{"body":{"kind":["order"]}}'
  Sched:
    Type: AWS::Scheduler::Schedule
    Properties:
      ScheduleExpression: cron(0 8 ? * MON-FRI *)
      ScheduleExpressionTimezone: Asia/Tokyo
      FlexibleTimeWindow: {Mode: 'OFF'}
      Target:
        Arn: !GetAtt Fn.Arn
        RoleArn: !GetAtt SchedulerRole.Arn
        Input: '{}'
        RetryPolicy: {MaximumRetryAttempts: 0}
        DeadLetterConfig: {Arn: !GetAtt Q.Arn}
  SchedulerRole:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {}}
  Rule:
    Type: AWS::Events::Rule
    Properties:
      Name: hourly
      ScheduleExpression: rate(1 hour)
      Targets:
        - {Id: fn, Arn: !GetAtt Fn.Arn, RetryPolicy: {MaximumEventAgeInSeconds: 60}}
        - {Id: sm, Arn: !Ref Machine}
  Machine:
    Type: AWS::StepFunctions::StateMachine
    Properties: {Definition: {}}
  PatternRule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {source: [x]}
      Targets: [{Id: fn, Arn: !GetAtt Fn.Arn}]
"#,
    )?;
    // SAM creates the queues its DeadLetterConfig {Type: SQS} asks for.
    assert!(t.queue("FnEvery5Queue").is_some());
    assert!(t.queue("FlexDLQ").is_some());

    assert_eq!(
        t.event_sources,
        vec![SqsEventSource {
            id: "Mapping".into(),
            function: "Fn".into(),
            queue: "Q".into(),
            batch_size: 100,
            maximum_batching_window_s: 5,
            report_batch_item_failures: false,
            maximum_concurrency: None,
            enabled: false,
            filter_patterns: vec![r#"{"body":{"kind":["order"]}}"#.into()],
        }]
    );

    let by_id = |id: &str| {
        t.schedules
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("schedule {id} in {:#?}", t.schedules))
    };
    assert_eq!(t.schedules.len(), 4);
    let legacy = by_id("FnEvery5");
    assert_eq!(legacy.kind, ScheduleKind::LegacyRule);
    assert_eq!(legacy.name, "nightshift-FnEvery5");
    assert_eq!(legacy.expression, "rate(5 minutes)");
    assert_eq!(legacy.timezone, "UTC");
    assert_eq!(legacy.input.as_deref(), Some(r#"{"k":1}"#));
    assert!(!legacy.enabled);
    assert_eq!(legacy.retry_policy, RetryPolicy::default());
    assert_eq!(legacy.dead_letter_queue.as_deref(), Some("FnEvery5Queue"));

    let flex = by_id("FnFlex");
    assert_eq!(flex.kind, ScheduleKind::ScheduleV2);
    assert_eq!(flex.name, "nightshift-FnFlex");
    assert_eq!(flex.flexible_window_minutes, Some(15));
    assert!(!flex.enabled);
    assert_eq!(
        flex.start_date.map(|d| d.to_rfc3339()),
        Some("2029-12-31T00:00:00+00:00".into())
    );
    assert_eq!(flex.dead_letter_queue.as_deref(), Some("FlexDLQ"));

    let sched = by_id("Sched");
    assert_eq!(sched.name, "nightshift-Sched");
    assert_eq!(sched.target.function(), Some("Fn"));
    assert_eq!(sched.timezone, "Asia/Tokyo");
    assert_eq!(sched.flexible_window_minutes, None);
    assert_eq!(
        sched.retry_policy,
        RetryPolicy {
            max_event_age_s: 86_400,
            max_retry_attempts: 0
        }
    );
    assert_eq!(sched.dead_letter_queue.as_deref(), Some("Q"));

    let rule = by_id("Rule");
    assert_eq!(
        (
            rule.name.as_str(),
            rule.kind,
            rule.retry_policy.max_event_age_s
        ),
        ("hourly", ScheduleKind::LegacyRule, 60)
    );
    Ok(())
}

// ------------------------------------------------------------------ env file merge

const ENV_TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties: {BillingMode: PAY_PER_REQUEST}
  A:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: a
      Environment:
        Variables:
          TABLE: !Ref Table
          SHARED: template
          OWN: template
          KEPT: template
  B:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: b-fn
      CodeUri: b
      Environment:
        Variables: {SHARED: template, OWN: template}
"#;

#[test]
fn template_env_file_overrides_declared_variables_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let env_path = dir.path().join("env.json");
    std::fs::write(
        &env_path,
        r#"{
          "Parameters": {"SHARED": "all", "OWN": "all"},
          "A": {"TABLE": "local-table", "OWN": "a", "UNDECLARED": "x"},
          "b-fn": {"OWN": 7}
        }"#,
    )?;
    let mut o = opts();
    o.env_file = Some(env_path);
    let t = Template::from_yaml(ENV_TEMPLATE, dir.path(), &o)?;
    assert_eq!(
        t.functions["A"].env,
        map(&[
            ("TABLE", "local-table"),
            ("SHARED", "all"),
            ("OWN", "a"),
            ("KEPT", "template"),
        ])
    );
    assert_eq!(
        t.functions["B"].env,
        map(&[("SHARED", "all"), ("OWN", "7")])
    );
    Ok(())
}

#[test]
fn template_env_var_on_unmodelled_resource_needs_an_override() {
    assert_eq!(
        load_err(ENV_TEMPLATE),
        "resource Table: type AWS::DynamoDB::Table is not modelled by the emulator \
         (needed by resource A property Environment.Variables.TABLE); give TABLE a local \
         value in the env file (--env-file, sam local --env-vars format: \
         {\"A\": {\"TABLE\": \"...\"}}) to run A without it"
    );
}

#[test]
fn template_malformed_env_file_is_reported_with_its_path() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let env_path = dir.path().join("env.json");
    std::fs::write(&env_path, r#"{"A": ["not", "an", "object"]}"#)?;
    let mut o = opts();
    o.env_file = Some(env_path.clone());
    let e = Template::from_yaml(ENV_TEMPLATE, dir.path(), &o).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "env file {}: A: expected an object of variable names to values",
            env_path.display()
        )
    );
    o.env_file = Some(dir.path().join("missing.json"));
    let e = Template::from_yaml(ENV_TEMPLATE, dir.path(), &o).unwrap_err();
    assert!(matches!(e, TemplateError::Io { .. }), "{e}");
    Ok(())
}

// ------------------------------------------------------------------------- errors

const FN_HEAD: &str = "Transform: AWS::Serverless-2016-10-31\nResources:\n";

#[test]
fn template_error_dangling_get_att() {
    let yaml = format!(
        "{FN_HEAD}  QueueProcessorFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: qp
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt MissingQueue.Arn
"
    );
    assert_eq!(
        load_err(&yaml),
        "resource QueueProcessorFunction: property Events.Jobs.Properties.Queue: \
         !GetAtt MissingQueue.Arn refers to an unknown resource"
    );
}

#[test]
fn template_error_wrong_type() {
    assert_eq!(
        load_err(
            "Resources:\n  JobsQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      VisibilityTimeout: abc\n"
        ),
        r#"resource JobsQueue: property VisibilityTimeout: expected an integer, got "abc""#
    );
    assert_eq!(
        load_err(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      FifoQueue: [x]\n"
        ),
        r#"resource Q: property FifoQueue: expected a boolean, got ["x"]"#
    );
    assert_eq!(
        load_err(&format!(
            "{FN_HEAD}  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Environment:\n        Variables:\n          A: [1, 2]\n"
        )),
        "resource F: property Environment.Variables.A: expected a string, got [1,2]"
    );
}

#[test]
fn template_error_out_of_range() {
    assert_eq!(
        load_err(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {VisibilityTimeout: 43201}\n"
        ),
        "resource Q: property VisibilityTimeout: must be between 0 and 43200, got 43201"
    );
    let sqs = |props: &str| {
        format!(
            "{FN_HEAD}  Q: {{Type: 'AWS::SQS::Queue'}}\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Events:\n        E:\n          Type: SQS\n          Properties: {{Queue: !GetAtt Q.Arn, {props}}}\n"
        )
    };
    assert_eq!(
        load_err(&sqs("BatchSize: 20")),
        "resource F: property Events.E.Properties.BatchSize: \
         a batch size above 10 needs MaximumBatchingWindowInSeconds of at least 1"
    );
    assert_eq!(
        load_err(&sqs("ScalingConfig: {MaximumConcurrency: 1}")),
        "resource F: property Events.E.Properties.ScalingConfig.MaximumConcurrency: \
         must be between 2 and 1000, got 1"
    );
    assert_eq!(
        load_err(&sqs("FunctionResponseTypes: [Partial]")),
        "resource F: property Events.E.Properties.FunctionResponseTypes[0]: \
         unknown response type \"Partial\", expected ReportBatchItemFailures"
    );
}

#[test]
fn template_error_unknown_parameter() {
    assert_eq!(
        load_err(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !Ref Nope}\n"
        ),
        "resource Q: property QueueName: !Ref Nope refers to an unknown resource or parameter"
    );
    let mut o = opts();
    o.parameter_overrides = map(&[("Nope", "x")]);
    let e = Template::from_yaml("Resources: {}\n", Path::new("."), &o).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter Nope: an override was given but the template declares no such parameter"
    );
}

#[test]
fn template_parameter_without_value_fails_only_where_used() -> anyhow::Result<()> {
    let unused =
        "Parameters:\n  Cert: {Type: String}\nResources:\n  Q: {Type: 'AWS::SQS::Queue'}\n";
    assert_eq!(load(unused)?.queues.len(), 1);
    assert_eq!(
        load_err(
            "Parameters:\n  Name: {Type: String}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !Ref Name}\n"
        ),
        "resource Q: property QueueName: parameter Name has no value \
         (it has no Default and no override was given)"
    );
    assert_eq!(
        load_err("Parameters:\n  N: {Type: Number, Default: x}\nResources: {}\n"),
        r#"parameter N: value "x" is not a number"#
    );
    Ok(())
}

#[test]
fn template_error_bad_yaml_has_line_and_column() {
    let e = load("Resources:\n  Q:\n    Type: AWS::SQS::Queue\n   Properties: {}\n").unwrap_err();
    match &e {
        TemplateError::Syntax { line, column, .. } => assert_eq!((*line, *column), (4, 4)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "yaml syntax error at line 4, column 4: did not find expected key, \
         while parsing a block mapping at line 2 column 3"
    );
}

#[test]
fn template_error_missing_property() {
    assert_eq!(
        load_err(&format!(
            "{FN_HEAD}  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Events:\n        E: {{Type: SQS, Properties: {{BatchSize: 5}}}}\n"
        )),
        "resource F: property Events.E.Properties.Queue: is required but missing"
    );
    assert_eq!(
        load_err(&format!(
            "{FN_HEAD}  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        D: {{Type: ScheduleV2, Properties: {{ScheduleExpression: 'rate(1 day)'}}}}\n"
        )),
        "resource F: property CodeUri: cannot tell which binary runs this function: \
         set a local path here or Metadata.BuildProperties.Binary"
    );
    assert_eq!(
        load_err("Resources:\n  Q:\n    Properties: {}\n"),
        "resource Q: Type is required but missing"
    );
    assert_eq!(
        load_err("AWSTemplateFormatVersion: '2010-09-09'\n"),
        "template: Resources is required but missing"
    );
    assert_eq!(
        load_err(&format!(
            "{FN_HEAD}  Q: {{Type: 'AWS::SQS::Queue'}}\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Events:\n        D: {{Type: ScheduleV2, Properties: {{ScheduleExpression: 'rate(1 day)', FlexibleTimeWindow: {{Mode: FLEXIBLE}}}}}}\n"
        )),
        "resource F: property Events.D.Properties.FlexibleTimeWindow.MaximumWindowInMinutes: \
         is required when Mode is FLEXIBLE"
    );
}

#[test]
fn template_error_unmodelled_dependency_but_unrelated_resources_are_ignored() -> anyhow::Result<()>
{
    let ok = load(&format!(
        "{FN_HEAD}  Alarm:\n    Type: AWS::CloudWatch::Alarm\n    Properties: {{Threshold: !If [C, 1, 2]}}\n  Machine:\n    Type: AWS::StepFunctions::StateMachine\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {{CodeUri: f}}\n"
    ))?;
    assert_eq!(ok.functions.len(), 1);
    assert_eq!(
        load_err(&format!(
            "{FN_HEAD}  X:\n    Type: AWS::StepFunctions::StateMachine\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Environment:\n        Variables: {{SM: !GetAtt X.Arn}}\n"
        )),
        "resource X: type AWS::StepFunctions::StateMachine is not modelled by the emulator \
         (needed by resource F property Environment.Variables.SM); give SM a local value in \
         the env file (--env-file, sam local --env-vars format: {\"F\": {\"SM\": \"...\"}}) \
         to run F without it"
    );
    Ok(())
}

#[test]
fn template_error_unsupported_and_malformed_intrinsics() {
    let with_var = |value: &str| {
        format!(
            "{FN_HEAD}  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Environment:\n        Variables:\n          V: {value}\n"
        )
    };
    assert_eq!(
        load_err(&with_var("!If [IsProd, a, b]")),
        "resource F: property Environment.Variables.V: !If is not supported by the emulator"
    );
    assert_eq!(
        load_err(&with_var("{'Fn::Select': [0, [a]]}")),
        "resource F: property Environment.Variables.V: !Select is not supported by the emulator"
    );
    assert_eq!(
        load_err(&with_var("!GetAtt NoAttribute")),
        "resource F: property Environment.Variables.V: !GetAtt: \
         expected \"Resource.Attribute\" or [Resource, Attribute]"
    );
    assert_eq!(
        load_err(&with_var("!Sub 'x-${Open'")),
        "resource F: property Environment.Variables.V: !Sub \"x-${Open\": unterminated ${"
    );
    assert_eq!(
        load_err(&with_var("!Sub '${AWS::Bogus}'")),
        "resource F: property Environment.Variables.V: !Ref AWS::Bogus: unknown pseudo parameter"
    );
    assert_eq!(
        load_err(&format!(
            "{FN_HEAD}  Q: {{Type: 'AWS::SQS::Queue'}}\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Environment:\n        Variables: {{V: !GetAtt Q.Foo}}\n"
        )),
        "resource F: property Environment.Variables.V: !GetAtt Q.Foo: \
         AWS::SQS::Queue has no attribute Foo (known: Arn, QueueName, QueueUrl)"
    );
}

#[test]
fn template_error_misc_validation() {
    assert_eq!(
        load_err(
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: f}\n"
        ),
        "template: AWS::Serverless resources need Transform: AWS::Serverless-2016-10-31"
    );
    assert_eq!(
        load_err(&format!(
            "{FN_HEAD}  F:\n    Type: AWS::Serverless::Function\n    Condition: IsProd\n    Properties: {{CodeUri: f}}\n"
        )),
        "resource F: Condition IsProd: conditions are not supported by the emulator"
    );
    assert_eq!(
        load_err(&format!(
            "{FN_HEAD}  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Events:\n        D: {{Type: ScheduleV2, Properties: {{ScheduleExpression: 'rate(1 day)', ScheduleExpressionTimezone: Europe/Berln}}}}\n"
        )),
        "resource F: property Events.D.Properties.ScheduleExpressionTimezone: \
         unknown time zone \"Europe/Berln\""
    );
    assert_eq!(
        load_err(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      RedrivePolicy: {deadLetterTargetArn: 'arn:aws:sqs:eu-central-1:000000000000:elsewhere', maxReceiveCount: 5}\n"
        ),
        "resource Q: property RedrivePolicy.deadLetterTargetArn: \
         arn:aws:sqs:eu-central-1:000000000000:elsewhere is not a queue of this template"
    );
    assert_eq!(
        load_err(
            "Resources:\n  D: {Type: 'AWS::SQS::Queue'}\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      FifoQueue: true\n      RedrivePolicy: {deadLetterTargetArn: !GetAtt D.Arn, maxReceiveCount: 5}\n"
        ),
        "resource Q: property RedrivePolicy.deadLetterTargetArn: \
         a FIFO queue needs a FIFO dead-letter queue, D is not"
    );
    assert_eq!(
        load_err(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: bad.name}\n"
        ),
        "resource Q: property QueueName: invalid queue name \"bad.name\": \
         1 to 80 characters of A-Z, a-z, 0-9, - and _"
    );
    assert_eq!(
        load_err(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: q.fifo}\n"
        ),
        "resource Q: property QueueName: \"q.fifo\" ends with .fifo but FifoQueue is not true"
    );
    assert_eq!(
        load_err(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !GetAtt P.QueueName}\n  P:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !GetAtt Q.QueueName}\n"
        ),
        "resource Q: property QueueName: circular reference through resource P"
    );
}

#[test]
fn template_redrive_policy_as_json_string_is_accepted() -> anyhow::Result<()> {
    let t = load(
        "Resources:\n  D: {Type: 'AWS::SQS::Queue'}\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      RedrivePolicy: !Sub '{\"deadLetterTargetArn\": \"${D.Arn}\", \"maxReceiveCount\": \"3\"}'\n",
    )?;
    let r = t.queues["Q"].redrive.as_ref().expect("redrive");
    assert_eq!((r.dlq_logical_id.as_str(), r.max_receive_count), ("D", 3));
    Ok(())
}

/// Lambda refuses an SQS event source whose queue's visibility timeout is shorter than the
/// function's timeout: https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
#[test]
fn template_error_visibility_timeout_under_the_function_timeout() {
    let yaml = |visibility: u32| {
        format!(
            "{FN_HEAD}  Q:\n    Type: AWS::SQS::Queue\n    Properties: {{VisibilityTimeout: {visibility}}}\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Timeout: 60\n      Events:\n        E: {{Type: SQS, Properties: {{Queue: !GetAtt Q.Arn}}}}\n"
        )
    };
    assert_eq!(
        load_err(&yaml(30)),
        "resource FE: Invalid request provided: Queue visibility timeout: 30 seconds is less than Function timeout: 60 seconds"
    );
    assert!(load(&yaml(60)).is_ok());
}

/// Under an accelerated clock visibility timeouts shrink while function timeouts stay real: a
/// factor that makes a mapped queue's visibility timeout end before its function's timeout is
/// refused, any other is announced with the shortest visibility timeout in real time.
#[test]
fn accelerated_clocks_keep_visibility_timeouts_above_function_timeouts() {
    let t = Template::load(&infra().join("template.yaml"), &opts()).unwrap();
    // 270 s visibility, 30 s timeouts: up to x9.
    let note = nightshift_local::emulator::accelerated_visibility(&t, 9.0)
        .unwrap()
        .unwrap();
    assert!(note.contains("lasts 30.0 s of real time"), "{note}");
    let err = nightshift_local::emulator::accelerated_visibility(&t, 60.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--clock x60 makes the 270 s visibility timeout of queue nightshift-"),
        "{err}"
    );
    assert!(err.ends_with("use at most x9"), "{err}");
}

/// A restart on a state dir keeps the journaled queues but follows the template: a
/// RedrivePolicy taken out of the template is taken off the queue, and a FIFO queue restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_follows_the_template_where_it_dropped_a_redrive_policy() {
    use nightshift_local::clock::ClockSpec;
    use nightshift_local::emulator::{Emulator, EmulatorOptions};
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.yaml");
    // A FIFO queue too: SetQueueAttributes refuses FifoQueue, so a kept FIFO queue must be
    // brought in step without it.
    let dlq = "  Dlq:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: q-dlq}\n  Fifo:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: f.fifo, FifoQueue: true, ContentBasedDeduplication: true}\n";
    let with = format!(
        "Resources:\n{dlq}  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: q\n      RedrivePolicy: {{deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 3}}\n"
    );
    let without = format!(
        "Resources:\n{dlq}  Q:\n    Type: AWS::SQS::Queue\n    Properties: {{QueueName: q}}\n"
    );
    let redrive = |emulator: &Emulator| {
        emulator
            .engine()
            .get_queue_attributes("q", &["All".to_string()])
            .unwrap()
            .get("RedrivePolicy")
            .cloned()
    };
    let options = || {
        let mut up = EmulatorOptions::new(dir.path());
        up.log_format = nightshift_local::logs::LogFormat::Tracing;
        up.template = template.clone();
        up.env_file = None;
        up.addr = ([127, 0, 0, 1], 0).into();
        up.clock = ClockSpec::Manual;
        up.state_dir = Some(dir.path().join("state"));
        up
    };
    let invoker = || {
        Some(
            std::sync::Arc::new(nightshift_local::invoker::InProcessInvoker::new())
                as std::sync::Arc<dyn nightshift_local::invoker::Invoker>,
        )
    };
    std::fs::write(&template, with).unwrap();
    let first = Emulator::start(options(), invoker()).await.unwrap();
    assert!(redrive(&first).is_some_and(|p| p.contains("maxReceiveCount")));
    first.shutdown(std::time::Duration::from_secs(1)).await;
    drop(first);
    std::fs::write(&template, without).unwrap();
    let second = Emulator::start(options(), invoker()).await.unwrap();
    assert_eq!(redrive(&second), None);
    let fifo = second
        .engine()
        .get_queue_attributes("f.fifo", &["All".to_string()])
        .unwrap();
    assert_eq!(fifo["FifoQueue"], "true");
    assert_eq!(fifo["ContentBasedDeduplication"], "true");
    second.shutdown(std::time::Duration::from_secs(1)).await;
}

// ------------------------------------------------------------------ schedule targets

/// A function `F`, queues `Q` and `DLQ`, and a Scheduler schedule `S` whose `Target` is the
/// given YAML flow mapping.
fn scheduler_target_yaml(target: &str) -> String {
    format!(
        "{FN_HEAD}  F:\n    Type: AWS::Serverless::Function\n    Properties: {{CodeUri: f}}\n  Q: {{Type: 'AWS::SQS::Queue', Properties: {{QueueName: work}}}}\n  DLQ: {{Type: 'AWS::SQS::Queue'}}\n  Topic: {{Type: 'AWS::SNS::Topic'}}\n  S:\n    Type: AWS::Scheduler::Schedule\n    Properties:\n      ScheduleExpression: rate(1 hour)\n      FlexibleTimeWindow: {{Mode: 'OFF'}}\n      Target: {target}\n"
    )
}

#[test]
fn scheduler_schedule_targets_a_queue_by_get_att_or_literal_arn() -> anyhow::Result<()> {
    use nightshift_local::template::ScheduleTarget;
    let t = load(&scheduler_target_yaml(
        "{Arn: !GetAtt Q.Arn, Input: 'hello <aws.scheduler.scheduled-time>', SqsParameters: {MessageGroupId: g1}, RetryPolicy: {MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 120}, DeadLetterConfig: {Arn: !GetAtt DLQ.Arn}}",
    ))?;
    let s = &t.schedules[0];
    assert_eq!(
        s.target,
        ScheduleTarget::Queue {
            queue: "Q".into(),
            message_group_id: Some("g1".into()),
        }
    );
    assert_eq!(s.target.function(), None);
    assert_eq!(
        s.input.as_deref(),
        Some("hello <aws.scheduler.scheduled-time>")
    );
    assert_eq!(
        s.retry_policy,
        RetryPolicy {
            max_event_age_s: 120,
            max_retry_attempts: 2
        }
    );
    assert_eq!(s.dead_letter_queue.as_deref(), Some("DLQ"));

    let literal = load(&scheduler_target_yaml(&format!(
        "{{Arn: '{SQS_ARN}:work'}}"
    )))?;
    assert_eq!(
        literal.schedules[0].target,
        ScheduleTarget::Queue {
            queue: "Q".into(),
            message_group_id: None,
        }
    );
    Ok(())
}

#[test]
fn scheduler_schedule_target_neither_function_nor_queue_fails_the_load() {
    assert_eq!(
        load_err(&scheduler_target_yaml("{Arn: !Ref Topic}")),
        "resource S: property Target.Arn: targets resource Topic of type AWS::SNS::Topic; \
         the emulator delivers schedules to Lambda functions and SQS queues only"
    );
    assert_eq!(
        load_err(&scheduler_target_yaml(
            "{Arn: 'arn:aws:scheduler:::aws-sdk:sqs:sendMessage'}"
        )),
        "resource S: property Target.Arn: arn:aws:scheduler:::aws-sdk:sqs:sendMessage is \
         neither a function nor a queue of this template; the emulator delivers schedules to \
         Lambda functions and SQS queues only"
    );
    assert_eq!(
        load_err(&scheduler_target_yaml(&format!(
            "{{Arn: '{SQS_ARN}:elsewhere'}}"
        ))),
        format!(
            "resource S: property Target.Arn: {SQS_ARN}:elsewhere is not a queue of this template"
        )
    );
    assert_eq!(
        load_err(&scheduler_target_yaml(
            "{Arn: !GetAtt F.Arn, SqsParameters: {MessageGroupId: g}}"
        )),
        "resource S: property Target.SqsParameters: applies to an SQS queue target, but \
         arn:aws:lambda:eu-central-1:000000000000:function:nightshift-F is a function"
    );
    assert_eq!(
        load_err(&scheduler_target_yaml(
            "{Arn: !GetAtt Q.Arn, SqsParameters: {MessageGroupId: ''}}"
        )),
        "resource S: property Target.SqsParameters.MessageGroupId: must be 1 to 128 characters \
         long, got 0"
    );
}

/// FIFO targets: a group id is required and the queue needs content-based deduplication
/// (<https://docs.aws.amazon.com/scheduler/latest/APIReference/API_SqsParameters.html>); a
/// FIFO mapping takes no batching window
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html>).
#[test]
fn fifo_schedule_targets_and_mappings_follow_aws_rules() {
    let yaml = |cbd: bool, target: &str| {
        format!(
            "{FN_HEAD}  F:\n    Type: AWS::Serverless::Function\n    Properties: {{CodeUri: f}}\n  Q: {{Type: 'AWS::SQS::Queue', Properties: {{QueueName: work.fifo, FifoQueue: true, ContentBasedDeduplication: {cbd}}}}}\n  S:\n    Type: AWS::Scheduler::Schedule\n    Properties:\n      ScheduleExpression: rate(1 hour)\n      FlexibleTimeWindow: {{Mode: 'OFF'}}\n      Target: {target}\n"
        )
    };
    assert_eq!(
        load_err(&yaml(true, "{Arn: !GetAtt Q.Arn}")),
        "resource S: property Target.SqsParameters.MessageGroupId: is required: the target \
         work.fifo is a FIFO queue"
    );
    assert_eq!(
        load_err(&yaml(
            false,
            "{Arn: !GetAtt Q.Arn, SqsParameters: {MessageGroupId: g}}"
        )),
        "resource S: property Target: the FIFO queue work.fifo must have \
         ContentBasedDeduplication to be a schedule target"
    );
    // A schedule's DLQ cannot be FIFO
    // (https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html).
    assert_eq!(
        load_err(&yaml(
            true,
            "{Arn: !GetAtt F.Arn, DeadLetterConfig: {Arn: !GetAtt Q.Arn}}"
        )),
        "resource S: property DeadLetterConfig: work.fifo is a FIFO queue; a schedule's \
         dead-letter queue must be a standard queue"
    );
    // High-throughput settings are read and checked as SQS checks them.
    let scoped = |scope: &str, limit: &str| {
        format!(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {{FifoQueue: true, DeduplicationScope: {scope}, FifoThroughputLimit: {limit}}}\n"
        )
    };
    let q = load(&scoped("messageGroup", "perMessageGroupId")).unwrap();
    assert_eq!(
        q.queue("Q").unwrap().deduplication_scope.as_deref(),
        Some("messageGroup")
    );
    assert!(load_err(&scoped("queue", "perMessageGroupId")).contains("allowed only when"));
    assert_eq!(
        load_err(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {DeduplicationScope: queue}\n"
        ),
        "resource Q: property DeduplicationScope: applies only to FIFO queues"
    );
    let template = yaml(
        true,
        "{Arn: !GetAtt Q.Arn, SqsParameters: {MessageGroupId: g}}",
    );
    assert!(
        load(&template).is_ok(),
        "a FIFO target with a group id and content-based deduplication loads"
    );
    let mapping = format!(
        "{FN_HEAD}  Q: {{Type: 'AWS::SQS::Queue', Properties: {{FifoQueue: true}}}}\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Events:\n        E:\n          Type: SQS\n          Properties: {{Queue: !GetAtt Q.Arn, MaximumBatchingWindowInSeconds: {{WINDOW}}}}\n"
    );
    assert!(
        load(&mapping.replace("{WINDOW}", "0")).is_ok(),
        "a window of 0 is no window"
    );
    assert_eq!(
        load_err(&mapping.replace("{WINDOW}", "5")),
        "resource F: property Events.E.Properties.MaximumBatchingWindowInSeconds: batching \
         window is not supported for FIFO queues"
    );
}

#[test]
fn template_redrive_allow_policy_is_read_and_enforced_at_load() -> anyhow::Result<()> {
    let queues = |allow: &str| {
        format!(
            "Resources:\n  DLQ:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: jobs-dlq\n      RedriveAllowPolicy: {allow}\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: jobs\n      RedrivePolicy: {{deadLetterTargetArn: !GetAtt DLQ.Arn, maxReceiveCount: 3}}\n  Other:\n    Type: AWS::SQS::Queue\n    Properties: {{QueueName: other}}\n"
        )
    };
    // A mapping with an intrinsic, as CloudFormation takes it.
    let template = load(&queues(
        "{redrivePermission: byQueue, sourceQueueArns: [!GetAtt Q.Arn]}",
    ))?;
    assert_eq!(
        template.queue("DLQ").unwrap().redrive_allow_policy,
        Some(RedriveAllowPolicy::ByQueue(vec![format!("{SQS_ARN}:jobs")]))
    );

    // A JSON string too; a source the DLQ does not admit is refused, naming both queues.
    assert_eq!(
        load_err(&queues(r#"'{"redrivePermission":"denyAll"}'"#)),
        "resource Q: property RedrivePolicy: dead-letter queue DLQ (jobs-dlq) does not allow \
         Q (jobs) as a source: its RedriveAllowPolicy is denyAll"
    );
    assert_eq!(
        load_err(&queues(
            "{redrivePermission: byQueue, sourceQueueArns: [!GetAtt Other.Arn]}"
        )),
        "resource Q: property RedrivePolicy: dead-letter queue DLQ (jobs-dlq) does not allow \
         Q (jobs) as a source: its RedriveAllowPolicy is byQueue without this queue"
    );

    // Malformed policies are refused where they are written.
    let err = load_err(&queues("{redrivePermission: sometimes}"));
    assert!(
        err.starts_with("resource DLQ: property RedriveAllowPolicy: ")
            && err.contains("got sometimes"),
        "{err}"
    );
    let err = load_err(&queues(
        "{redrivePermission: allowAll, sourceQueueArns: [!GetAtt Q.Arn]}",
    ));
    assert!(
        err.contains("only when redrivePermission is byQueue"),
        "{err}"
    );
    Ok(())
}

/// As `sam build` with cargo-lambda: the binary is Metadata.BuildProperties.Binary, else the
/// name of the package at CodeUri (its default binary), which need not be the directory's
/// name (`CodeUri: .` in a single-crate project); the directory's name only without a
/// Cargo.toml.
#[test]
fn a_function_runs_the_binary_of_the_package_at_its_code_uri() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[workspace]\n\n[package]\nversion = \"0.1.0\"\nname = \"consumer\" # the crate\n\n[dependencies]\nname = \"not-this\"\n",
    )?;
    std::fs::create_dir(dir.path().join("no-manifest"))?;
    let yaml = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Here:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: .\n      Handler: bootstrap\n      Runtime: provided.al2023\n  Bare:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: no-manifest/\n      Handler: bootstrap\n      Runtime: provided.al2\n";
    let t = Template::from_yaml(yaml, dir.path(), &opts())?;
    assert_eq!(t.function("Here").expect("Here").binary, "consumer");
    assert_eq!(t.function("Bare").expect("Bare").binary, "no-manifest");
    Ok(())
}
