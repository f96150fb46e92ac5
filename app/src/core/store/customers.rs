//! SQL of customers: the customer rows (with their ledger account's balance), an account's
//! transaction listing, and the customers' one-time portal links.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::money::Money;
use crate::core::vocab::{AccountStatus, BalanceAlert, EmailKind, Mode};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerRow {
    pub id: String,
    pub mode: Mode,
    pub external_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub plan_id: String,
    pub account_id: String,
    pub low_balance_threshold: Option<Money>,
    pub created_at: Timestamp,
    /// From the customer's ledger account.
    pub available: Money,
    pub held: Money,
    pub account_status: AccountStatus,
    /// The auto top-up threshold while auto top-up is on.
    pub auto_topup_below: Option<Money>,
    /// While a subscription of theirs is past due: when its grace ends.
    pub grace_ends_at: Option<Timestamp>,
    /// The balance alert last notified (see `notify::alerts`).
    pub balance_alert: BalanceAlert,
    /// The customer's own monthly budget, and whether it stops new work like a cap.
    pub budget_monthly: Option<Money>,
    pub budget_hard_stop: bool,
    /// The optional emails the customer turned off.
    pub email_opt_out: Vec<EmailKind>,
}

impl CustomerRow {
    /// Whether a failed renewal's grace is over at `now` (new work is refused).
    pub fn past_grace(&self, now: Timestamp) -> bool {
        self.grace_ends_at.is_some_and(|end| now >= end)
    }

    /// The customer's monthly budget when it stops new work like a cap.
    pub fn hard_budget(&self) -> Option<Money> {
        self.budget_monthly.filter(|_| self.budget_hard_stop)
    }
}

pub(super) const CUSTOMER_SELECT: &str =
    "SELECT c.id, c.mode, c.external_id, c.email, c.name, c.plan_id, \
     c.account_id, c.low_balance_threshold, c.created_at, a.available, a.held, a.status, \
     c.auto_topup_below, c.grace_ends_at, c.balance_alert, c.budget_monthly, \
     c.budget_hard_stop, c.email_opt_out \
     FROM customers c JOIN accounts a ON a.id = c.account_id";

pub(super) fn customer_from_row(r: &AnyRow) -> Result<CustomerRow> {
    customer_from_row_at(r, 0)
}

/// A customer whose columns start at `at` in the row.
pub(super) fn customer_from_row_at(r: &AnyRow, at: usize) -> Result<CustomerRow> {
    Ok(CustomerRow {
        id: r.try_get(at)?,
        mode: Mode::from_db(&r.try_get::<String, _>(at + 1)?)?,
        external_id: r.try_get(at + 2)?,
        email: r.try_get(at + 3)?,
        name: r.try_get(at + 4)?,
        plan_id: r.try_get(at + 5)?,
        account_id: r.try_get(at + 6)?,
        low_balance_threshold: r.try_get::<Option<i64>, _>(at + 7)?.map(Money::from_nanos),
        created_at: Timestamp::from_micros(r.try_get(at + 8)?),
        available: Money::from_nanos(r.try_get(at + 9)?),
        held: Money::from_nanos(r.try_get(at + 10)?),
        account_status: AccountStatus::from_db(&r.try_get::<String, _>(at + 11)?)?,
        auto_topup_below: r.try_get::<Option<i64>, _>(at + 12)?.map(Money::from_nanos),
        grace_ends_at: r
            .try_get::<Option<i64>, _>(at + 13)?
            .map(Timestamp::from_micros),
        balance_alert: BalanceAlert::from_db(&r.try_get::<String, _>(at + 14)?)?,
        budget_monthly: r.try_get::<Option<i64>, _>(at + 15)?.map(Money::from_nanos),
        budget_hard_stop: r.try_get::<i64, _>(at + 16)? != 0,
        email_opt_out: serde_json::from_str(&r.try_get::<String, _>(at + 17)?)
            .map_err(|e| crate::core::error::Error::internal(format!("email_opt_out: {e}")))?,
    })
}

impl Store {
    pub async fn customer(&self, id: &str) -> Result<Option<CustomerRow>> {
        let sql = format!("{CUSTOMER_SELECT} WHERE c.id = $1");
        self.one_by(&sql, id, customer_from_row).await
    }

    pub async fn customer_by_external_id(
        &self,
        mode: &str,
        external_id: &str,
    ) -> Result<Option<CustomerRow>> {
        let sql = format!("{CUSTOMER_SELECT} WHERE c.mode = $1 AND c.external_id = $2");
        let row = sqlx::query(&sql)
            .bind(mode)
            .bind(external_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| customer_from_row(&r)).transpose()
    }

    /// Customers whose included credits for `period` have not been granted yet.
    pub async fn customers_due_included_credits(
        &self,
        period: &str,
        limit: i64,
    ) -> Result<Vec<CustomerRow>> {
        let sql = format!(
            "{CUSTOMER_SELECT} WHERE c.included_period IS NULL OR c.included_period <> $1 \
             ORDER BY c.id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(period)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(customer_from_row).collect()
    }

    /// Redeems a one-time portal link: returns its customer if valid, and spends it.
    pub async fn redeem_portal_link(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<String>> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE portal_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now.micros())
        .bind(token_hash)
        .execute(&mut *tx.inner)
        .await?
        .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let customer: String =
            sqlx::query_scalar("SELECT customer_id FROM portal_links WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_one(&mut *tx.inner)
                .await?;
        tx.commit().await?;
        Ok(Some(customer))
    }
}

impl Tx {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_customer(
        &mut self,
        id: &str,
        mode: Mode,
        external_id: &str,
        email: Option<&str>,
        name: Option<&str>,
        plan_id: &str,
        account_id: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO customers (id, mode, external_id, email, name, plan_id, account_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (mode, external_id) DO NOTHING",
        )
        .bind(id)
        .bind(mode.as_str())
        .bind(external_id)
        .bind(email)
        .bind(name)
        .bind(plan_id)
        .bind(account_id)
        .bind(now.micros())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn set_customer_plan(&mut self, id: &str, plan_id: &str) -> Result<()> {
        sqlx::query("UPDATE customers SET plan_id = $1 WHERE id = $2")
            .bind(plan_id)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn set_included_period(&mut self, id: &str, period: &str) -> Result<()> {
        sqlx::query("UPDATE customers SET included_period = $1 WHERE id = $2")
            .bind(period)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn insert_portal_link(
        &mut self,
        token_hash: &str,
        customer_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO portal_links (token_hash, customer_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(customer_id)
        .bind(expires_at.micros())
        .bind(now.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }
}
