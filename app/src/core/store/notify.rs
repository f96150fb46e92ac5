//! SQL of notifications: operator webhook endpoints, the outbox of events, their
//! deliveries, emails and password reset links.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::customers::{customer_from_row, CUSTOMER_SELECT};
use super::{CustomerRow, Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::vocab::{
    BalanceAlert, DeliveryStatus, EmailKind, EmailStatus, EndpointStatus, EventType, Mode,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointRow {
    pub id: String,
    pub mode: Mode,
    pub url: String,
    /// Event types, or `*` for every one.
    pub events: Vec<String>,
    pub secret: String,
    pub status: EndpointStatus,
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
}

impl EndpointRow {
    pub fn wants(&self, event: EventType) -> bool {
        self.events.iter().any(|e| e == "*" || e == event.as_str())
    }
}

/// An event in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub id: String,
    pub mode: Mode,
    pub event_type: EventType,
    pub customer_id: Option<String>,
    /// The event's `data` object, as JSON text.
    pub data: String,
    pub dedupe_key: Option<String>,
    pub dispatched: bool,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailRow {
    pub id: String,
    pub mode: Mode,
    pub customer_id: Option<String>,
    pub kind: EmailKind,
    pub to_address: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub event_id: Option<String>,
    pub dedupe_key: Option<String>,
    pub status: EmailStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

const ENDPOINT_SELECT: &str = "SELECT id, mode, url, events, secret, status, disabled_reason, \
                               created_at FROM webhook_endpoints";
const EVENT_SELECT: &str = "SELECT id, mode, type, customer_id, data, dedupe_key, dispatched, \
                            created_at FROM outbox_events";
const DELIVERY_SELECT: &str = "SELECT id, event_id, endpoint_id, status, attempts, \
                               next_attempt_at, last_status, last_error, created_at, \
                               delivered_at FROM webhook_deliveries";
const EMAIL_SELECT: &str = "SELECT id, mode, customer_id, kind, to_address, subject, \
                            text_body, html_body, event_id, dedupe_key, status, attempts, \
                            next_attempt_at, last_error, created_at, sent_at FROM emails";

fn time(r: &AnyRow, i: usize) -> Result<Option<Timestamp>> {
    Ok(r.try_get::<Option<i64>, _>(i)?.map(Timestamp::from_micros))
}

fn endpoint_from_row(r: &AnyRow) -> Result<EndpointRow> {
    Ok(EndpointRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        url: r.try_get(2)?,
        events: serde_json::from_str(&r.try_get::<String, _>(3)?)
            .map_err(|e| Error::internal(format!("endpoint events: {e}")))?,
        secret: r.try_get(4)?,
        status: EndpointStatus::from_db(&r.try_get::<String, _>(5)?)?,
        disabled_reason: r.try_get(6)?,
        created_at: Timestamp::from_micros(r.try_get(7)?),
    })
}

fn event_from_row(r: &AnyRow) -> Result<EventRow> {
    Ok(EventRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        event_type: EventType::from_db(&r.try_get::<String, _>(2)?)?,
        customer_id: r.try_get(3)?,
        data: r.try_get(4)?,
        dedupe_key: r.try_get(5)?,
        dispatched: r.try_get::<i64, _>(6)? != 0,
        created_at: Timestamp::from_micros(r.try_get(7)?),
    })
}

fn delivery_from_row(r: &AnyRow) -> Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.try_get(0)?,
        event_id: r.try_get(1)?,
        endpoint_id: r.try_get(2)?,
        status: DeliveryStatus::from_db(&r.try_get::<String, _>(3)?)?,
        attempts: r.try_get(4)?,
        next_attempt_at: time(r, 5)?,
        last_status: r.try_get(6)?,
        last_error: r.try_get(7)?,
        created_at: Timestamp::from_micros(r.try_get(8)?),
        delivered_at: time(r, 9)?,
    })
}

fn email_from_row(r: &AnyRow) -> Result<EmailRow> {
    Ok(EmailRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        customer_id: r.try_get(2)?,
        kind: EmailKind::from_db(&r.try_get::<String, _>(3)?)?,
        to_address: r.try_get(4)?,
        subject: r.try_get(5)?,
        text_body: r.try_get(6)?,
        html_body: r.try_get(7)?,
        event_id: r.try_get(8)?,
        dedupe_key: r.try_get(9)?,
        status: EmailStatus::from_db(&r.try_get::<String, _>(10)?)?,
        attempts: r.try_get(11)?,
        next_attempt_at: time(r, 12)?,
        last_error: r.try_get(13)?,
        created_at: Timestamp::from_micros(r.try_get(14)?),
        sent_at: time(r, 15)?,
    })
}

/// What changes in a delivery or an email after an attempt.
#[derive(Clone, Debug)]
pub struct Attempt<S> {
    pub status: S,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub done_at: Option<Timestamp>,
}

impl Tx {
    /// Sends a delivery again now (the console's redeliver), whatever it ended as.
    pub async fn redeliver(&mut self, id: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1 WHERE id = $2",
        )
        .bind(now.micros())
        .bind(id)
        .execute(&mut *self.inner)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_endpoint(&mut self, id: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(now.micros())
        .bind(id)
        .execute(&mut *self.inner)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_endpoint(&mut self, e: &EndpointRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, mode, url, events, secret, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&e.id)
        .bind(e.mode.as_str())
        .bind(&e.url)
        .bind(serde_json::to_string(&e.events).map_err(|e| Error::internal(e.to_string()))?)
        .bind(&e.secret)
        .bind(e.status.as_str())
        .bind(e.created_at.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Writes an event into the outbox; false when its dedupe key is already taken (a
    /// "once per period" event that was written before).
    pub async fn insert_event(&mut self, e: &EventRow) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO outbox_events (id, mode, type, customer_id, data, dedupe_key, \
             dispatched, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(&e.id)
        .bind(e.mode.as_str())
        .bind(e.event_type.as_str())
        .bind(&e.customer_id)
        .bind(&e.data)
        .bind(&e.dedupe_key)
        .bind(e.created_at.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The customers whose ledger accounts these are, with their balances as written so
    /// far in this transaction.
    pub async fn customers_of_accounts(&mut self, accounts: &[&str]) -> Result<Vec<CustomerRow>> {
        let sql = format!("{CUSTOMER_SELECT} WHERE c.account_id {{in_keys}}");
        let rows = self.fetch_all_keyed(&sql, accounts).await?;
        rows.iter().map(customer_from_row).collect()
    }

    pub async fn set_balance_alert(
        &mut self,
        customer_id: &str,
        alert: BalanceAlert,
    ) -> Result<()> {
        sqlx::query("UPDATE customers SET balance_alert = $1 WHERE id = $2")
            .bind(alert.as_str())
            .bind(customer_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// The oldest events not yet handed to endpoints and email, locked on PostgreSQL so
    /// two nodes do not both hand out the same one.
    pub async fn undispatched_events(&mut self, limit: i64) -> Result<Vec<EventRow>> {
        let lock = match self.dialect {
            super::Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            super::Dialect::Sqlite => "",
        };
        let sql = format!("{EVENT_SELECT} WHERE dispatched = 0 ORDER BY id LIMIT $1{lock}");
        let rows = sqlx::query(&sql)
            .bind(limit)
            .fetch_all(&mut *self.inner)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    pub async fn mark_dispatched(&mut self, event_id: &str) -> Result<()> {
        sqlx::query("UPDATE outbox_events SET dispatched = 1 WHERE id = $1")
            .bind(event_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn enabled_endpoints(&mut self) -> Result<Vec<EndpointRow>> {
        let sql = format!(
            "{ENDPOINT_SELECT} WHERE status = 'enabled' AND deleted_at IS NULL ORDER BY id"
        );
        let rows = sqlx::query(&sql).fetch_all(&mut *self.inner).await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    pub async fn insert_delivery(&mut self, d: &DeliveryRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 0, $5, $6) \
             ON CONFLICT (event_id, endpoint_id) DO NOTHING",
        )
        .bind(&d.id)
        .bind(&d.event_id)
        .bind(&d.endpoint_id)
        .bind(d.status.as_str())
        .bind(d.next_attempt_at.map(|t| t.micros()))
        .bind(d.created_at.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Queues an email; false when its dedupe key was taken before.
    pub async fn insert_email(&mut self, e: &EmailRow) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO emails (id, mode, customer_id, kind, to_address, subject, text_body, \
             html_body, event_id, dedupe_key, status, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(&e.id)
        .bind(e.mode.as_str())
        .bind(&e.customer_id)
        .bind(e.kind.as_str())
        .bind(&e.to_address)
        .bind(&e.subject)
        .bind(&e.text_body)
        .bind(&e.html_body)
        .bind(&e.event_id)
        .bind(&e.dedupe_key)
        .bind(e.status.as_str())
        .bind(e.next_attempt_at.map(|t| t.micros()))
        .bind(e.created_at.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_endpoint_status(
        &mut self,
        id: &str,
        status: EndpointStatus,
        reason: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET status = $1, disabled_reason = $2 \
             WHERE id = $3 AND deleted_at IS NULL",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(id)
        .execute(&mut *self.inner)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up on every delivery still pending to an endpoint (it was disabled).
    pub async fn fail_pending_deliveries(&mut self, endpoint_id: &str, why: &str) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, \
             last_error = $1 WHERE endpoint_id = $2 AND status = 'pending'",
        )
        .bind(why)
        .bind(endpoint_id)
        .execute(&mut *self.inner)
        .await?
        .rows_affected())
    }

    pub async fn insert_password_reset(
        &mut self,
        token_hash: &str,
        subject: &str,
        subject_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO password_resets (token_hash, subject, subject_id, expires_at, \
             created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(subject)
        .bind(subject_id)
        .bind(expires_at.micros())
        .bind(now.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Uses a reset link once: the subject's id when the link is unused and unexpired.
    pub async fn take_password_reset(
        &mut self,
        token_hash: &str,
        subject: &str,
        now: Timestamp,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "UPDATE password_resets SET used_at = $1 WHERE token_hash = $2 AND subject = $3 \
             AND used_at IS NULL AND expires_at > $1 RETURNING subject_id",
        )
        .bind(now.micros())
        .bind(token_hash)
        .bind(subject)
        .fetch_optional(&mut *self.inner)
        .await?)
    }
}

/// How long the oldest item due in each queue has waited (zero: nothing is waiting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLags {
    /// Stripe events received (or failed and due again) and not yet applied.
    pub stripe_inbox: std::time::Duration,
    /// Events written and not yet fanned out to endpoints and emails.
    pub outbox: std::time::Duration,
    /// Webhook deliveries due to the operator's endpoints.
    pub webhook_deliveries: std::time::Duration,
    /// Emails due to customers.
    pub emails: std::time::Duration,
}

impl QueueLags {
    /// Each queue with its name, as `/metrics` labels it.
    pub fn named(&self) -> [(&'static str, std::time::Duration); 4] {
        [
            ("stripe_inbox", self.stripe_inbox),
            ("outbox", self.outbox),
            ("webhook_deliveries", self.webhook_deliveries),
            ("emails", self.emails),
        ]
    }
}

impl Store {
    /// [`QueueLags`] at `now`: four lookups, each the first entry of an index range (the
    /// earliest due time of a status, or the first undispatched event), so it costs the
    /// same however long the tables grow.
    pub async fn queue_lags(&self, now: Timestamp) -> Result<QueueLags> {
        let earliest = |sql: &'static str| async move {
            let at: Option<i64> = sqlx::query_scalar(sql).fetch_one(&self.reader).await?;
            Ok::<_, Error>(match at {
                Some(at) if at < now.micros() => {
                    std::time::Duration::from_micros((now.micros() - at) as u64)
                }
                _ => std::time::Duration::ZERO,
            })
        };
        Ok(QueueLags {
            stripe_inbox: earliest(
                "SELECT MIN(next_attempt_at) FROM webhook_events \
                 WHERE status IN ('pending', 'failed')",
            )
            .await?,
            outbox: earliest(
                "SELECT MIN(created_at) FROM outbox_events WHERE id = \
                 (SELECT MIN(id) FROM outbox_events WHERE dispatched = 0)",
            )
            .await?,
            webhook_deliveries: earliest(
                "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'",
            )
            .await?,
            emails: earliest("SELECT MIN(next_attempt_at) FROM emails WHERE status = 'pending'")
                .await?,
        })
    }

    /// Customers with this email address, in every mode.
    pub async fn customers_by_email(&self, email: &str) -> Result<Vec<CustomerRow>> {
        let sql = format!("{CUSTOMER_SELECT} WHERE c.email = $1 ORDER BY c.mode, c.id");
        let rows = sqlx::query(&sql)
            .bind(email)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(customer_from_row).collect()
    }

    /// Customers whose past-due grace ends after `from` and no later than `until`.
    pub async fn customers_with_grace_ending(
        &self,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<CustomerRow>> {
        let sql = format!(
            "{CUSTOMER_SELECT} WHERE c.grace_ends_at > $1 AND c.grace_ends_at <= $2 ORDER BY c.id"
        );
        let rows = sqlx::query(&sql)
            .bind(from.micros())
            .bind(until.micros())
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(customer_from_row).collect()
    }

    pub async fn endpoint(&self, id: &str) -> Result<Option<EndpointRow>> {
        let sql = format!("{ENDPOINT_SELECT} WHERE id = $1 AND deleted_at IS NULL");
        self.one_by(&sql, id, endpoint_from_row).await
    }

    /// A mode's endpoints (every mode with None), newest first.
    pub async fn endpoints(&self, mode: Option<Mode>) -> Result<Vec<EndpointRow>> {
        let sql = format!(
            "{ENDPOINT_SELECT} WHERE deleted_at IS NULL AND ($1 IS NULL OR mode = $1) \
             ORDER BY id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(mode.map(|m| m.as_str()))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    pub async fn event(&self, id: &str) -> Result<Option<EventRow>> {
        let sql = format!("{EVENT_SELECT} WHERE id = $1");
        self.one_by(&sql, id, event_from_row).await
    }

    /// Events newest first, of a mode and optionally one customer, before an id.
    pub async fn events(
        &self,
        mode: Option<Mode>,
        customer_id: Option<&str>,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let sql = format!(
            "{EVENT_SELECT} WHERE ($1 IS NULL OR mode = $1) AND ($2 IS NULL OR customer_id = $2) \
             AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(mode.map(|m| m.as_str()))
            .bind(customer_id)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    pub async fn deliveries_of_event(&self, event_id: &str) -> Result<Vec<DeliveryRow>> {
        let sql = format!("{DELIVERY_SELECT} WHERE event_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(event_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// The newest deliveries, optionally of one status.
    pub async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let sql = format!(
            "{DELIVERY_SELECT} WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(status.map(|s| s.as_str()))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<DeliveryRow>> {
        let sql = format!("{DELIVERY_SELECT} WHERE id = $1");
        self.one_by(&sql, id, delivery_from_row).await
    }

    /// Pending deliveries due at `now`, oldest first.
    pub async fn due_deliveries(&self, now: Timestamp, limit: i64) -> Result<Vec<DeliveryRow>> {
        let sql = format!(
            "{DELIVERY_SELECT} WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(now.micros())
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Takes a due delivery for one attempt: moves its next attempt to `lease_until`, so
    /// no other worker (or node) sends it meanwhile. False when another took it.
    pub async fn claim_delivery(
        &self,
        id: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $1 \
             WHERE id = $2 AND status = 'pending' AND next_attempt_at <= $3",
        )
        .bind(lease_until.micros())
        .bind(id)
        .bind(now.micros())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn record_delivery(&self, id: &str, a: &Attempt<DeliveryStatus>) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
             last_status = $4, last_error = $5, delivered_at = $6 WHERE id = $7",
        )
        .bind(a.status.as_str())
        .bind(a.attempts)
        .bind(a.next_attempt_at.map(|t| t.micros()))
        .bind(a.last_status)
        .bind(&a.last_error)
        .bind(a.done_at.map(|t| t.micros()))
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn emails(&self, customer_id: Option<&str>, limit: i64) -> Result<Vec<EmailRow>> {
        let sql = format!(
            "{EMAIL_SELECT} WHERE ($1 IS NULL OR customer_id = $1) ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(customer_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(email_from_row).collect()
    }

    pub async fn due_emails(&self, now: Timestamp, limit: i64) -> Result<Vec<EmailRow>> {
        let sql = format!(
            "{EMAIL_SELECT} WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(now.micros())
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(email_from_row).collect()
    }

    pub async fn claim_email(
        &self,
        id: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE emails SET next_attempt_at = $1 \
             WHERE id = $2 AND status = 'pending' AND next_attempt_at <= $3",
        )
        .bind(lease_until.micros())
        .bind(id)
        .bind(now.micros())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn record_email(&self, id: &str, a: &Attempt<EmailStatus>) -> Result<()> {
        sqlx::query(
            "UPDATE emails SET status = $1, attempts = $2, next_attempt_at = $3, \
             last_error = $4, sent_at = $5 WHERE id = $6",
        )
        .bind(a.status.as_str())
        .bind(a.attempts)
        .bind(a.next_attempt_at.map(|t| t.micros()))
        .bind(&a.last_error)
        .bind(a.done_at.map(|t| t.micros()))
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Customer alert settings: the monthly budget, its hard stop, the emails turned off.
    pub async fn set_alert_settings(
        &self,
        customer_id: &str,
        budget: Option<i64>,
        hard_stop: bool,
        opt_out: &[EmailKind],
    ) -> Result<()> {
        sqlx::query(
            "UPDATE customers SET budget_monthly = $1, budget_hard_stop = $2, email_opt_out = $3 \
             WHERE id = $4",
        )
        .bind(budget)
        .bind(i64::from(hard_stop))
        .bind(serde_json::to_string(opt_out).map_err(|e| Error::internal(e.to_string()))?)
        .bind(customer_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
