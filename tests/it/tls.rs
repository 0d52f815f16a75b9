//! The HTTPS clients really speak TLS on ring: the AWS SDK client built on
//! `nightshift::adapters::aws::https_client` and object_store's S3 client (reqwest on the process
//! provider) connect to a local TLS server whose certificate nobody trusts. Both must complete
//! a TLS exchange up to certificate verification and refuse the server; neither may panic for
//! want of a crypto provider. (moto is plain HTTP, so the cloud suite never reaches TLS.)

use std::sync::Arc;

use nightshift::adapters::s3::S3Blobs;
use nightshift::ports::Blobs;
use object_store::aws::AmazonS3Builder;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::fixture_path;

/// Serves TLS on 127.0.0.1 with the untrusted `localhost` certificate; reports how each of
/// the first `connections` handshakes ended. Bounded: it stops after that many.
async fn untrusted_server(connections: usize) -> (u16, mpsc::Receiver<String>) {
    let certs = CertificateDer::pem_file_iter(fixture_path("tls/untrusted-localhost.cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key =
        PrivateKeyDer::from_pem_file(fixture_path("tls/untrusted-localhost.key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel(connections);
    tokio::spawn(async move {
        for _ in 0..connections {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let ended = match acceptor.accept(stream).await {
                Ok(_) => "handshake completed".to_string(),
                Err(e) => e.to_string(),
            };
            let _ = tx.send(ended).await;
        }
    });
    (port, rx)
}

#[tokio::test]
async fn the_sdk_client_speaks_tls_on_ring_and_verifies_the_server() {
    let (port, mut ended) = untrusted_server(1).await;
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(format!("https://localhost:{port}"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .http_client(nightshift::adapters::aws::https_client())
        .build();
    let err = aws_sdk_dynamodb::Client::from_conf(config)
        .list_tables()
        .send()
        .await
        .unwrap_err();
    let text = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
    assert!(text.contains("UnknownIssuer"), "{text}");
    // The server saw a ClientHello and the client's alert: a real TLS exchange.
    let server = ended.recv().await.unwrap();
    assert_eq!(server, "received fatal alert: UnknownCA");
}

#[tokio::test]
async fn object_store_speaks_tls_on_ring_and_verifies_the_server() {
    let (port, mut ended) = untrusted_server(1).await;
    let builder = AmazonS3Builder::new()
        .with_region("us-east-1")
        .with_endpoint(format!("https://localhost:{port}"))
        .with_access_key_id("k")
        .with_secret_access_key("s")
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        });
    let blobs = S3Blobs::with_builder(builder, "reports", "").unwrap();
    let err = blobs
        .put("x.csv", bytes::Bytes::from_static(b"a,b\n"), "text/csv")
        .await
        .unwrap_err();
    let server = ended.recv().await.unwrap();
    assert_eq!(server, "received fatal alert: UnknownCA", "{err}");
}
