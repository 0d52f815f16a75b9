//! The `nightshift` binary's commands that need no running emulator, and the error of those
//! that do when none runs.

use std::process::Command;

fn nightshift(args: &[&str]) -> (bool, String, String) {
    nightshift_in(&std::env::current_dir().unwrap(), args)
}

fn nightshift_in(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args(args)
        .current_dir(dir)
        .env_remove("NIGHTSHIFT_PORT")
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn schedule_next_prints_rfc3339_lines_and_skips_the_spring_forward_gap() {
    let (ok, out, err) = nightshift(&[
        "schedule",
        "next",
        "cron(0 2 * * ? *)",
        "--tz",
        "Europe/Berlin",
        "--from",
        "2026-03-27T12:00:00Z",
        "--count",
        "3",
    ]);
    assert!(ok, "{err}");
    // 02:00 does not exist in Berlin on 2026-03-29: that day is skipped.
    assert_eq!(
        out,
        "2026-03-28T01:00:00Z\n2026-03-30T00:00:00Z\n2026-03-31T00:00:00Z\n"
    );
}

#[test]
fn schedule_next_points_at_the_bad_field() {
    let (ok, out, err) = nightshift(&["schedule", "next", "cron(0 25 * * ? *)"]);
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("cron field 2 (hours) \"25\""), "{err}");
    let (ok, _, err) = nightshift(&[
        "schedule",
        "next",
        "rate(5 minutes)",
        "--tz",
        "Mars/Olympus",
    ]);
    assert!(!ok);
    assert!(err.contains("Mars/Olympus"), "{err}");
}

#[test]
fn commands_say_when_no_emulator_runs() {
    // Port 9 on loopback: nothing listens there.
    let (ok, _, err) = nightshift(&["--port", "9", "status"]);
    assert!(!ok);
    assert!(
        err.contains("no emulator answers on http://127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("nightshift up"), "{err}");
}

#[test]
fn a_template_it_cannot_model_is_an_error_naming_the_resource() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.yaml");
    std::fs::write(
        &template,
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      RedrivePolicy:\n        deadLetterTargetArn: !GetAtt Missing.Arn\n        maxReceiveCount: 3\n",
    )
    .unwrap();
    let (ok, _, err) = nightshift(&[
        "--port",
        "0",
        "up",
        "--template",
        template.to_str().unwrap(),
        "--env-file",
        "none",
        "--ephemeral",
        "--no-build",
    ]);
    assert!(!ok);
    assert!(
        err.contains("resource Q") && err.contains("Missing"),
        "{err}"
    );
}

/// A template whose queue's redrive names `missing`: `up` fails at load naming it, which
/// shows which template was read without building or starting anything.
fn broken_template(missing: &str) -> String {
    format!(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      RedrivePolicy:\n        deadLetterTargetArn: !GetAtt {missing}.Arn\n        maxReceiveCount: 3\n"
    )
}

#[test]
fn up_finds_the_template_where_sam_looks_and_needs_no_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let up = |extra: &[&str]| {
        let mut args = vec!["--port", "0", "up", "--ephemeral", "--no-build"];
        args.extend_from_slice(extra);
        nightshift_in(dir.path(), &args)
    };
    // Nothing there: the error names every place looked at.
    let (ok, _, err) = up(&[]);
    assert!(!ok);
    assert!(
        err.contains("no SAM template in")
            && err.contains("looked for template.yaml, template.yml, infra/template.yaml"),
        "{err}"
    );
    // infra/template.yaml (this workspace's place) is found, with no env file anywhere.
    std::fs::create_dir(dir.path().join("infra")).unwrap();
    std::fs::write(
        dir.path().join("infra/template.yaml"),
        broken_template("Infra"),
    )
    .unwrap();
    let (ok, _, err) = up(&[]);
    assert!(!ok && err.contains("Infra"), "{err}");
    // template.yml comes before it, and template.yaml before both, as sam looks.
    std::fs::write(dir.path().join("template.yml"), broken_template("Yml")).unwrap();
    let (ok, _, err) = up(&[]);
    assert!(!ok && err.contains("Yml"), "{err}");
    std::fs::write(dir.path().join("template.yaml"), broken_template("Yaml")).unwrap();
    let (ok, _, err) = up(&[]);
    assert!(!ok && err.contains("Yaml"), "{err}");
    // --template still chooses.
    let (ok, _, err) = up(&["--template", "template.yml"]);
    assert!(!ok && err.contains("Yml"), "{err}");
    // A named env file that is not there is an error naming it.
    let (ok, _, err) = up(&["--env-file", "missing.json"]);
    assert!(!ok && err.contains("missing.json"), "{err}");
    // env.json is read when present: a broken one is an error naming it.
    std::fs::write(dir.path().join("env.json"), "{").unwrap();
    let (ok, _, err) = up(&[]);
    assert!(!ok && err.contains("env.json"), "{err}");
}
