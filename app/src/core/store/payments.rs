//! SQL of payments: top-ups, the webhook inbox, disputes, reconciliation runs, settings.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Dialect, Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::money::Money;
use crate::core::vocab::{DisputeStatus, GatewayKind, InboxStatus, Mode, TopupSource, TopupStatus};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopupRow {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub amount: Money,
    pub amount_cents: i64,
    pub status: TopupStatus,
    pub source: TopupSource,
    pub gateway: GatewayKind,
    pub checkout_session_id: Option<String>,
    pub checkout_url: Option<String>,
    pub success_url: Option<String>,
    pub payment_intent_id: Option<String>,
    pub refunded_cents: i64,
    pub simulated_paid_at: Option<Timestamp>,
    pub transaction_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEventRow {
    pub id: String,
    pub event_type: String,
    pub mode: Mode,
    pub payload: String,
    pub status: InboxStatus,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub source: String,
    pub received_at: Timestamp,
    pub processed_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconciliationRow {
    pub id: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub checked: i64,
    pub repaired: i64,
    pub unexplained: i64,
    pub report: String,
}

/// A customer's saved card and auto top-up settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoTopupRow {
    pub customer_id: String,
    pub enabled: bool,
    pub threshold: Money,
    pub amount_cents: i64,
    pub monthly_limit_cents: i64,
    pub armed: bool,
    pub capped_month: Option<String>,
    pub card_gateway: Option<GatewayKind>,
    pub stripe_customer_id: Option<String>,
    pub payment_method_id: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

const AUTO_COLUMNS: &str = "customer_id, enabled, threshold, amount_cents, monthly_limit_cents, \
     armed, capped_month, card_gateway, stripe_customer_id, payment_method_id, last_error, \
     last_error_at, updated_at";

fn auto_from_row(r: &AnyRow) -> Result<AutoTopupRow> {
    Ok(AutoTopupRow {
        customer_id: r.try_get(0)?,
        enabled: r.try_get::<i64, _>(1)? == 1,
        threshold: Money::from_nanos(r.try_get(2)?),
        amount_cents: r.try_get(3)?,
        monthly_limit_cents: r.try_get(4)?,
        armed: r.try_get::<i64, _>(5)? == 1,
        capped_month: r.try_get(6)?,
        card_gateway: r
            .try_get::<Option<String>, _>(7)?
            .as_deref()
            .map(GatewayKind::from_db)
            .transpose()?,
        stripe_customer_id: r.try_get(8)?,
        payment_method_id: r.try_get(9)?,
        last_error: r.try_get(10)?,
        last_error_at: r.try_get::<Option<i64>, _>(11)?.map(Timestamp::from_micros),
        updated_at: Timestamp::from_micros(r.try_get(12)?),
    })
}

/// The settings part of auto top-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoTopupSettings {
    pub enabled: bool,
    pub threshold: Money,
    pub amount_cents: i64,
    pub monthly_limit_cents: i64,
}

const IN_FLIGHT: &str = "source = 'auto' AND status IN ('pending', 'processing')";

const TOPUP_COLUMNS: &str =
    "id, mode, customer_id, amount, amount_cents, status, source, gateway, \
     checkout_session_id, checkout_url, success_url, payment_intent_id, refunded_cents, \
     simulated_paid_at, transaction_id, last_error, created_at, updated_at";

fn topup_from_row(r: &AnyRow) -> Result<TopupRow> {
    Ok(TopupRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        customer_id: r.try_get(2)?,
        amount: Money::from_nanos(r.try_get(3)?),
        amount_cents: r.try_get(4)?,
        status: TopupStatus::from_db(&r.try_get::<String, _>(5)?)?,
        source: TopupSource::from_db(&r.try_get::<String, _>(6)?)?,
        gateway: GatewayKind::from_db(&r.try_get::<String, _>(7)?)?,
        checkout_session_id: r.try_get(8)?,
        checkout_url: r.try_get(9)?,
        success_url: r.try_get(10)?,
        payment_intent_id: r.try_get(11)?,
        refunded_cents: r.try_get(12)?,
        simulated_paid_at: r.try_get::<Option<i64>, _>(13)?.map(Timestamp::from_micros),
        transaction_id: r.try_get(14)?,
        last_error: r.try_get(15)?,
        created_at: Timestamp::from_micros(r.try_get(16)?),
        updated_at: Timestamp::from_micros(r.try_get(17)?),
    })
}

const EVENT_COLUMNS: &str =
    "id, type, mode, payload, status, attempts, next_attempt_at, last_error, \
     source, received_at, processed_at";

fn event_from_row(r: &AnyRow) -> Result<WebhookEventRow> {
    Ok(WebhookEventRow {
        id: r.try_get(0)?,
        event_type: r.try_get(1)?,
        mode: Mode::from_db(&r.try_get::<String, _>(2)?)?,
        payload: r.try_get(3)?,
        status: InboxStatus::from_db(&r.try_get::<String, _>(4)?)?,
        attempts: r.try_get(5)?,
        next_attempt_at: Timestamp::from_micros(r.try_get(6)?),
        last_error: r.try_get(7)?,
        source: r.try_get(8)?,
        received_at: Timestamp::from_micros(r.try_get(9)?),
        processed_at: r.try_get::<Option<i64>, _>(10)?.map(Timestamp::from_micros),
    })
}

impl Store {
    pub async fn topup(&self, id: &str) -> Result<Option<TopupRow>> {
        let sql = format!("SELECT {TOPUP_COLUMNS} FROM topups WHERE id = $1");
        self.one_by(&sql, id, topup_from_row).await
    }

    pub async fn topup_by_session(&self, session_id: &str) -> Result<Option<TopupRow>> {
        let sql = format!("SELECT {TOPUP_COLUMNS} FROM topups WHERE checkout_session_id = $1");
        self.one_by(&sql, session_id, topup_from_row).await
    }

    pub async fn topup_by_payment_intent(&self, payment_intent: &str) -> Result<Option<TopupRow>> {
        let sql = format!("SELECT {TOPUP_COLUMNS} FROM topups WHERE payment_intent_id = $1");
        self.one_by(&sql, payment_intent, topup_from_row).await
    }

    /// Top-ups still waiting for payment that were created before `before`.
    pub async fn open_topups(&self, before: Timestamp, limit: i64) -> Result<Vec<TopupRow>> {
        let sql = format!(
            "SELECT {TOPUP_COLUMNS} FROM topups WHERE status IN ('pending', 'processing') \
             AND created_at < $1 ORDER BY created_at LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(before.micros())
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(topup_from_row).collect()
    }

    /// Paid top-ups (for checking that each has a payment behind it).
    pub async fn paid_topups_since(&self, since: Timestamp, limit: i64) -> Result<Vec<TopupRow>> {
        let sql = format!(
            "SELECT {TOPUP_COLUMNS} FROM topups WHERE status = 'paid' AND updated_at >= $1 \
             ORDER BY updated_at LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(since.micros())
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(topup_from_row).collect()
    }

    /// Top-ups of one mode, newest first, optionally of one status (the console's list).
    pub async fn topups(
        &self,
        mode: &str,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TopupRow>> {
        let sql = format!(
            "SELECT {TOPUP_COLUMNS} FROM topups WHERE mode = $1 AND ($2 IS NULL OR status = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(mode)
            .bind(status)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(topup_from_row).collect()
    }

    pub async fn auto_topup(&self, customer_id: &str) -> Result<Option<AutoTopupRow>> {
        let sql = format!("SELECT {AUTO_COLUMNS} FROM auto_topups WHERE customer_id = $1");
        self.one_by(&sql, customer_id, auto_from_row).await
    }

    /// Customers with auto top-up on (the sweep checks each against its threshold).
    pub async fn auto_topup_customers(&self, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM customers WHERE auto_topup_below IS NOT NULL ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    pub async fn topups_of(&self, customer_id: &str, limit: i64) -> Result<Vec<TopupRow>> {
        let sql = format!(
            "SELECT {TOPUP_COLUMNS} FROM topups WHERE customer_id = $1 ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(customer_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(topup_from_row).collect()
    }

    pub async fn webhook_event(&self, id: &str) -> Result<Option<WebhookEventRow>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM webhook_events WHERE id = $1");
        self.one_by(&sql, id, event_from_row).await
    }

    /// The inbox, newest first, optionally of one status.
    pub async fn webhook_events(
        &self,
        status: Option<InboxStatus>,
        limit: i64,
    ) -> Result<Vec<WebhookEventRow>> {
        let rows = match status {
            Some(s) => {
                let sql = format!("SELECT {EVENT_COLUMNS} FROM webhook_events WHERE status = $1 ORDER BY received_at DESC LIMIT $2");
                sqlx::query(&sql)
                    .bind(s.as_str())
                    .bind(limit)
                    .fetch_all(&self.reader)
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM webhook_events ORDER BY received_at DESC LIMIT $1"
                );
                sqlx::query(&sql)
                    .bind(limit)
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        rows.iter().map(event_from_row).collect()
    }

    /// Stores an event unless its id is already in the inbox; true when stored now.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_webhook_event(
        &self,
        id: &str,
        event_type: &str,
        mode: &str,
        payload: &str,
        source: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO webhook_events (id, type, mode, payload, status, attempts, next_attempt_at, source, received_at) \
             VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(event_type)
        .bind(mode)
        .bind(payload)
        .bind(now.micros())
        .bind(source)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Claims up to `limit` events due for (another) attempt, or left claimed by a worker
    /// that died, oldest first, in one statement: their ids. On PostgreSQL the candidate
    /// rows are locked with `FOR UPDATE SKIP LOCKED`, so nodes claiming at the same moment
    /// take disjoint sets without waiting on each other; SQLite has one writer.
    pub async fn claim_webhook_events(
        &self,
        now: Timestamp,
        stale_claim: Timestamp,
        limit: i64,
    ) -> Result<Vec<String>> {
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE webhook_events SET status = 'processing', claimed_at = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM webhook_events WHERE \
               (status IN ('pending', 'failed') AND next_attempt_at <= $1) \
               OR (status = 'processing' AND claimed_at < $2) \
             ORDER BY received_at, id LIMIT $3{lock}) \
             RETURNING id, received_at"
        );
        // In a transaction of its own: a worker cut off while the claimed rows stream back
        // (its task cancelled) rolls the claim back whole, instead of leaving a statement
        // half-stepped on the writer connection.
        let mut tx = self.writer.begin().await?;
        let mut claimed: Vec<(String, i64)> = sqlx::query_as(&sql)
            .bind(now.micros())
            .bind(stale_claim.micros())
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        // RETURNING keeps no order: apply the oldest first, as received (events stored in
        // the same microsecond by id, which for our own simulated events is their order).
        claimed.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        Ok(claimed.into_iter().map(|(id, _)| id).collect())
    }

    pub async fn finish_webhook_event(&self, id: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_events SET status = 'processed', processed_at = $1, last_error = NULL, claimed_at = NULL WHERE id = $2",
        )
        .bind(now.micros())
        .bind(id)
        .execute(&self.writer)
        .await?;
        self.written
            .webhook_events_processed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub async fn fail_webhook_event(
        &self,
        id: &str,
        error: &str,
        retry_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_events SET status = 'failed', last_error = $1, next_attempt_at = $2, claimed_at = NULL WHERE id = $3",
        )
        .bind(error)
        .bind(retry_at.micros())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Puts an event back in the queue now (a replay from the console or the CLI).
    pub async fn count_webhook_events(&self, status: InboxStatus) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE status = $1")
                .bind(status.as_str())
                .fetch_one(&self.reader)
                .await?,
        )
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    /// Sets a value unless one exists; returns the value that holds afterwards.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(&self.writer)
                .await?,
        )
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn insert_reconciliation(&self, r: &ReconciliationRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO reconciliation_runs (id, started_at, finished_at, checked, repaired, unexplained, report) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.id)
        .bind(r.started_at.micros())
        .bind(r.finished_at.micros())
        .bind(r.checked)
        .bind(r.repaired)
        .bind(r.unexplained)
        .bind(&r.report)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn reconciliations(&self, limit: i64) -> Result<Vec<ReconciliationRow>> {
        let rows = sqlx::query(
            "SELECT id, started_at, finished_at, checked, repaired, unexplained, report \
             FROM reconciliation_runs ORDER BY started_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReconciliationRow {
                    id: r.try_get(0)?,
                    started_at: Timestamp::from_micros(r.try_get(1)?),
                    finished_at: Timestamp::from_micros(r.try_get(2)?),
                    checked: r.try_get(3)?,
                    repaired: r.try_get(4)?,
                    unexplained: r.try_get(5)?,
                    report: r.try_get(6)?,
                })
            })
            .collect()
    }
}

impl Tx {
    /// Puts a stored event back in the queue (not while a worker holds it).
    pub async fn requeue_webhook_event(&mut self, id: &str, now: Timestamp) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE webhook_events SET status = 'pending', next_attempt_at = $1, claimed_at = NULL \
             WHERE id = $2 AND status <> 'processing'",
        )
        .bind(now.micros())
        .bind(id)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn insert_topup(&mut self, t: &TopupRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO topups (id, mode, customer_id, amount, amount_cents, status, source, gateway, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&t.id)
        .bind(t.mode.as_str())
        .bind(&t.customer_id)
        .bind(t.amount.nanos())
        .bind(t.amount_cents)
        .bind(t.status.as_str())
        .bind(t.source.as_str())
        .bind(t.gateway.as_str())
        .bind(t.created_at.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn topup(&mut self, id: &str) -> Result<Option<TopupRow>> {
        let sql = format!("SELECT {TOPUP_COLUMNS} FROM topups WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| topup_from_row(&r)).transpose()
    }

    pub async fn set_topup_session(
        &mut self,
        id: &str,
        session_id: &str,
        url: &str,
        success_url: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE topups SET checkout_session_id = $1, checkout_url = $2, success_url = $3, updated_at = $4 WHERE id = $5",
        )
            .bind(session_id)
            .bind(url)
            .bind(success_url)
            .bind(now.micros())
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Moves a top-up from one of `from` to `to`; false when it was in none of them.
    pub async fn set_topup_status(
        &mut self,
        id: &str,
        from: &[TopupStatus],
        to: TopupStatus,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<bool> {
        let list = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE topups SET status = $1, last_error = $2, updated_at = $3 WHERE id = $4 AND status IN ({list})"
        );
        let n = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(error)
            .bind(now.micros())
            .bind(id)
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Marks a top-up paid with what fulfilled it; false when it was already paid.
    pub async fn mark_topup_paid(
        &mut self,
        id: &str,
        payment_intent: Option<&str>,
        transaction_id: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE topups SET status = 'paid', payment_intent_id = COALESCE($1, payment_intent_id), \
             transaction_id = $2, updated_at = $3 WHERE id = $4 AND status <> 'paid'",
        )
        .bind(payment_intent)
        .bind(transaction_id)
        .bind(now.micros())
        .bind(id)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn set_topup_payment_intent(
        &mut self,
        id: &str,
        payment_intent: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query("UPDATE topups SET payment_intent_id = $1, updated_at = $2 WHERE id = $3")
            .bind(payment_intent)
            .bind(now.micros())
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn auto_topup(&mut self, customer_id: &str) -> Result<Option<AutoTopupRow>> {
        let sql = format!("SELECT {AUTO_COLUMNS} FROM auto_topups WHERE customer_id = $1");
        let row = sqlx::query(&sql)
            .bind(customer_id)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| auto_from_row(&r)).transpose()
    }

    /// Remembers the card a customer paid with, for later off-session charges.
    pub async fn save_card(
        &mut self,
        customer_id: &str,
        gateway: GatewayKind,
        stripe_customer: &str,
        payment_method: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO auto_topups (customer_id, card_gateway, stripe_customer_id, payment_method_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (customer_id) DO UPDATE SET \
             card_gateway = excluded.card_gateway, stripe_customer_id = excluded.stripe_customer_id, \
             payment_method_id = excluded.payment_method_id, updated_at = excluded.updated_at",
        )
        .bind(customer_id)
        .bind(gateway.as_str())
        .bind(stripe_customer)
        .bind(payment_method)
        .bind(now.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Saves the settings, re-arms, clears the last error and the monthly cap, and copies
    /// the threshold onto the customer (NULL when off).
    pub async fn configure_auto_topup(
        &mut self,
        customer_id: &str,
        s: &AutoTopupSettings,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO auto_topups (customer_id, enabled, threshold, amount_cents, monthly_limit_cents, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (customer_id) DO UPDATE SET \
             enabled = excluded.enabled, threshold = excluded.threshold, amount_cents = excluded.amount_cents, \
             monthly_limit_cents = excluded.monthly_limit_cents, armed = 1, capped_month = NULL, \
             last_error = NULL, last_error_at = NULL, updated_at = excluded.updated_at",
        )
        .bind(customer_id)
        .bind(i64::from(s.enabled))
        .bind(s.threshold.nanos())
        .bind(s.amount_cents)
        .bind(s.monthly_limit_cents)
        .bind(now.micros())
        .execute(&mut *self.inner)
        .await?;
        sqlx::query("UPDATE customers SET auto_topup_below = $1 WHERE id = $2")
            .bind(s.enabled.then_some(s.threshold.nanos()))
            .bind(customer_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Takes the trigger: true for exactly one caller per crossing. Locks the row until
    /// the transaction ends, so concurrent checks of one customer run one after another.
    pub async fn disarm_auto_topup(&mut self, customer_id: &str, month: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE auto_topups SET armed = 0 WHERE customer_id = $1 AND enabled = 1 AND armed = 1 \
             AND payment_method_id IS NOT NULL AND (capped_month IS NULL OR capped_month <> $2)",
        )
        .bind(customer_id)
        .bind(month)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The month's limit is reached: stay armed, but charge nothing until next month.
    pub async fn cap_auto_topup(
        &mut self,
        customer_id: &str,
        month: &str,
        error: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE auto_topups SET armed = 1, capped_month = $1, last_error = $2, last_error_at = $3 \
             WHERE customer_id = $4",
        )
        .bind(month)
        .bind(error)
        .bind(now.micros())
        .bind(customer_id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Records (or clears, with None) what went wrong with the last auto top-up.
    pub async fn set_auto_topup_error(
        &mut self,
        customer_id: &str,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE auto_topups SET last_error = $1, last_error_at = $2 WHERE customer_id = $3",
        )
        .bind(error)
        .bind(error.map(|_| now.micros()))
        .bind(customer_id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Re-arms when no auto top-up is in flight; true when it was disarmed before.
    pub async fn rearm_auto_topup(&mut self, customer_id: &str) -> Result<bool> {
        let sql = format!(
            "UPDATE auto_topups SET armed = 1 WHERE customer_id = $1 AND armed = 0 \
             AND NOT EXISTS (SELECT 1 FROM topups WHERE customer_id = $1 AND {IN_FLIGHT})"
        );
        let n = sqlx::query(&sql)
            .bind(customer_id)
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    pub async fn auto_topup_in_flight(&mut self, customer_id: &str) -> Result<bool> {
        let sql = format!("SELECT COUNT(*) FROM topups WHERE customer_id = $1 AND {IN_FLIGHT}");
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(customer_id)
            .fetch_one(&mut *self.inner)
            .await?;
        Ok(n > 0)
    }

    /// Cents charged (or being charged) by auto top-up since `since`.
    pub async fn auto_topup_cents_since(
        &mut self,
        customer_id: &str,
        since: Timestamp,
    ) -> Result<i64> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(amount_cents) AS BIGINT) FROM topups WHERE customer_id = $1 \
             AND source = 'auto' AND status IN ('pending', 'processing', 'paid') AND created_at >= $2",
        )
        .bind(customer_id)
        .bind(since.micros())
        .fetch_one(&mut *self.inner)
        .await?;
        Ok(n.unwrap_or(0))
    }

    pub async fn mark_simulated_paid(&mut self, id: &str, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE topups SET simulated_paid_at = COALESCE(simulated_paid_at, $1), updated_at = $1 WHERE id = $2")
            .bind(now.micros())
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Raises the refunded total from exactly `from` to `to` (Stripe's cumulative figure);
    /// false when another worker moved it first.
    pub async fn advance_refunded(
        &mut self,
        id: &str,
        from: i64,
        to: i64,
        now: Timestamp,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE topups SET refunded_cents = $1, updated_at = $2 WHERE id = $3 AND refunded_cents = $4",
        )
        .bind(to)
        .bind(now.micros())
        .bind(id)
        .bind(from)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Records a dispute's state; returns the previous status (None when new).
    pub async fn upsert_dispute(
        &mut self,
        id: &str,
        topup_id: &str,
        amount: Money,
        status: DisputeStatus,
        now: Timestamp,
    ) -> Result<Option<DisputeStatus>> {
        let previous: Option<String> =
            sqlx::query_scalar("SELECT status FROM disputes WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *self.inner)
                .await?;
        let previous = previous
            .as_deref()
            .map(DisputeStatus::from_db)
            .transpose()?;
        match previous {
            None => {
                sqlx::query(
                    "INSERT INTO disputes (id, topup_id, amount, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(id)
                .bind(topup_id)
                .bind(amount.nanos())
                .bind(status.as_str())
                .bind(now.micros())
                .execute(&mut *self.inner)
                .await?;
            }
            // Open → won or lost; lost → won when the decision is reversed.
            Some(p) if p.may_become(status) => {
                sqlx::query("UPDATE disputes SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
                    .bind(status.as_str())
                    .bind(now.micros())
                    .bind(id)
                    .bind(p.as_str())
                    .execute(&mut *self.inner)
                    .await?;
            }
            Some(_) => {}
        }
        Ok(previous)
    }
}
