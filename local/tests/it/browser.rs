//! The dashboard in a real browser: headless Chromium driven through WebDriver
//! (`chromedriver`, Debian's `chromium-driver`) against `nightshift up` on the real template
//! with the real function binaries and a manual clock. Each step checks the DOM the step
//! changed, not only that a page loaded.
//!
//! Without `chromedriver` on the PATH the test says so and passes, unless `CI` is set: CI
//! installs it (`.ci/run`) and must run this. With `NIGHTSHIFT_SCREENSHOTS=docs` it writes
//! the README's screenshots to `docs/`; otherwise to a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::run_time_schedules::App;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn on_path(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(binary))
            .find(|p| p.is_file())
    })
}

/// `chromedriver` on a free port, killed when dropped.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start(binary: &Path) -> Result<Driver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver")?;
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Driver { child, url });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("chromedriver did not listen on {port} within 10 s")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn browser(driver: &Driver) -> Result<Client> {
    let mut options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000"],
    });
    if let Some(chromium) = on_path("chromium") {
        options["binary"] = json!(chromium);
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .context("a Chromium session through chromedriver")
}

/// Waits (bounded) until an element at `css` has a text containing `text`; returns the text.
/// Pages redraw as the emulator changes, so elements are looked up afresh each time.
async fn wait_text(c: &Client, css: &str, text: &str) -> Result<String> {
    let mut last = String::new();
    for _ in 0..300 {
        for e in c.find_all(Locator::Css(css)).await.unwrap_or_default() {
            last = e.text().await.unwrap_or_default();
            if last.contains(text) {
                return Ok(last);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{css} never contained {text:?} within 30 s; last text: {last:?}")
}

/// Clicks the element at `css`, looking it up again if a redraw replaced it meanwhile.
async fn click(c: &Client, css: &str) -> Result<()> {
    let mut last = None;
    for _ in 0..50 {
        match c.find(Locator::Css(css)).await {
            Ok(e) => match e.click().await {
                Ok(()) => return Ok(()),
                Err(err) => last = Some(err.to_string()),
            },
            Err(err) => last = Some(err.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("cannot click {css}: {}", last.unwrap_or_default())
}

/// Waits (bounded) until `css` matches nothing.
async fn wait_gone(c: &Client, css: &str) -> Result<()> {
    for _ in 0..300 {
        if c.find_all(Locator::Css(css)).await?.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{css} still there after 30 s")
}

/// On the overview, clicks **advance `by`** and waits until the clock shows the move; returns
/// the clock's text before and after.
async fn advance(c: &Client, endpoint: &str, by: &str) -> Result<(String, String)> {
    c.goto(&format!("{endpoint}/ui")).await?;
    let before = wait_text(c, "#clock-now", "20").await?;
    click(c, &format!("button[data-advance=\"{by}\"]")).await?;
    // The flash comes when the advance has answered: everything it made due is done.
    wait_text(c, "#flash", "clock at").await?;
    for _ in 0..300 {
        // A redraw can replace the element between the lookup and the read (a stale element
        // reference): read it afresh on the next turn.
        let now = match c.find(Locator::Css("#clock-now")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if !now.is_empty() && now != before {
            return Ok((before, now));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the clock still shows {before} 30 s after advance {by}")
}

async fn screenshot(c: &Client, dir: &Path, name: &str) -> Result<()> {
    let png = c.screenshot().await?;
    std::fs::write(dir.join(name), png)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_drives_the_emulator_in_chromium() -> Result<()> {
    let Some(chromedriver) = on_path("chromedriver") else {
        if std::env::var_os("CI").is_some() {
            bail!("chromedriver is not installed; .ci/run installs chromium-driver");
        }
        eprintln!("skipped: no chromedriver on PATH (apt-get install chromium chromium-driver)");
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let state = tempfile::tempdir()?;
    let shots_tmp = tempfile::tempdir()?;
    let shots = match std::env::var("NIGHTSHIFT_SCREENSHOTS").as_deref() {
        Ok("docs") => workspace_root().join("docs"),
        _ => shots_tmp.path().to_path_buf(),
    };
    let app = App::start(work.path(), state.path(), "2026-06-01T00:00:00Z", true).await?;
    let driver = Driver::start(&chromedriver).await?;
    let c = browser(&driver).await?;
    let result = steps(&c, &app.endpoint(), &shots).await;
    if result.is_err() {
        // What the page showed when a step failed, for the CI log's reader.
        let _ = screenshot(&c, &workspace_root().join("target"), "browser-failure.png").await;
        let debug = c
            .execute("return window.nightshiftDebug", vec![])
            .await
            .unwrap_or_default();
        eprintln!("the page's state when the step failed: {debug}");
    }
    let _ = c.close().await;
    app.kill().await?;
    result
}

async fn steps(c: &Client, endpoint: &str, shots: &Path) -> Result<()> {
    let ui = |path: &str| format!("{endpoint}/ui{path}");

    // 1. Send a message through the page and see it in the queue's list.
    c.goto(&ui("/queues/nightshift-report-failures")).await?;
    wait_text(c, "#queue-info", "visible").await?;
    c.find(Locator::Css("#send-body"))
        .await?
        .send_keys(r#"{"hello":"from the browser"}"#)
        .await?;
    click(c, "#send-button").await?;
    wait_text(c, "#messages", "from the browser").await?;
    wait_text(c, "#flash", "sent ").await?;

    // 2. A bad job is dead-lettered with its reason; redrive it from the DLQ page.
    c.goto(&ui("/queues/nightshift-jobs")).await?;
    wait_text(c, "#queue-info", "visible").await?;
    c.find(Locator::Css("#send-body"))
        .await?
        .send_keys(r#"{"v":1,"id":"job-browser-bad","kind":"no.such.kind","payload":{},"submitted_at":"2026-06-01T00:00:00Z"}"#)
        .await?;
    click(c, "#send-button").await?;
    wait_text(c, "#flash", "sent ").await?;
    // The manual clock holds the mapping's 1 s batching window until it moves.
    advance(c, endpoint, "1m").await?;
    c.goto(&ui("/queues/nightshift-jobs-dlq")).await?;
    wait_text(c, "#messages tr[data-message-id]", "job-browser-bad").await?;
    let first_id = c
        .execute(
            "return [...document.querySelectorAll('#messages tr[data-message-id]')]
               .find(r => r.textContent.includes('job-browser-bad')).dataset.messageId",
            vec![],
        )
        .await?;
    let first_id = first_id.as_str().context("a message id")?.to_owned();
    wait_text(c, "#messages .reason", "unknown job kind").await?;
    screenshot(c, shots, "dashboard-dlq.png").await?;
    click(
        c,
        &format!("tr[data-message-id=\"{first_id}\"] input.select-message"),
    )
    .await?;
    click(c, "#redrive-selected").await?;
    wait_text(c, "#flash", "1 message(s) moved back").await?;
    // The redriven job leaves the DLQ; it runs again and, still unknown, comes back under a
    // new id.
    wait_gone(c, &format!("tr[data-message-id=\"{first_id}\"]")).await?;
    advance(c, endpoint, "1m").await?;
    c.goto(&ui("/queues/nightshift-jobs-dlq")).await?;
    wait_text(c, "#messages", "job-browser-bad").await?;

    // 3. Fire the daily report from the schedules page and open its invocation.
    c.goto(&ui("/schedules")).await?;
    wait_text(
        c,
        "tr[data-schedule=\"nightshift-daily-report\"]",
        "fire now",
    )
    .await?;
    click(
        c,
        "tr[data-schedule=\"nightshift-daily-report\"] button.fire",
    )
    .await?;
    wait_text(c, "#flash", "nightshift-daily-report: success").await?;
    c.goto(&ui("/functions/nightshift-DailyReportFunction"))
        .await?;
    wait_text(c, "#invocations tr[data-request-id]", "schedule:").await?;
    click(c, "#invocations tr[data-request-id] a").await?;
    wait_text(c, "#invocation-status", "success").await?;
    wait_text(c, "#event", "scheduled_time").await?;
    wait_text(c, "#logs", "REPORT").await?;
    screenshot(c, shots, "dashboard-invocation.png").await?;
    // Its trace id opens the chain, which starts with the report's invocation.
    let trace_id = wait_text(c, "#invocation-trace", "1-").await?;
    let trace_id = trace_id.trim().to_owned();
    click(c, "#invocation-trace a").await?;
    wait_text(c, "#chain", "nightshift-DailyReportFunction").await?;

    // 4. Advance the manual clock from the overview.
    let (before, after) = advance(c, endpoint, "1h").await?;
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(&t.replace(' ', "T"));
    let moved = parse(&after)? - parse(&before)?;
    assert_eq!(moved, chrono::TimeDelta::hours(1), "{before} -> {after}");
    wait_text(c, "#dlq-count", "1").await?;
    screenshot(c, shots, "dashboard-overview.png").await?;

    // 5. With the clock moved, email-sender has run the report's email: the report's trace
    // page shows that invocation too, in a new trace linked to the report's.
    c.goto(&ui(&format!("/traces/{trace_id}"))).await?;
    wait_text(c, "#chain", "nightshift-EmailSenderFunction").await?;
    wait_text(c, "#chain-links", &trace_id).await?;
    Ok(())
}
