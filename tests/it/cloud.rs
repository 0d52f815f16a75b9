//! The cloud adapters (DynamoDB, SES v2, S3) against a local moto server, through the real SDK
//! and `object_store` clients, and the three functions running on them end to end.
//!
//! One `moto_server` per test binary, on 127.0.0.1 with a port the OS picks; it is stopped when
//! the binary exits. Without `moto_server` on PATH these tests print why and pass, unless `CI`
//! is set: in CI a missing moto is a failure (`.ci/run` installs it).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use nightshift::adapters::dynamodb::{DynamoStore, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
use nightshift::adapters::memory::{ManualClock, MemoryQueue};
use nightshift::adapters::s3::S3Blobs;
use nightshift::adapters::ses::SesMailer;
use nightshift::batch::BatchConfig;
use nightshift::contracts::{JobOutcome, OutcomeStatus};
use nightshift::ports::{
    BlobError, Blobs, Claim, ClaimRequest, Clock, MailError, Mailer, OutgoingEmail, Settled, Store,
    StoreError,
};
use object_store::aws::AmazonS3Builder;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const REGION: &str = "eu-central-1";

/// A running moto server; dropping the stdin pipe (at process exit) makes the wrapper shell
/// kill it.
struct Moto {
    url: String,
    addr: String,
    _child: Mutex<Child>,
    _stdin: Mutex<ChildStdin>,
}

static MOTO: OnceLock<Option<Moto>> = OnceLock::new();

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

fn start_moto() -> Option<Moto> {
    if !on_path("moto_server") {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto_server is not on PATH but CI is set: install it with pip install \"moto[server]\""
        );
        return None;
    }
    // `read` returns when this process exits and its end of the pipe closes; then the shell
    // stops the server it started, by its pid.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("moto_server -H 127.0.0.1 -p 0 2>&1 & pid=$!; read line; kill $pid")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn moto_server");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Reads until the server exits: it logs every request, and a full pipe would stall it.
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find("Running on http://127.0.0.1:")
                && let Some(tx) = tx.take()
            {
                let port = line[at + "Running on http://127.0.0.1:".len()..].trim();
                let _ = tx.send(port.to_string());
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("moto_server did not report its port within 60 s");
    let addr = format!("127.0.0.1:{port}");
    Some(Moto {
        url: format!("http://{addr}"),
        addr,
        _child: Mutex::new(child),
        _stdin: Mutex::new(stdin),
    })
}

fn moto() -> Option<&'static Moto> {
    let moto = MOTO.get_or_init(start_moto).as_ref();
    if moto.is_none() {
        eprintln!(
            "skipping: moto_server is not on PATH (pip install \"moto[server]\"); CI runs this test"
        );
    }
    moto
}

macro_rules! moto_or_skip {
    () => {
        match moto() {
            Some(m) => m,
            None => return,
        }
    };
}

/// A name no other test of this run uses (moto's state is shared by the binary).
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn credentials() -> aws_sdk_dynamodb::config::Credentials {
    aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "moto")
}

fn dynamodb(moto: &Moto) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new(REGION))
        .endpoint_url(&moto.url)
        .credentials_provider(credentials())
        .http_client(nightshift::adapters::aws::https_client())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

fn sesv2(moto: &Moto) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new(REGION))
        .endpoint_url(&moto.url)
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .http_client(nightshift::adapters::aws::https_client())
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

fn s3_builder(moto: &Moto) -> AmazonS3Builder {
    // For the raw store some tests build next to the adapter's.
    nightshift::adapters::aws::install_tls_provider();
    AmazonS3Builder::new()
        .with_region(REGION)
        .with_endpoint(&moto.url)
        .with_allow_http(true)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
}

/// The table as `infra/template.yaml` declares it (the infra tests hold the template to the
/// same keys and TTL attribute).
async fn create_table(moto: &Moto) -> String {
    let table = unique("state");
    let client = dynamodb(moto);
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let string = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string(PARTITION_KEY))
        .attribute_definitions(string(SORT_KEY))
        .key_schema(key(PARTITION_KEY, KeyType::Hash))
        .key_schema(key(SORT_KEY, KeyType::Range))
        .send()
        .await
        .expect("create table");
    client
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enable ttl");
    table
}

/// One HTTP/1.1 request to moto outside the SDKs (its `/moto-api` and unsigned S3 calls).
async fn http(moto: &Moto, method: &str, path: &str, body: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&moto.addr).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            moto.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("moto answers within 30 s")
        .expect("http exchange with moto");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

async fn create_bucket(moto: &Moto) -> String {
    let bucket = unique("reports");
    let config = format!(
        "<CreateBucketConfiguration><LocationConstraint>{REGION}</LocationConstraint></CreateBucketConfiguration>"
    );
    let (status, body) = http(moto, "PUT", &format!("/{bucket}"), &config).await;
    assert_eq!(status, 200, "create bucket: {body}");
    bucket
}

async fn verify_identity(moto: &Moto, identity: &str) {
    sesv2(moto)
        .create_email_identity()
        .email_identity(identity)
        .send()
        .await
        .expect("create email identity");
}

/// What moto recorded as sent through SES: `(message id, source, destinations, raw MIME)`.
async fn sent_mail(moto: &Moto) -> Vec<(String, String, Vec<String>, String)> {
    let (status, body) = http(moto, "GET", "/moto-api/data.json", "").await;
    assert_eq!(status, 200, "{body}");
    let data: Value = serde_json::from_str(&body).expect("moto data is json");
    data["ses"]["RawMessage"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| {
                    let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                    let destinations = m["destinations"]
                        .as_array()
                        .map(|d| {
                            d.iter()
                                .filter_map(|a| a.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    (text("id"), text("source"), destinations, text("raw_data"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

// ------------------------------------------------------------------------------- DynamoDB

fn req<'a>(now: &str, until: &str, owner: &'a str, hash: &'a str) -> ClaimRequest<'a> {
    ClaimRequest {
        now: t(now),
        until: t(until),
        owner,
        payload_hash: hash,
    }
}

#[tokio::test]
async fn cloud_dynamodb_claims_complete_release_and_expire() {
    let moto = moto_or_skip!();
    let table = create_table(moto).await;
    let store = DynamoStore::new(dynamodb(moto), &table);
    let (now, until) = ("2026-11-22T10:00:00Z", "2026-11-22T10:00:30Z");
    let a = req(now, until, "a", "h");
    assert_eq!(store.claim("k", &a).await.unwrap(), Claim::Acquired);
    assert_eq!(
        store.claim("k", &req(now, until, "b", "h")).await.unwrap(),
        Claim::InProgress { until: t(until) }
    );
    // After the holder's deadline the claim is taken over, though the item is still there;
    // the first holder can then neither release nor complete it.
    let c = req("2026-11-22T10:00:31Z", until, "c", "h");
    assert_eq!(store.claim("k", &c).await.unwrap(), Claim::Acquired);
    assert_eq!(store.release("k", "a").await.unwrap(), Settled::NotOwner);
    assert_eq!(
        store
            .complete("k", "a", "stale", t("2026-11-23T10:00:00Z"))
            .await
            .unwrap(),
        Settled::NotOwner
    );
    assert_eq!(
        store
            .complete("k", "c", "ok", t("2026-11-23T10:00:00Z"))
            .await
            .unwrap(),
        Settled::Done
    );
    assert_eq!(
        store.claim("k", &a).await.unwrap(),
        Claim::Completed("ok".into())
    );
    // Release leaves a completed record alone.
    assert_eq!(store.release("k", "c").await.unwrap(), Settled::NotOwner);
    assert_eq!(
        store.claim("k", &a).await.unwrap(),
        Claim::Completed("ok".into())
    );
    // Past its TTL a completed record is claimable again.
    let d = req("2026-11-23T10:00:01Z", until, "d", "h");
    assert_eq!(store.claim("k", &d).await.unwrap(), Claim::Acquired);
    assert_eq!(store.release("k", "d").await.unwrap(), Settled::Done);
    assert_eq!(store.claim("k", &a).await.unwrap(), Claim::Acquired);

    // The item carries the TTL attribute DynamoDB expires it by, in epoch seconds.
    let item = dynamodb(moto)
        .get_item()
        .table_name(&table)
        .key(
            PARTITION_KEY,
            aws_sdk_dynamodb::types::AttributeValue::S("idem#k".into()),
        )
        .key(
            SORT_KEY,
            aws_sdk_dynamodb::types::AttributeValue::S("idem".into()),
        )
        .send()
        .await
        .unwrap();
    let ttl = item.item().and_then(|i| i.get(TTL_ATTRIBUTE)).cloned();
    assert_eq!(
        ttl,
        Some(aws_sdk_dynamodb::types::AttributeValue::N(
            t(until).timestamp().to_string()
        ))
    );
    let ttl_config = dynamodb(moto)
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl_config
            .time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some(TTL_ATTRIBUTE)
    );
}

#[tokio::test]
async fn cloud_dynamodb_two_deliveries_one_winner_and_a_reused_key_is_a_mismatch() {
    let moto = moto_or_skip!();
    let table = create_table(moto).await;
    let a = DynamoStore::new(dynamodb(moto), &table);
    let b = DynamoStore::new(dynamodb(moto), &table);
    let (now, until) = ("2026-11-22T10:00:00Z", "2026-11-22T10:00:30Z");
    // Each pair of claims goes one after the other: moto does not serialize concurrent
    // conditional writes (two racing claims both "win" there now and then, which DynamoDB's
    // conditional writes never allow), so the races themselves run on SQLite
    // (adapters::sqlite tests); here the conditions and what the loser is told are checked.
    let mut wins = 0;
    for i in 0..20 {
        let key = format!("k{i}");
        // Two deliveries of the same message: one claim, the other waits.
        let claims = [
            a.claim(&key, &req(now, until, "a", "same")).await.unwrap(),
            b.claim(&key, &req(now, until, "b", "same")).await.unwrap(),
        ];
        wins += claims.iter().filter(|c| **c == Claim::Acquired).count();
        assert_eq!(
            claims,
            [Claim::Acquired, Claim::InProgress { until: t(until) }],
            "{key}"
        );
        // Two different payloads under one key: the second is told it differs.
        let other = format!("other{i}");
        assert_eq!(
            a.claim(&other, &req(now, until, "a", "p1")).await.unwrap(),
            Claim::Acquired
        );
        assert_eq!(
            b.claim(&other, &req(now, until, "b", "p2")).await.unwrap(),
            Claim::PayloadMismatch {
                stored: "p1".into()
            }
        );
    }
    assert_eq!(wins, 20);
}

#[tokio::test]
async fn cloud_dynamodb_suppressions_follow_the_store_rules() {
    let moto = moto_or_skip!();
    let table = create_table(moto).await;
    let store = DynamoStore::new(dynamodb(moto), &table);
    nightshift::adapters::conformance::check_suppressions(&store, "").await;
}

#[tokio::test]
async fn cloud_dynamodb_sequences_apply_in_order_once() {
    let moto = moto_or_skip!();
    let table = create_table(moto).await;
    let store = DynamoStore::new(dynamodb(moto), &table);
    // The store rules every adapter follows; the races run on SQLite (moto does not
    // serialize concurrent conditional writes, see above).
    nightshift::adapters::conformance::check_sequences(&store, "").await;
    // A second client on the same table sees the same sequence: 6 is next for sku-a.
    let other = DynamoStore::new(dynamodb(moto), &table);
    assert_eq!(
        other.apply_in_sequence("sku-a", 7, 1).await.unwrap(),
        nightshift::ports::SequenceOutcome::Gap { expected: 6 }
    );
    assert_eq!(
        other.apply_in_sequence("sku-a", 6, 1).await.unwrap(),
        nightshift::ports::SequenceOutcome::Applied { balance: 11 }
    );
}

#[tokio::test]
async fn cloud_dynamodb_complete_with_outcome_is_one_transaction() {
    let moto = moto_or_skip!();
    let table = create_table(moto).await;
    let store = DynamoStore::new(dynamodb(moto), &table);
    let (now, until) = ("2026-11-22T10:00:00Z", "2026-11-22T10:00:30Z");
    let outcome = |id: &str| JobOutcome {
        v: 1,
        job_id: id.into(),
        kind: "user.signup".into(),
        status: OutcomeStatus::Succeeded,
        submitted_at: t("2026-11-22T09:59:00Z"),
        finished_at: t(now),
        latency_ms: 7,
        error: None,
    };
    let expires = t("2026-12-06T10:00:00Z");
    assert_eq!(
        store
            .claim("job:1", &req(now, until, "a", "h"))
            .await
            .unwrap(),
        Claim::Acquired
    );
    assert_eq!(
        store
            .complete_with_outcome("job:1", "a", "done", expires, &outcome("1"))
            .await
            .unwrap(),
        Settled::Done
    );
    assert_eq!(
        store
            .claim("job:1", &req(now, until, "b", "h"))
            .await
            .unwrap(),
        Claim::Completed("done".into())
    );
    // A lapsed claim taken over by another owner: the outcome is still recorded, the other
    // owner's claim is left alone.
    store
        .claim("job:2", &req(now, until, "a", "h"))
        .await
        .unwrap();
    store
        .claim(
            "job:2",
            &req("2026-11-22T10:01:00Z", "2026-11-22T10:01:30Z", "b", "h"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .complete_with_outcome("job:2", "a", "done", expires, &outcome("2"))
            .await
            .unwrap(),
        Settled::NotOwner
    );
    assert_eq!(
        store
            .claim(
                "job:2",
                &req("2026-11-22T10:01:01Z", "2026-11-22T10:01:31Z", "c", "h")
            )
            .await
            .unwrap(),
        Claim::InProgress {
            until: t("2026-11-22T10:01:30Z")
        }
    );
    let day = store
        .outcomes_between(t("2026-11-22T00:00:00Z"), t("2026-11-23T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(day, vec![outcome("1"), outcome("2")]);
}

#[tokio::test]
async fn cloud_dynamodb_outcomes_by_day_across_shards_and_pages() {
    let moto = moto_or_skip!();
    let table = create_table(moto).await;
    let store = DynamoStore::new(dynamodb(moto), &table);
    // 120 jobs every 30 minutes from 2026-11-20T12:00Z: two and a half UTC days, all shards.
    let start = t("2026-11-20T12:00:00Z");
    let mut all = Vec::new();
    for i in 0..120u32 {
        let o = JobOutcome {
            v: 1,
            job_id: format!("job-{i}"),
            kind: if i % 2 == 0 {
                "order.placed"
            } else {
                "user.signup"
            }
            .into(),
            status: if i % 7 == 0 {
                OutcomeStatus::Failed
            } else {
                OutcomeStatus::Succeeded
            },
            submitted_at: start + chrono::Duration::minutes(30 * i64::from(i) - 5),
            finished_at: start + chrono::Duration::minutes(30 * i64::from(i)),
            latency_ms: u64::from(i) * 3,
            error: (i % 7 == 0).then(|| format!("error {i}")),
        };
        store.record_outcome(&o).await.unwrap();
        all.push(o);
    }
    // Recording a job again replaces it.
    store.record_outcome(&all[5]).await.unwrap();

    // Berlin's 2026-11-21: 23:00Z on the 20th to 23:00Z on the 21st, across two UTC days.
    let (from, to) = (t("2026-11-20T23:00:00Z"), t("2026-11-21T23:00:00Z"));
    let got = store.outcomes_between(from, to).await.unwrap();
    let expected: Vec<JobOutcome> = all
        .iter()
        .filter(|o| o.finished_at >= from && o.finished_at < to)
        .cloned()
        .collect();
    assert_eq!(expected.len(), 48);
    assert_eq!(got, expected);
    // Bounds: `from` is included, `to` is not.
    assert_eq!(got.first().unwrap().finished_at, from);
    assert!(got.last().unwrap().finished_at < to);
    assert!(
        store
            .outcomes_between(t("2026-11-25T00:00:00Z"), t("2026-11-26T00:00:00Z"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn cloud_dynamodb_missing_table_is_permanent() {
    let moto = moto_or_skip!();
    let store = DynamoStore::new(dynamodb(moto), unique("no-such-table"));
    let err = store
        .claim(
            "k",
            &req("2026-11-22T10:00:00Z", "2026-11-22T10:00:30Z", "o", "h"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Permanent(m) if m.contains("ResourceNotFoundException")),
        "{err}"
    );
}

// ------------------------------------------------------------------------------------ SES

fn email(from: &str, request_id: &str) -> OutgoingEmail {
    OutgoingEmail {
        request_id: request_id.into(),
        from: from.into(),
        to: vec!["ada@example.com".into(), "grace@example.com".into()],
        subject: format!("Your order {request_id}"),
        text: "Thanks for your order, Ada.".into(),
        html: Some("<p>Thanks for your order, <b>Ada</b>.</p>".into()),
    }
}

#[tokio::test]
async fn cloud_ses_sends_the_mime_message_read_back_from_moto() {
    let moto = moto_or_skip!();
    let from = format!("{}@example.com", unique("sender"));
    verify_identity(moto, &from).await;
    let mailer = SesMailer::new(sesv2(moto));
    let request_id = unique("req");
    let message_id = mailer.send(&email(&from, &request_id)).await.unwrap();
    assert!(!message_id.is_empty());

    let sent = sent_mail(moto).await;
    let (_, source, destinations, raw) = sent
        .iter()
        .find(|(id, ..)| *id == message_id)
        .unwrap_or_else(|| panic!("message {message_id} not in moto's sent mail: {sent:?}"));
    assert_eq!(source, &from);
    assert_eq!(destinations, &["ada@example.com", "grace@example.com"]);
    assert!(
        raw.contains(&format!("Subject: Your order {request_id}")),
        "{raw}"
    );
    assert!(raw.contains(&format!("X-Nightshift-Request-Id: {request_id}")));
    assert!(raw.contains("Thanks for your order, Ada."), "{raw}");
    assert!(
        raw.contains("<p>Thanks for your order, <b>Ada</b>.</p>"),
        "{raw}"
    );
    assert!(raw.contains("multipart/alternative"));
}

#[tokio::test]
async fn cloud_ses_unverified_sender_is_rejected_not_retried() {
    let moto = moto_or_skip!();
    let mailer = SesMailer::new(sesv2(moto));
    let from = format!("{}@unverified.example.com", unique("nobody"));
    let err = mailer.send(&email(&from, "r-1")).await.unwrap_err();
    assert!(
        matches!(&err, MailError::Rejected(m) if m.contains("MessageRejected")),
        "{err}"
    );
}

// ------------------------------------------------------------------------------------- S3

#[tokio::test]
async fn cloud_s3_put_get_under_the_prefix_with_content_type() {
    let moto = moto_or_skip!();
    let bucket = create_bucket(moto).await;
    let blobs = S3Blobs::with_builder(s3_builder(moto), &bucket, "nightly").unwrap();
    let csv = bytes::Bytes::from_static(b"kind,status,count\norder.placed,succeeded,1\n");
    let at = blobs
        .put("reports/2026-11-21.csv", csv.clone(), "text/csv")
        .await
        .unwrap();
    assert_eq!(at, format!("s3://{bucket}/nightly/reports/2026-11-21.csv"));
    assert_eq!(
        blobs.get("reports/2026-11-21.csv").await.unwrap(),
        Some(csv.clone())
    );
    assert_eq!(blobs.get("reports/missing.csv").await.unwrap(), None);
    // Replacing is allowed (a retried report rewrites its files).
    blobs
        .put("reports/2026-11-21.csv", csv.clone(), "text/csv")
        .await
        .unwrap();

    // Read the object itself: the key carries the prefix and the content type was stored.
    let raw = s3_builder(moto).with_bucket_name(&bucket).build().unwrap();
    let object = raw
        .get(&"nightly/reports/2026-11-21.csv".into())
        .await
        .unwrap();
    assert_eq!(
        object
            .attributes
            .get(&Attribute::ContentType)
            .map(|v| v.as_ref()),
        Some("text/csv")
    );
    assert_eq!(object.bytes().await.unwrap(), csv);
    let listed = raw
        .list_with_delimiter(Some(&"nightly/reports".into()))
        .await
        .unwrap();
    assert_eq!(listed.objects.len(), 1);
}

#[tokio::test]
async fn cloud_s3_missing_bucket_is_permanent() {
    let moto = moto_or_skip!();
    let blobs = S3Blobs::with_builder(s3_builder(moto), &unique("no-bucket"), "").unwrap();
    let err = blobs
        .put("reports/x.csv", bytes::Bytes::from_static(b"x"), "text/csv")
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Permanent(_)), "{err}");
}

// ------------------------------------------------------------------------ all three functions

#[tokio::test]
async fn cloud_the_three_functions_run_on_dynamodb_ses_and_s3() {
    let moto = moto_or_skip!();
    let table = create_table(moto).await;
    let bucket = create_bucket(moto).await;
    let from = format!("{}@example.com", unique("pipeline"));
    verify_identity(moto, &from).await;

    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(dynamodb(moto), &table));
    let blobs = Arc::new(S3Blobs::with_builder(s3_builder(moto), &bucket, "").unwrap());
    let mailer = Arc::new(SesMailer::new(sesv2(moto)));
    let queue = Arc::new(MemoryQueue::default());
    // The jobs run on the 21st (Berlin), so they finish in that day's report.
    let clock = Arc::new(ManualClock::new(t("2026-11-21T08:00:00Z")));
    let ttl = Duration::from_secs(86_400);

    let processor = Arc::new(queue_processor::Deps::new(
        queue.clone(),
        store.clone(),
        Arc::new(nightshift::adapters::memory::MemoryScheduler::default()),
        clock.clone(),
        BatchConfig {
            source_queue_url: Some(JOBS_URL.into()),
            dlq_url: Some(JOBS_DLQ_URL.into()),
            jitter_seed: Some(1),
            ..BatchConfig::default()
        },
        EMAILS_URL.into(),
        ttl,
    ));
    // The batch delivered twice: completed jobs are skipped the second time.
    for _ in 0..2 {
        let response = queue_processor::handler(
            processor.clone(),
            lambda_event(sqs_event("sqs-event-jobs.json")),
        )
        .await
        .unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    assert_eq!(queue.sent_to(EMAILS_URL).len(), 2);

    let sender = Arc::new(email_sender::Deps::new(
        mailer,
        store.clone(),
        clock.clone(),
        queue.clone(),
        BatchConfig {
            source_queue_url: Some(EMAILS_URL.into()),
            dlq_url: Some(EMAILS_DLQ_URL.into()),
            jitter_seed: Some(1),
            ..BatchConfig::default()
        },
        from.clone(),
        100.0,
        ttl,
    ));
    let emails = event_of(
        queue
            .sent_to(EMAILS_URL)
            .iter()
            .enumerate()
            .map(|(i, m)| record(&format!("email-{i}"), &m.body, 1))
            .collect(),
    );
    // Redelivered too: DynamoDB's idempotency records keep it to one email per request.
    for _ in 0..2 {
        let response = email_sender::handler(sender.clone(), lambda_event(emails.clone()))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    let mut ours: Vec<(Vec<String>, String)> = sent_mail(moto)
        .await
        .into_iter()
        .filter(|(_, source, ..)| *source == from)
        .map(|(_, _, to, raw)| (to, raw))
        .collect();
    ours.sort();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert_eq!(ours[0].0, ["ada@example.com"]);
    assert!(
        ours[0]
            .1
            .contains("X-Nightshift-Request-Id: order-confirmation-job-order-1001")
    );
    assert_eq!(ours[1].0, ["grace@example.com"]);
    assert!(
        ours[1]
            .1
            .contains("X-Nightshift-Request-Id: welcome-job-signup-42")
    );

    let clock_dyn: Arc<dyn Clock> = clock.clone();
    let report = Arc::new(daily_report::Deps {
        idempotency: nightshift::idempotency::Idempotency::new(
            store.clone(),
            clock_dyn.clone(),
            Duration::from_secs(7 * 86_400),
        ),
        store: store.clone(),
        blobs: blobs.clone(),
        queue: queue.clone(),
        clock: clock_dyn,
        time_zone: "Europe/Berlin".parse().unwrap(),
        recipients: vec!["ops@example.com".into()],
        emails_queue_url: EMAILS_URL.into(),
        lookback_days: daily_report::DEFAULT_LOOKBACK_DAYS,
        dead_letter_queues: Vec::new(),
        metrics: nightshift::metrics::Emitter::stdout(daily_report::FUNCTION),
    });
    clock.set(t("2026-11-22T03:00:00Z"));
    let event = serde_json::json!({"scheduled_time": "2026-11-22T03:00:00Z"});
    let summary = daily_report::handler(report.clone(), lambda_event(event.clone()))
        .await
        .unwrap();
    // order.placed and user.signup succeeded, the unknown kind failed; the broken body has no id.
    assert_eq!((summary.total, summary.failed), (3, 1));
    assert!(!summary.already_done);
    let csv = blobs
        .get(&summary.csv_key)
        .await
        .unwrap()
        .expect("csv in s3");
    let csv = String::from_utf8(csv.to_vec()).unwrap();
    assert!(csv.contains("order.placed"), "{csv}");
    assert!(csv.contains("invoice.paid"), "{csv}");
    assert!(blobs.get(&summary.html_key).await.unwrap().is_some());
    // The retried schedule finds the date done: no second email.
    let again = daily_report::handler(report, lambda_event(event))
        .await
        .unwrap();
    assert!(again.already_done);
    assert_eq!(queue.sent_to(EMAILS_URL).len(), 3);
}
