//! The notification worker of `tally serve`: hands out outbox events, POSTs signed
//! deliveries to the operator's endpoints and sends emails over SMTP. The rules (what is
//! sent, when it is retried, when an endpoint is disabled) are the core's
//! (`app::core::notify`); this edge only speaks HTTP and SMTP, each call with a time limit,
//! several at once, so one hung endpoint or mail server stalls nothing else.

use std::time::Duration;

use app::core::notify::{outbox, sign, Mailing};
use app::core::store::EmailRow;
use app::core::Core;
use futures::stream::{self, StreamExt};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the outbox is looked at.
const EVERY: Duration = Duration::from_millis(250);
/// How many deliveries or emails are in flight at once.
const AT_ONCE: usize = 16;
/// Limits of one delivery (the Standard Webhooks guidance is 15-30 s) and one email.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);
const EMAIL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where emails go out: an SMTP URL and the sender.
#[derive(Clone, Default)]
pub struct MailConfig {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:port`; None: no email is sent (they are kept as `off`).
    pub smtp_url: Option<String>,
    pub from: String,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("smtp", &self.smtp_url.as_ref().map(|_| "<set>"))
            .field("from", &self.from)
            .finish()
    }
}

/// A connected mailer: the transport and the sender.
struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    fn new(config: &MailConfig) -> Result<Option<Mailer>, String> {
        let Some(url) = &config.smtp_url else {
            return Ok(None);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("TALLY_SMTP_URL: {e}"))?
            .timeout(Some(CONNECT_TIMEOUT))
            .build();
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|e| format!("TALLY_EMAIL_FROM {:?}: {e}", config.from))?;
        Ok(Some(Mailer { transport, from }))
    }

    /// Sends one email; an error says why and whether trying again is pointless.
    async fn send(&self, e: &EmailRow) -> Result<(), (String, bool)> {
        let to = e
            .to_address
            .parse::<Mailbox>()
            .map_err(|err| (format!("bad address {:?}: {err}", e.to_address), true))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(e.subject.clone())
            .message_id(None)
            .multipart(MultiPart::alternative_plain_html(
                e.text_body.clone(),
                e.html_body.clone(),
            ))
            .map_err(|err| (format!("cannot build the message: {err}"), true))?;
        match tokio::time::timeout(EMAIL_TIMEOUT, self.transport.send(message)).await {
            Err(_) => Err(("the SMTP server did not answer in time".into(), false)),
            Ok(Err(err)) => Err((err.to_string(), err.is_permanent())),
            Ok(Ok(_)) => Ok(()),
        }
    }
}

/// What the core needs to know of the mail set-up.
pub fn mailing(config: &MailConfig, public_url: &str) -> Mailing {
    Mailing {
        enabled: config.smtp_url.is_some(),
        public_url: public_url.trim_end_matches('/').to_string(),
    }
}

/// Starts the worker; it finishes its pass and exits when `stop` turns true.
pub fn spawn(
    core: Core,
    config: &MailConfig,
    sweep_every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, String> {
    let mailer = Mailer::new(config)?;
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Tally-Webhooks/1")
        .build()
        .map_err(|e| format!("webhook client: {e}"))?;
    Ok(tokio::spawn(async move {
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            pass(&core, &client, mailer.as_ref()).await;
            if last_sweep.elapsed() >= sweep_every {
                let now = core.clock.now();
                if let Err(e) = outbox::remind_grace_ending(&core.store, now, &core.mailing).await {
                    tracing::warn!(error = %e, "grace reminders failed");
                }
                last_sweep = tokio::time::Instant::now();
            }
        }
    }))
}

/// One pass: hand out new events, make due deliveries, send due emails.
async fn pass(core: &Core, client: &reqwest::Client, mailer: Option<&Mailer>) {
    let now = core.clock.now();
    loop {
        match outbox::dispatch(&core.store, now, &core.mailing).await {
            Ok(100..) => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "outbox dispatch failed");
                break;
            }
        }
    }
    match outbox::due(&core.store, now, 64).await {
        Ok(due) => {
            stream::iter(due)
                .for_each_concurrent(AT_ONCE, |o| async move {
                    let outcome = deliver(client, &o).await;
                    let now = core.clock.now();
                    if let Err(e) = outbox::finish(&core.store, now, &core.mailing, &o, outcome).await {
                        tracing::warn!(error = %e, delivery = %o.delivery.id, "cannot record a delivery");
                    }
                })
                .await
        }
        Err(e) => tracing::warn!(error = %e, "cannot read due deliveries"),
    }
    let Some(mailer) = mailer else {
        return;
    };
    match outbox::due_emails(&core.store, now, 64).await {
        Ok(due) => {
            stream::iter(due)
                .for_each_concurrent(AT_ONCE, |e| async move {
                    let outcome = mailer.send(&e).await;
                    if let Err((why, _)) = &outcome {
                        tracing::warn!(email = %e.id, error = %why, "email not sent");
                    }
                    let now = core.clock.now();
                    if let Err(err) = outbox::email_sent(&core.store, now, &e, outcome).await {
                        tracing::warn!(error = %err, email = %e.id, "cannot record an email");
                    }
                })
                .await
        }
        Err(e) => tracing::warn!(error = %e, "cannot read due emails"),
    }
}

/// One signed POST: the endpoint's status, or why there was none.
async fn deliver(client: &reqwest::Client, o: &outbox::Outgoing) -> outbox::Outcome {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let id = &o.delivery.event_id;
    let signature =
        sign::sign(&o.secret, id, timestamp, o.body.as_bytes()).map_err(|e| e.to_string())?;
    let answer = client
        .post(&o.url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(o.body.clone())
        .send()
        .await;
    match answer {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) if e.is_timeout() => Err("timed out".into()),
        Err(e) if e.is_connect() => Err(format!("cannot connect: {e}")),
        Err(e) => Err(e.to_string()),
    }
}
