//! SQL of subscriptions: the subscriptions, their invoices, and the Stripe Price of each
//! plan version.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::vocab::{GatewayKind, InvoiceStatus, Mode, SubscriptionStatus};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub plan_id: String,
    /// A downgrade waiting for the period's end.
    pub pending_plan_id: Option<String>,
    pub status: SubscriptionStatus,
    pub gateway: GatewayKind,
    pub checkout_session_id: Option<String>,
    pub checkout_url: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub current_period_start: Option<Timestamp>,
    pub current_period_end: Option<Timestamp>,
    pub cancel_at_period_end: bool,
    pub past_due_since: Option<Timestamp>,
    pub grace_ends_at: Option<Timestamp>,
    /// Stripe's `created` (seconds) of the newest subscription event applied.
    pub last_event_created: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceRow {
    pub id: String,
    pub subscription_id: String,
    pub customer_id: String,
    pub amount_cents: i64,
    pub status: InvoiceStatus,
    pub billing_reason: String,
    pub plan_id: Option<String>,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub hosted_invoice_url: Option<String>,
    pub transaction_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The Stripe (or simulated) Product and Price of one plan version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanPriceRow {
    pub plan_version_id: String,
    pub gateway: GatewayKind,
    pub mode: Mode,
    pub plan_id: String,
    pub product_id: String,
    pub price_id: String,
}

const SUBSCRIPTION_COLUMNS: &str = "id, mode, customer_id, plan_id, pending_plan_id, status, \
     gateway, checkout_session_id, checkout_url, stripe_subscription_id, current_period_start, \
     current_period_end, cancel_at_period_end, past_due_since, grace_ends_at, \
     last_event_created, created_at, updated_at";

fn micros(r: &AnyRow, i: usize) -> Result<Option<Timestamp>> {
    Ok(r.try_get::<Option<i64>, _>(i)?.map(Timestamp::from_micros))
}

fn subscription_from_row(r: &AnyRow) -> Result<SubscriptionRow> {
    Ok(SubscriptionRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        customer_id: r.try_get(2)?,
        plan_id: r.try_get(3)?,
        pending_plan_id: r.try_get(4)?,
        status: SubscriptionStatus::from_db(&r.try_get::<String, _>(5)?)?,
        gateway: GatewayKind::from_db(&r.try_get::<String, _>(6)?)?,
        checkout_session_id: r.try_get(7)?,
        checkout_url: r.try_get(8)?,
        stripe_subscription_id: r.try_get(9)?,
        current_period_start: micros(r, 10)?,
        current_period_end: micros(r, 11)?,
        cancel_at_period_end: r.try_get::<i64, _>(12)? == 1,
        past_due_since: micros(r, 13)?,
        grace_ends_at: micros(r, 14)?,
        last_event_created: r.try_get(15)?,
        created_at: Timestamp::from_micros(r.try_get(16)?),
        updated_at: Timestamp::from_micros(r.try_get(17)?),
    })
}

const INVOICE_COLUMNS: &str = "id, subscription_id, customer_id, amount_cents, status, \
     billing_reason, plan_id, period_start, period_end, hosted_invoice_url, transaction_id, \
     created_at, updated_at";

/// The subscription's invoices that are not paid, oldest first.
fn unpaid_invoices_sql() -> String {
    format!(
        "SELECT {INVOICE_COLUMNS} FROM subscription_invoices WHERE subscription_id = $1 \
         AND status <> 'paid' ORDER BY created_at, id"
    )
}

fn invoice_from_row(r: &AnyRow) -> Result<InvoiceRow> {
    Ok(InvoiceRow {
        id: r.try_get(0)?,
        subscription_id: r.try_get(1)?,
        customer_id: r.try_get(2)?,
        amount_cents: r.try_get(3)?,
        status: InvoiceStatus::from_db(&r.try_get::<String, _>(4)?)?,
        billing_reason: r.try_get(5)?,
        plan_id: r.try_get(6)?,
        period_start: Timestamp::from_micros(r.try_get(7)?),
        period_end: Timestamp::from_micros(r.try_get(8)?),
        hosted_invoice_url: r.try_get(9)?,
        transaction_id: r.try_get(10)?,
        created_at: Timestamp::from_micros(r.try_get(11)?),
        updated_at: Timestamp::from_micros(r.try_get(12)?),
    })
}

fn plan_price_from_row(r: &AnyRow) -> Result<PlanPriceRow> {
    Ok(PlanPriceRow {
        plan_version_id: r.try_get(0)?,
        gateway: GatewayKind::from_db(&r.try_get::<String, _>(1)?)?,
        mode: Mode::from_db(&r.try_get::<String, _>(2)?)?,
        plan_id: r.try_get(3)?,
        product_id: r.try_get(4)?,
        price_id: r.try_get(5)?,
    })
}

const PLAN_PRICE_COLUMNS: &str = "plan_version_id, gateway, mode, plan_id, product_id, price_id";

impl Store {
    pub async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1");
        self.one_by(&sql, id, subscription_from_row).await
    }

    pub async fn subscription_by_session(
        &self,
        session_id: &str,
    ) -> Result<Option<SubscriptionRow>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE checkout_session_id = $1"
        );
        self.one_by(&sql, session_id, subscription_from_row).await
    }

    pub async fn subscription_by_stripe_id(
        &self,
        stripe_id: &str,
    ) -> Result<Option<SubscriptionRow>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE stripe_subscription_id = $1"
        );
        self.one_by(&sql, stripe_id, subscription_from_row).await
    }

    /// The customer's newest subscription.
    pub async fn current_subscription(&self, customer_id: &str) -> Result<Option<SubscriptionRow>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE customer_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        self.one_by(&sql, customer_id, subscription_from_row).await
    }

    /// A mode's subscriptions, newest first, optionally of one status.
    pub async fn subscriptions(
        &self,
        mode: Mode,
        status: Option<SubscriptionStatus>,
        limit: i64,
    ) -> Result<Vec<SubscriptionRow>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE mode = $1 \
             AND ($2 = '' OR status = $2) ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(mode.as_str())
            .bind(status.map(|s| s.as_str()).unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(subscription_from_row).collect()
    }

    /// Subscriptions that are not canceled, oldest first (reconciliation).
    pub async fn live_subscriptions(&self, limit: i64) -> Result<Vec<SubscriptionRow>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE status <> 'canceled' \
             ORDER BY created_at LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(subscription_from_row).collect()
    }

    /// A customer's invoices, newest first.
    pub async fn invoices_of(&self, customer_id: &str) -> Result<Vec<InvoiceRow>> {
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM subscription_invoices WHERE customer_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT 200"
        );
        let rows = sqlx::query(&sql)
            .bind(customer_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(invoice_from_row).collect()
    }

    pub async fn invoice(&self, id: &str) -> Result<Option<InvoiceRow>> {
        let sql = format!("SELECT {INVOICE_COLUMNS} FROM subscription_invoices WHERE id = $1");
        self.one_by(&sql, id, invoice_from_row).await
    }

    /// The subscription's invoices that are not paid, oldest first.
    pub async fn unpaid_invoices(&self, subscription_id: &str) -> Result<Vec<InvoiceRow>> {
        let rows = sqlx::query(&unpaid_invoices_sql())
            .bind(subscription_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(invoice_from_row).collect()
    }

    pub async fn plan_price(
        &self,
        plan_version_id: &str,
        gateway: GatewayKind,
    ) -> Result<Option<PlanPriceRow>> {
        let sql = format!(
            "SELECT {PLAN_PRICE_COLUMNS} FROM plan_prices \
             WHERE plan_version_id = $1 AND gateway = $2"
        );
        let row = sqlx::query(&sql)
            .bind(plan_version_id)
            .bind(gateway.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| plan_price_from_row(&r)).transpose()
    }

    pub async fn plan_price_by_price_id(&self, price_id: &str) -> Result<Option<PlanPriceRow>> {
        let sql = format!("SELECT {PLAN_PRICE_COLUMNS} FROM plan_prices WHERE price_id = $1");
        self.one_by(&sql, price_id, plan_price_from_row).await
    }
}

impl Tx {
    pub async fn insert_plan_price(&mut self, p: &PlanPriceRow, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO plan_prices (plan_version_id, gateway, mode, plan_id, product_id, \
             price_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (plan_version_id, gateway) DO NOTHING",
        )
        .bind(&p.plan_version_id)
        .bind(p.gateway.as_str())
        .bind(p.mode.as_str())
        .bind(&p.plan_id)
        .bind(&p.product_id)
        .bind(&p.price_id)
        .bind(now.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn subscription(&mut self, id: &str) -> Result<Option<SubscriptionRow>> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| subscription_from_row(&r)).transpose()
    }

    pub async fn insert_subscription(&mut self, s: &SubscriptionRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, \
             $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ))
        .bind(&s.id)
        .bind(s.mode.as_str())
        .bind(&s.customer_id)
        .bind(&s.plan_id)
        .bind(&s.pending_plan_id)
        .bind(s.status.as_str())
        .bind(s.gateway.as_str())
        .bind(&s.checkout_session_id)
        .bind(&s.checkout_url)
        .bind(&s.stripe_subscription_id)
        .bind(s.current_period_start.map(|t| t.micros()))
        .bind(s.current_period_end.map(|t| t.micros()))
        .bind(i64::from(s.cancel_at_period_end))
        .bind(s.past_due_since.map(|t| t.micros()))
        .bind(s.grace_ends_at.map(|t| t.micros()))
        .bind(s.last_event_created)
        .bind(s.created_at.micros())
        .bind(s.updated_at.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Writes every mutable field of a subscription (read and changed under the
    /// customer's account lock).
    pub async fn update_subscription(&mut self, s: &SubscriptionRow) -> Result<()> {
        sqlx::query(
            "UPDATE subscriptions SET plan_id = $2, pending_plan_id = $3, status = $4, \
             checkout_session_id = $5, checkout_url = $6, stripe_subscription_id = $7, \
             current_period_start = $8, current_period_end = $9, cancel_at_period_end = $10, \
             past_due_since = $11, grace_ends_at = $12, last_event_created = $13, \
             updated_at = $14 WHERE id = $1",
        )
        .bind(&s.id)
        .bind(&s.plan_id)
        .bind(&s.pending_plan_id)
        .bind(s.status.as_str())
        .bind(&s.checkout_session_id)
        .bind(&s.checkout_url)
        .bind(&s.stripe_subscription_id)
        .bind(s.current_period_start.map(|t| t.micros()))
        .bind(s.current_period_end.map(|t| t.micros()))
        .bind(i64::from(s.cancel_at_period_end))
        .bind(s.past_due_since.map(|t| t.micros()))
        .bind(s.grace_ends_at.map(|t| t.micros()))
        .bind(s.last_event_created)
        .bind(s.updated_at.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// The customer's access state that holds read: when a failed renewal's grace ends.
    pub async fn set_customer_grace(
        &mut self,
        customer_id: &str,
        grace_ends_at: Option<Timestamp>,
    ) -> Result<()> {
        sqlx::query("UPDATE customers SET grace_ends_at = $1 WHERE id = $2")
            .bind(grace_ends_at.map(|t| t.micros()))
            .bind(customer_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Inserts an invoice, or writes its status, URL and grant over the stored one.
    pub async fn upsert_invoice(&mut self, i: &InvoiceRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO subscription_invoices ({INVOICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, \
             $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (id) DO UPDATE SET \
             status = excluded.status, hosted_invoice_url = excluded.hosted_invoice_url, \
             transaction_id = excluded.transaction_id, updated_at = excluded.updated_at"
        ))
        .bind(&i.id)
        .bind(&i.subscription_id)
        .bind(&i.customer_id)
        .bind(i.amount_cents)
        .bind(i.status.as_str())
        .bind(&i.billing_reason)
        .bind(&i.plan_id)
        .bind(i.period_start.micros())
        .bind(i.period_end.micros())
        .bind(&i.hosted_invoice_url)
        .bind(&i.transaction_id)
        .bind(i.created_at.micros())
        .bind(i.updated_at.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// The subscription's invoices that are not paid, oldest first.
    pub async fn unpaid_invoices(&mut self, subscription_id: &str) -> Result<Vec<InvoiceRow>> {
        let rows = sqlx::query(&unpaid_invoices_sql())
            .bind(subscription_id)
            .fetch_all(&mut *self.inner)
            .await?;
        rows.iter().map(invoice_from_row).collect()
    }
}
