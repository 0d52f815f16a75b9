//! The functions' metrics as the emulator extracts them from their EMF lines: an order placed
//! through the real `nightshift up` (the real function binaries, a manual clock) reads back
//! from `nightshift metrics` as the numbers CloudWatch would show.

use std::time::Duration;

use anyhow::Result;
use nightshift_local::control::ControlClient;
use nightshift_local::metrics::{MetricSummary, MetricsQuery};
use serde_json::Value;

use crate::run_time_schedules::App;

/// The sum of the metric `name` under exactly `dimensions`, if it has data points.
fn sum(summaries: &[MetricSummary], name: &str, dimensions: &[(&str, &str)]) -> Option<f64> {
    summaries
        .iter()
        .find(|s| {
            s.metric.name == name
                && s.metric.dimensions.len() == dimensions.len()
                && dimensions
                    .iter()
                    .all(|(k, v)| s.metric.dimensions.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_reads_back_as_one_succeeded_job_and_one_email_sent() -> Result<()> {
    let work = tempfile::tempdir()?;
    let state = tempfile::tempdir()?;
    // A working directory that does not exist yet: `up` makes it (the functions' store and
    // outbox land there, so the email counted below proves they ran in it).
    let work_dir = work.path().join("not/yet");
    let app = App::start(&work_dir, state.path(), "2026-11-21T09:30:00Z", true).await?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let order = std::fs::read_to_string(root.join("tests/fixtures/jobs/order-placed.json"))?;
    app.cli(&["send", "jobs", &order]).await?;
    let client = ControlClient::new(app.endpoint());
    let job = [
        ("Function", "queue-processor"),
        ("Kind", "order.placed"),
        ("Outcome", "succeeded"),
    ];
    let email = [("Function", "email-sender")];
    // The functions run as processes, in real time: until the email's metrics are in.
    let mut summaries = Vec::new();
    for _ in 0..60 {
        summaries = client.metrics(&MetricsQuery::default()).await?;
        if sum(&summaries, "EmailsSent", &email).is_some_and(|n| n >= 1.0) {
            break;
        }
        app.advance("1s").await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(sum(&summaries, "Jobs", &job), Some(1.0), "{summaries:#?}");
    // The rollups queue-processor publishes count the same job under Function, Outcome and
    // Function alone (the template's failure-rate alarm divides those two).
    assert_eq!(
        sum(
            &summaries,
            "Jobs",
            &[("Function", "queue-processor"), ("Outcome", "succeeded")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sum(&summaries, "Jobs", &[("Function", "queue-processor")]),
        Some(1.0)
    );
    assert_eq!(sum(&summaries, "EmailsSent", &email), Some(1.0));
    let outbox = std::fs::read_dir(work_dir.join(".nightshift/outbox"))?;
    let emails = outbox
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .count();
    assert_eq!(emails, 1, "the email is in the new working directory");
    assert_eq!(sum(&summaries, "EmailsDeadLettered", &email), Some(0.0));

    // The CLI: a table for people, JSON for machines, a window and a function.
    let table = app
        .cli(&["metrics", "--function", "queue-processor"])
        .await?;
    let row = table
        .lines()
        .find(|l| l.contains("nightshift/Jobs") && l.contains("Kind=order.placed"))
        .unwrap_or_else(|| panic!("no order.placed row in\n{table}"));
    assert!(row.contains("Outcome=succeeded"), "{row}");
    assert!(!table.contains("email-sender"), "{table}");
    let json: Value =
        serde_json::from_str(&app.cli(&["metrics", "--since", "10m", "--json"]).await?)?;
    let sent = json
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "EmailsSent")
        .expect("EmailsSent in the JSON");
    assert_eq!(
        sent["Function"],
        Value::Null,
        "dimensions are under `dimensions`"
    );
    assert_eq!(sent["dimensions"]["Function"], "email-sender");
    assert_eq!(sent["sum"], 1.0);
    // An hour later on the manual clock, the last 10 minutes hold none of it.
    app.advance("1h").await?;
    let later = client
        .metrics(&MetricsQuery {
            since_s: Some(600),
            ..MetricsQuery::default()
        })
        .await?;
    assert_eq!(sum(&later, "EmailsSent", &email), None, "{later:#?}");
    // The status carries the running totals.
    let status = client.status().await?;
    let total = status
        .metrics
        .iter()
        .find(|t| t.metric.name == "EmailsSent")
        .expect("EmailsSent in the status");
    assert_eq!(total.sum, 1.0);
    // A function without metrics says so, and names those with some.
    let none = app
        .cli(&["metrics", "--function", "queue-procesor"])
        .await?;
    assert!(none.contains("functions with metrics: "), "{none}");
    app.kill().await?;
    Ok(())
}
