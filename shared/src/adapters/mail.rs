//! Mailers built on lettre: an outbox directory (`file://dir`, one `.eml` per message) and
//! SMTP (`smtp://host:port`, plain, for local catchers like Mailpit).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart, SinglePart, header};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::ports::{MailError, Mailer, OutgoingEmail};

pub use crate::ports::REQUEST_ID_HEADER;

#[derive(Clone)]
struct RequestIdHeader(String);

impl header::Header for RequestIdHeader {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str(REQUEST_ID_HEADER)
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(RequestIdHeader(s.to_string()))
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// Builds the MIME message: text, or text + HTML alternative. Address errors are permanent.
pub fn build_message(email: &OutgoingEmail) -> Result<Message, MailError> {
    let parse = |field: &str, a: &str| -> Result<Mailbox, MailError> {
        a.parse::<Mailbox>()
            .map_err(|e| MailError::Rejected(format!("{field} address {a:?}: {e}")))
    };
    let mut builder = Message::builder()
        .from(parse("from", &email.from)?)
        .subject(email.subject.clone())
        .header(RequestIdHeader(email.request_id.clone()));
    for to in &email.to {
        builder = builder.to(parse("to", to)?);
    }
    let message = match &email.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(SinglePart::plain(email.text.clone())),
    };
    message.map_err(|e| MailError::Rejected(format!("cannot build message: {e}")))
}

/// Writes each email as an `.eml` file into a directory: the local "outbox".
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
    transport: AsyncFileTransport<Tokio1Executor>,
}

impl OutboxMailer {
    /// Uses `dir`, creating it when missing.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self, MailError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| {
            MailError::Rejected(format!("cannot create outbox {}: {e}", dir.display()))
        })?;
        Ok(OutboxMailer {
            transport: AsyncFileTransport::new(&dir),
            dir,
        })
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let message = build_message(email)?;
        let id = self
            .transport
            .send(message)
            .await
            // A full or read-only disk may recover; report it as transient.
            .map_err(|e| {
                MailError::Transient(format!(
                    "cannot write to outbox {}: {e}",
                    self.dir.display()
                ))
            })?;
        Ok(self.dir.join(format!("{id}.eml")).display().to_string())
    }
}

/// Sends over SMTP without TLS: meant for local catchers (Mailpit, MailHog) and relays on a
/// private network. Use SES in the cloud.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    /// Connects to `host:port` lazily (on first send).
    pub fn new(host: &str, port: u16) -> Self {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        SmtpMailer { transport }
    }
}

/// Sorts an SMTP failure by what the server may have done with the email: a 5xx reply will
/// repeat ([`MailError::Rejected`]); a 4xx reply, a refused connection and a client-side
/// failure mean the server did not take it ([`MailError::Transient`]); a connection lost or
/// timed out, or a reply that cannot be read, may come after the message went out (the server
/// took it and its `250` was lost), so the outcome is [`MailError::Unconfirmed`].
fn classify_smtp(err: lettre::transport::smtp::Error) -> MailError {
    let text = err.to_string();
    if err.is_permanent() {
        MailError::Rejected(text)
    } else if err.is_transient() || err.is_client() || connection_refused(&err) {
        MailError::Transient(text)
    } else {
        MailError::Unconfirmed(text)
    }
}

/// True when an error, or one of its sources, is a refused connection: nothing was sent.
pub(crate) fn connection_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = e.source();
    }
    false
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let message = build_message(email)?;
        let response = self.transport.send(message).await.map_err(classify_smtp)?;
        Ok(response.message().collect::<Vec<_>>().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Retryable;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            request_id: "req-1".into(),
            from: "nightshift@example.com".into(),
            to: vec!["ada@example.com".into()],
            subject: "Your order".into(),
            text: "Thanks".into(),
            html: Some("<p>Thanks</p>".into()),
        }
    }

    #[tokio::test]
    async fn outbox_writes_one_eml_per_send() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = OutboxMailer::new(dir.path().join("outbox")).unwrap();
        let path = mailer.send(&email()).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("X-Nightshift-Request-Id: req-1"), "{text}");
        assert!(text.contains("Subject: Your order"));
        assert!(text.contains("To: ada@example.com"));
        assert!(text.contains("multipart/alternative"));
        assert_eq!(
            std::fs::read_dir(dir.path().join("outbox"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn bad_addresses_are_permanent() {
        let mut e = email();
        e.to = vec!["nobody".into()];
        assert!(
            matches!(build_message(&e), Err(MailError::Rejected(m)) if m.contains("to address"))
        );
    }

    /// A one-shot SMTP server on loopback: greets with `greeting`, accepts one message, and
    /// then, when `drop_after_data`, closes the connection instead of answering the message.
    async fn smtp_server(greeting: &'static str, drop_after_data: bool) -> u16 {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(greeting.as_bytes()).await.unwrap();
            if !greeting.starts_with("220") {
                return;
            }
            let mut in_data = false;
            while let Ok(Some(line)) = lines.next_line().await {
                let reply: &[u8] = if in_data {
                    if line != "." {
                        continue;
                    }
                    if drop_after_data {
                        return;
                    }
                    in_data = false;
                    b"250 queued\r\n"
                } else if line.starts_with("EHLO") {
                    b"250 localhost\r\n"
                } else if line.starts_with("DATA") {
                    in_data = true;
                    b"354 go on\r\n"
                } else if line.starts_with("QUIT") {
                    b"221 bye\r\n"
                } else {
                    b"250 ok\r\n"
                };
                if write.write_all(reply).await.is_err() {
                    return;
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn smtp_outcomes_by_what_the_server_may_have_done() {
        let port = smtp_server("220 localhost ready\r\n", false).await;
        assert!(
            SmtpMailer::new("127.0.0.1", port)
                .send(&email())
                .await
                .is_ok()
        );
        // 421: the server refuses service, the message never went out. A connection dropped
        // after the whole message went out, before the reply: the server may have queued it.
        for (greeting, drop_after_data, unconfirmed) in [
            ("421 too busy, try later\r\n", false, false),
            ("220 localhost ready\r\n", true, true),
        ] {
            let port = smtp_server(greeting, drop_after_data).await;
            let err = SmtpMailer::new("127.0.0.1", port)
                .send(&email())
                .await
                .unwrap_err();
            assert_eq!(
                matches!(err, MailError::Unconfirmed(_)),
                unconfirmed,
                "{err}"
            );
            assert!(err.is_retryable(), "{err}");
        }
    }

    #[tokio::test]
    async fn smtp_unreachable_is_transient() {
        // Port 9 on loopback: nothing listens, the connection is refused at once.
        let mailer = SmtpMailer::new("127.0.0.1", 9);
        let err = mailer.send(&email()).await.unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err}");
    }
}
