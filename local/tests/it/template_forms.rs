//! Templates as Rust Lambda users write them (issue 14): plain CloudFormation functions and
//! event source mappings, EventBridge rules, `Globals.Function`, parameters with defaults and
//! overrides, functions of other languages left out with their events, and prebuilt
//! artifacts (`cargo lambda build` output, a `bootstrap`, a `.zip`) run without cargo.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use nightshift_local::cli::parse_parameter_overrides;
use nightshift_local::emulator::{Emulator, EmulatorOptions, InvokerChoice};
use nightshift_local::template::{
    Destination, LoadOptions, Prebuilt, ScheduleKind, ScheduleTarget, SqsEventSource, Template,
};

fn opts() -> LoadOptions {
    LoadOptions {
        port: 45_679,
        region: "eu-west-1".to_owned(),
        ..LoadOptions::default()
    }
}

fn load_in(dir: &Path, yaml: &str) -> Result<Template> {
    Ok(Template::from_yaml(yaml, dir, &opts())?)
}

fn load(yaml: &str) -> Result<Template> {
    load_in(Path::new("/nonexistent"), yaml)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ------------------------------------------------------- plain CloudFormation resources

const PLAIN: &str = r#"
AWSTemplateFormatVersion: '2010-09-09'
Resources:
  Jobs:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 180}
  WorkerRole:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {}}
  Worker:
    Type: AWS::Lambda::Function
    Properties:
      Code: crates/worker
      Handler: bootstrap
      Runtime: provided.al2
      Architectures: [arm64]
      Role: !GetAtt WorkerRole.Arn
      Timeout: 30
  WorkerMapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Jobs.Arn
      FunctionName: !Ref Worker
      BatchSize: 5
      FunctionResponseTypes: [ReportBatchItemFailures]
  Nightly:
    Type: AWS::Events::Rule
    Properties:
      ScheduleExpression: cron(0 3 * * ? *)
      State: ENABLED
      Targets:
        - Id: worker
          Arn: !GetAtt Worker.Arn
          Input: '{"job":"nightly"}'
  NightlyPermission:
    Type: AWS::Lambda::Permission
    Properties:
      Action: lambda:InvokeFunction
      FunctionName: !Ref Worker
      Principal: events.amazonaws.com
      SourceArn: !GetAtt Nightly.Arn
"#;

/// `AWS::Lambda::Function` with `Code` as a local path, `Handler` and `Runtime:
/// provided.al2`, fed by an `AWS::Lambda::EventSourceMapping` reporting batch item failures.
#[test]
fn plain_lambda_function_and_event_source_mapping_with_batch_item_failures() -> Result<()> {
    let t = load(PLAIN)?;
    let worker = t.function("Worker").expect("Worker");
    assert_eq!(worker.binary, "worker");
    assert_eq!(worker.runtime.as_deref(), Some("provided.al2"));
    assert_eq!(worker.name, "nightshift-Worker");
    assert_eq!(worker.timeout_s, 30);
    assert_eq!(worker.prebuilt, None);
    assert_eq!(
        t.event_sources,
        vec![SqsEventSource {
            id: "WorkerMapping".into(),
            function: "Worker".into(),
            queue: "Jobs".into(),
            batch_size: 5,
            maximum_batching_window_s: 0,
            report_batch_item_failures: true,
            maximum_concurrency: None,
            enabled: true,
            filter_patterns: Vec::new(),
        }]
    );
    assert!(t.skipped_functions.is_empty() && t.skipped_events.is_empty());
    Ok(())
}

/// An `AWS::Events::Rule` with a `ScheduleExpression` whose target is a function.
#[test]
fn events_rule_with_a_schedule_expression_targets_a_plain_function() -> Result<()> {
    let t = load(PLAIN)?;
    assert_eq!(t.schedules.len(), 1);
    let rule = &t.schedules[0];
    assert_eq!(rule.id, "Nightly");
    assert_eq!(rule.name, "nightshift-Nightly");
    assert_eq!(rule.target, ScheduleTarget::Function("Worker".into()));
    assert_eq!(rule.kind, ScheduleKind::LegacyRule);
    assert_eq!(rule.expression, "cron(0 3 * * ? *)");
    assert_eq!(rule.timezone, "UTC");
    assert_eq!(rule.input.as_deref(), Some(r#"{"job":"nightly"}"#));
    assert!(rule.enabled);
    Ok(())
}

// ------------------------------------------------------------------- Globals.Function

/// `Globals.Function` supplies Runtime, Timeout, MemorySize and Environment; a function's
/// own Runtime wins over the global one, in both directions.
#[test]
fn globals_function_supplies_runtime_timeout_memory_and_environment() -> Result<()> {
    let t = load(
        r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: provided.al2023
    Handler: bootstrap
    Architectures: [arm64]
    Timeout: 25
    MemorySize: 512
    Environment:
      Variables: {RUST_LOG: info, TABLE: orders}
Resources:
  Api:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: api
      Environment: {Variables: {TABLE: api-orders}}
  Scripts:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: scripts/
      Runtime: python3.12
      Handler: app.handler
"#,
    )?;
    let api = t.function("Api").expect("Api");
    assert_eq!(api.runtime.as_deref(), Some("provided.al2023"));
    assert_eq!((api.timeout_s, api.memory_mb), (25, 512));
    assert_eq!(
        api.env,
        map(&[("RUST_LOG", "info"), ("TABLE", "api-orders")])
    );
    assert_eq!(t.functions.len(), 1);
    assert_eq!(t.skipped_functions.len(), 1);
    assert_eq!(t.skipped_functions[0].logical_id, "Scripts");
    assert!(
        t.skipped_functions[0].reason.contains("python3.12"),
        "{:?}",
        t.skipped_functions
    );

    // A global runtime of another language: only the function that sets its own OS-only
    // runtime runs; a function with no Runtime anywhere runs too.
    let t = load(
        r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {Runtime: nodejs20.x, Handler: index.handler}
Resources:
  Web: {Type: AWS::Serverless::Function, Properties: {CodeUri: web}}
  Rust:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: rust, Runtime: provided.al2, Handler: bootstrap}
"#,
    )?;
    assert_eq!(t.functions.keys().collect::<Vec<_>>(), ["Rust"]);
    assert_eq!(t.skipped_functions[0].logical_id, "Web");
    let t = load(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Bare: {Type: AWS::Serverless::Function, Properties: {CodeUri: bare}}\n",
    )?;
    assert_eq!(t.function("Bare").expect("Bare").runtime, None);
    Ok(())
}

// ------------------------------------------------------------------------- parameters

const PARAMETERS: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  WorkerTimeout: {Type: Number, Default: 10}
  Bucket: {Type: String}
Resources:
  Jobs:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub 'jobs-${Stage}', VisibilityTimeout: 120}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: worker
      Runtime: provided.al2023
      Handler: bootstrap
      Timeout: !Ref WorkerTimeout
      Environment: {Variables: {STAGE: !Ref Stage, BUCKET: !Ref Bucket}}
"#;

/// Defaults apply where no override is given; overrides win; an override of a parameter the
/// template does not declare is an error naming it.
#[test]
fn parameters_take_their_defaults_and_overrides() -> Result<()> {
    let mut o = opts();
    o.parameter_overrides = map(&[("Bucket", "reports")]);
    let t = Template::from_yaml(PARAMETERS, Path::new("."), &o)?;
    assert_eq!(t.queue("Jobs").expect("Jobs").name, "jobs-dev");
    let worker = t.function("Worker").expect("Worker");
    assert_eq!(worker.timeout_s, 10);
    assert_eq!(worker.env, map(&[("BUCKET", "reports"), ("STAGE", "dev")]));

    o.parameter_overrides = map(&[("Bucket", "b"), ("Stage", "prod"), ("WorkerTimeout", "60")]);
    let t = Template::from_yaml(PARAMETERS, Path::new("."), &o)?;
    assert_eq!(t.queue("Jobs").expect("Jobs").name, "jobs-prod");
    assert_eq!(t.function("Worker").expect("Worker").timeout_s, 60);

    o.parameter_overrides = map(&[("Bucket", "b"), ("Stag", "prod")]);
    let e = Template::from_yaml(PARAMETERS, Path::new("."), &o).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter Stag: an override was given but the template declares no such parameter"
    );
    Ok(())
}

/// `--parameter-overrides` takes both forms `sam` accepts, several per argument or over
/// several arguments, and refuses anything else with the entry at fault.
#[test]
fn parameter_overrides_take_both_sam_forms() -> Result<()> {
    let args = [
        "Stage=prod WorkerTimeout=60".to_owned(),
        "ParameterKey=Bucket,ParameterValue=my-bucket".to_owned(),
        r#"Greeting="hello world" Empty="#.to_owned(),
    ];
    assert_eq!(
        parse_parameter_overrides(&args)?,
        map(&[
            ("Bucket", "my-bucket"),
            ("Empty", ""),
            ("Greeting", "hello world"),
            ("Stage", "prod"),
            ("WorkerTimeout", "60"),
        ])
    );
    for bad in ["Stage", "=prod", "ParameterKey=Stage"] {
        let e = parse_parameter_overrides(&[bad.to_owned()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "--parameter-overrides: {bad:?} is neither Key=Value nor \
                 ParameterKey=Key,ParameterValue=Value"
            )
        );
    }
    Ok(())
}

/// `nightshift up --parameter-overrides` reaches the template: a key it does not declare
/// stops `up` with an error naming the key.
#[test]
fn up_refuses_an_override_the_template_does_not_declare() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("template.yaml"),
        "Parameters:\n  Stage: {Type: String, Default: dev}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !Sub 'q-${Stage}'}\n",
    )?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args(["--port", "0", "up", "--ephemeral", "--no-build"])
        .args([
            "--parameter-overrides",
            "ParameterKey=Stag,ParameterValue=prod",
        ])
        .current_dir(dir.path())
        .env_remove("NIGHTSHIFT_PORT")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "up started: {stderr}");
    assert!(
        stderr.contains(
            "parameter Stag: an override was given but the template declares no such parameter"
        ),
        "{stderr}"
    );
    Ok(())
}

// --------------------------------------------------------------- other languages' functions

/// Functions of other runtimes (and container images) are left out with the reason, and so
/// are the event sources and schedules that target them; their queue still exists, the rest
/// runs, and a destination naming a skipped function is kept as unmodelled.
#[test]
fn functions_of_other_runtimes_are_skipped_with_their_events() -> Result<()> {
    let t = load(
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Jobs: {Type: AWS::SQS::Queue}
  Rust:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: rust
      Runtime: provided.al2023
      Handler: bootstrap
      Events:
        FromJobs: {Type: SQS, Properties: {Queue: !GetAtt Jobs.Arn}}
      EventInvokeConfig:
        DestinationConfig:
          OnFailure: {Type: Lambda, Destination: !GetAtt Node.Arn}
  Node:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: node/
      Runtime: nodejs20.x
      Handler: index.handler
      Events:
        Hourly: {Type: Schedule, Properties: {Schedule: rate(1 hour)}}
        FromJobs: {Type: SQS, Properties: {Queue: !GetAtt Jobs.Arn, BatchSize: 10}}
        Web: {Type: Api, Properties: {Path: /, Method: get}}
  Py:
    Type: AWS::Lambda::Function
    Properties: {Code: py/, Runtime: python3.12, Handler: app.handler, Role: arn:aws:iam::000000000000:role/x}
  PyMapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: !GetAtt Jobs.Arn, FunctionName: !Ref Py}
  PyRule:
    Type: AWS::Events::Rule
    Properties:
      ScheduleExpression: rate(1 day)
      Targets: [{Id: py, Arn: !GetAtt Py.Arn}]
  PySchedule:
    Type: AWS::Scheduler::Schedule
    Properties:
      ScheduleExpression: rate(1 day)
      FlexibleTimeWindow: {Mode: 'OFF'}
      Target: {Arn: !GetAtt Py.Arn, RoleArn: 'arn:aws:iam::000000000000:role/x'}
  Java: {Type: AWS::Serverless::Function, Properties: {CodeUri: j, Runtime: java21, Handler: a.B}}
  Dotnet: {Type: AWS::Serverless::Function, Properties: {CodeUri: d, Runtime: dotnet8, Handler: a}}
  Ruby: {Type: AWS::Serverless::Function, Properties: {CodeUri: r, Runtime: ruby3.3, Handler: a.b}}
  Go: {Type: AWS::Serverless::Function, Properties: {CodeUri: g, Runtime: go1.x, Handler: main}}
  Image:
    Type: AWS::Serverless::Function
    Properties: {PackageType: Image}
    Metadata: {Dockerfile: Dockerfile, DockerContext: .}
"#,
    )?;
    assert_eq!(t.functions.keys().collect::<Vec<_>>(), ["Rust"]);
    let skipped: Vec<(&str, &str)> = t
        .skipped_functions
        .iter()
        .map(|s| (s.logical_id.as_str(), s.reason.as_str()))
        .collect();
    let ids: Vec<&str> = skipped.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, ["Dotnet", "Go", "Image", "Java", "Node", "Py", "Ruby"]);
    for (id, runtime) in [
        ("Dotnet", "dotnet8"),
        ("Go", "go1.x"),
        ("Java", "java21"),
        ("Node", "nodejs20.x"),
        ("Py", "python3.12"),
        ("Ruby", "ruby3.3"),
    ] {
        let reason = skipped.iter().find(|(i, _)| *i == id).expect(id).1;
        assert_eq!(
            reason,
            format!(
                "runtime {runtime} is not an OS-only runtime (provided.al2023, provided.al2): \
                 the emulator runs native executables only"
            )
        );
    }
    assert!(skipped[2].1.contains("container image"), "{skipped:?}");

    let mut events: Vec<(&str, &str, &str)> = t
        .skipped_events
        .iter()
        .map(|e| (e.id.as_str(), e.kind, e.function.as_str()))
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            ("NodeFromJobs", "event source", "Node"),
            ("NodeHourly", "schedule", "Node"),
            ("PyMapping", "event source", "Py"),
            ("PyRule", "schedule", "Py"),
            ("PySchedule", "schedule", "Py"),
        ]
    );
    assert!(
        t.skipped_events
            .iter()
            .all(|e| e.reason == format!("its function {} is skipped", e.function))
    );
    assert!(t.queue("Jobs").is_some());
    assert_eq!(
        t.event_sources
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["RustFromJobs"]
    );
    assert!(t.schedules.is_empty());
    assert_eq!(
        t.function("Rust").expect("Rust").event_invoke.on_failure,
        Some(Destination::Unmodelled {
            kind: "Lambda".into(),
            target: "Node".into()
        })
    );
    Ok(())
}

// ------------------------------------------------------------------- prebuilt artifacts

fn write_executable(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    std::fs::create_dir_all(path.parent().expect("a parent"))?;
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A deflated zip holding `bootstrap` (mode 0644, as a zip made elsewhere may have it).
fn write_zip(path: &Path, bootstrap: &[u8]) -> Result<()> {
    std::fs::create_dir_all(path.parent().expect("a parent"))?;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    zip.start_file("bootstrap", options)?;
    zip.write_all(bootstrap)?;
    zip.finish()?;
    Ok(())
}

/// `CodeUri` (or `Code`) naming a directory with a `bootstrap` (what `cargo lambda build`
/// leaves in `target/lambda/<name>/`), a `bootstrap` file, or a `.zip` is a prebuilt
/// artifact, named after its directory or zip; a directory with a Cargo.toml is a crate; an
/// artifact path that does not exist is an error naming the function and the path.
#[test]
fn prebuilt_artifacts_at_code_uri_are_recognised() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let consumer = root.join("target/lambda/consumer/bootstrap");
    write_executable(&consumer, b"#!/bin/sh\n", 0o755)?;
    write_zip(&root.join("dist/worker.zip"), b"#!/bin/sh\n")?;
    write_zip(
        &root.join("target/lambda/other/bootstrap.zip"),
        b"#!/bin/sh\n",
    )?;
    std::fs::create_dir_all(root.join("crate"))?;
    std::fs::write(
        root.join("crate/Cargo.toml"),
        "[package]\nname = \"the-crate\"\n",
    )?;
    // A bootstrap beside a Cargo.toml is a stale build: the crate is built.
    write_executable(&root.join("crate/bootstrap"), b"#!/bin/sh\n", 0o755)?;
    let t = load_in(
        root,
        r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {Runtime: provided.al2023, Handler: bootstrap}
Resources:
  Dir: {Type: AWS::Serverless::Function, Properties: {CodeUri: target/lambda/consumer/}}
  File: {Type: AWS::Serverless::Function, Properties: {CodeUri: target/lambda/consumer/bootstrap}}
  Zip: {Type: AWS::Serverless::Function, Properties: {CodeUri: dist/worker.zip}}
  BootstrapZip: {Type: AWS::Serverless::Function, Properties: {CodeUri: target/lambda/other/bootstrap.zip}}
  Named:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: dist/worker.zip}
    Metadata: {BuildProperties: {Binary: renamed}}
  Crate: {Type: AWS::Serverless::Function, Properties: {CodeUri: crate}}
  Plain:
    Type: AWS::Lambda::Function
    Properties: {Code: target/lambda/consumer, Runtime: provided.al2, Handler: bootstrap, Role: arn:aws:iam::000000000000:role/x}
"#,
    )?;
    let f = |id: &str| t.function(id).unwrap_or_else(|| panic!("{id}"));
    let bootstrap = Some(Prebuilt::Bootstrap(consumer.clone()));
    assert_eq!(
        (f("Dir").binary.as_str(), &f("Dir").prebuilt),
        ("consumer", &bootstrap)
    );
    assert_eq!(
        (f("File").binary.as_str(), &f("File").prebuilt),
        ("consumer", &bootstrap)
    );
    assert_eq!(
        (f("Plain").binary.as_str(), &f("Plain").prebuilt),
        ("consumer", &bootstrap)
    );
    assert_eq!(
        (f("Zip").binary.as_str(), &f("Zip").prebuilt),
        ("worker", &Some(Prebuilt::Zip(root.join("dist/worker.zip"))))
    );
    assert_eq!(f("BootstrapZip").binary, "other");
    assert_eq!(f("Named").binary, "renamed");
    assert_eq!(
        (f("Crate").binary.as_str(), &f("Crate").prebuilt),
        ("the-crate", &None)
    );

    for (code_uri, message) in [
        (
            "dist/missing.zip",
            format!(
                "the prebuilt artifact {} does not exist (or is not a file)",
                root.join("dist/missing.zip").display()
            ),
        ),
        (
            "target/lambda/gone/",
            format!(
                "{} has no bootstrap executable (run cargo lambda build first)",
                root.join("target/lambda/gone/").display()
            ),
        ),
    ] {
        let e = load_in(
            root,
            &format!(
                "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties: {{CodeUri: {code_uri}, Runtime: provided.al2023, Handler: bootstrap}}\n"
            ),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("resource Fn: property CodeUri: {message}")
        );
    }
    Ok(())
}

/// The real test function, prebuilt in a project without any Cargo.toml (so a cargo build
/// would fail), runs from `target/lambda/<name>/`, from a `bootstrap` path and from a zip
/// (extracted into the state dir with mode 0755), while the emulator still builds by
/// default; a function of another runtime beside them is skipped, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prebuilt_bootstrap_and_zip_run_without_cargo() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let binary = std::fs::read(crate::runtime::test_function())?;
    write_executable(&root.join("target/lambda/echo/bootstrap"), &binary, 0o755)?;
    write_zip(&root.join("dist/zipped.zip"), &binary)?;
    std::fs::write(
        root.join("template.yaml"),
        r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {Runtime: provided.al2023, Handler: bootstrap, Timeout: 5}
Resources:
  FromDir: {Type: AWS::Serverless::Function, Properties: {CodeUri: target/lambda/echo/}}
  FromFile: {Type: AWS::Serverless::Function, Properties: {CodeUri: target/lambda/echo/bootstrap}}
  FromZip: {Type: AWS::Serverless::Function, Properties: {CodeUri: dist/zipped.zip}}
  Web: {Type: AWS::Serverless::Function, Properties: {CodeUri: web/, Runtime: nodejs20.x, Handler: index.handler}}
"#,
    )?;
    let mut options = EmulatorOptions::new(root);
    options.log_format = nightshift_local::logs::LogFormat::Tracing;
    options.template = root.join("template.yaml");
    options.env_file = None;
    options.addr = "127.0.0.1:0".parse()?;
    options.invoker = InvokerChoice::Process {
        release: false,
        build: true,
    };
    let emulator = Emulator::start(options, None).await?;
    assert_eq!(emulator.template().skipped_functions[0].logical_id, "Web");
    for function in ["FromDir", "FromFile", "FromZip"] {
        let payload = format!(r#"{{"action":"echo","from":"{function}"}}"#);
        let answer = emulator.invoke(function, payload.clone()).await?;
        assert_eq!(
            answer.payload().map(|p| p.to_vec()),
            Some(payload.into_bytes()),
            "{function}: {answer:?}"
        );
    }
    let extracted = root.join(".nightshift/artifacts/FromZip/bootstrap");
    assert_eq!(
        std::fs::metadata(&extracted)?.permissions().mode() & 0o777,
        0o755
    );
    emulator.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

/// A `bootstrap` that cannot be executed, or a zip without one, stops the start with an
/// error naming the function and the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prebuilt_artifact_that_cannot_run_is_an_error_naming_it() -> Result<()> {
    for (code_uri, message) in [
        (
            "target/lambda/plain/bootstrap",
            "is not executable (chmod 755 it)",
        ),
        (
            "dist/empty.zip",
            "has no bootstrap at its root (a custom runtime's package must)",
        ),
    ] {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        write_executable(&root.join("target/lambda/plain/bootstrap"), b"x", 0o644)?;
        std::fs::create_dir_all(root.join("dist"))?;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(root.join("dist/empty.zip"))?);
        zip.start_file("README", zip::write::SimpleFileOptions::default())?;
        zip.finish()?;
        std::fs::write(
            root.join("template.yaml"),
            format!(
                "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties: {{CodeUri: {code_uri}, Runtime: provided.al2023, Handler: bootstrap}}\n"
            ),
        )?;
        let mut options = EmulatorOptions::new(root);
        options.log_format = nightshift_local::logs::LogFormat::Tracing;
        options.template = root.join("template.yaml");
        options.env_file = None;
        options.addr = "127.0.0.1:0".parse()?;
        let e = match Emulator::start(options, None).await {
            Ok(_) => panic!("{code_uri} started"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            e,
            format!("function Fn: {} {message}", root.join(code_uri).display())
        );
    }
    Ok(())
}
