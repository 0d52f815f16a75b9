//! A real `lambda_runtime` function for the runtime tests of `nightshift-local`.
//!
//! What it does depends on the payload's `action`:
//! - `echo` (or no action): returns the payload unchanged;
//! - `pid`: returns `{"pid": N}`, so tests can tell instances apart;
//! - `sleep` with `ms`: sleeps, then returns `{"slept": ms, "pid": N}`;
//! - `error`: returns a handler error (`errorType` is the error's type name);
//! - `panic`: panics inside the handler;
//! - `exit` with `code`: exits the process mid-invocation;
//! - `env` with `name`: returns `{"value": <env var or null>}`;
//! - `deadline`: returns `{"remaining_ms": N}` computed from the invocation deadline;
//! - `log` with `message`: prints the message to stdout and stderr, then returns `{}`;
//! - `ignore_sigterm`: from now on the process ignores SIGTERM, returns `{}`.
//!
//! Before it starts polling, `TEST_INIT=exit` makes it exit with status 3,
//! `TEST_INIT=error` makes it report an init error through `/runtime/init/error`, and
//! `TEST_INIT=sleep:MS` makes its init take MS milliseconds.

use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// A handler error with a recognisable type name.
#[derive(Debug)]
struct TestFailure(String);

impl std::fmt::Display for TestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TestFailure {}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let action = payload
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("echo");
    let pid = std::process::id();
    match action {
        "echo" => Ok(payload),
        "pid" => Ok(json!({ "pid": pid })),
        // A JSON string response of `len` bytes in all (its quotes included).
        "bytes" => {
            let len = payload.get("len").and_then(Value::as_u64).unwrap_or(2) as usize;
            Ok(Value::String("x".repeat(len.saturating_sub(2))))
        }
        "sleep" => {
            let ms = payload.get("ms").and_then(Value::as_u64).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({ "slept": ms, "pid": pid }))
        }
        "error" => Err(Box::new(TestFailure(
            "the test function failed on purpose".into(),
        ))),
        "panic" => panic!("the test function panicked on purpose"),
        "exit" => {
            let code = payload.get("code").and_then(Value::as_i64).unwrap_or(1);
            std::process::exit(code as i32)
        }
        "env" => {
            let name = payload
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Ok(json!({ "value": std::env::var(name).ok() }))
        }
        "deadline" => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
            Ok(json!({ "remaining_ms": context.deadline as i64 - now }))
        }
        "log" => {
            let message = payload
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            println!("{message}");
            eprintln!("{message} (stderr)");
            Ok(json!({}))
        }
        "ignore_sigterm" => {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            // Keeping the stream alive keeps the handler installed, so SIGTERM is swallowed.
            tokio::spawn(async move { while term.recv().await.is_some() {} });
            Ok(json!({}))
        }
        other => Err(Box::new(TestFailure(format!("unknown action {other}")))),
    }
}

/// Posts an init error by hand, the way a runtime that fails its own setup would.
fn report_init_error() -> std::io::Result<()> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    let body = r#"{"errorType":"TestInitError","errorMessage":"init failed on purpose"}"#;
    let mut stream = std::net::TcpStream::connect(&api)?;
    write!(
        stream,
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Lambda-Runtime-Function-Error-Type: Runtime.InitError\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    match std::env::var("TEST_INIT").as_deref() {
        Ok("exit") => std::process::exit(3),
        Ok("error") => {
            report_init_error()?;
            std::process::exit(1)
        }
        Ok(other) => {
            if let Some(ms) = other.strip_prefix("sleep:").and_then(|ms| ms.parse().ok()) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        Err(_) => {}
    }
    lambda_runtime::run(service_fn(handle)).await
}
