//! SQL of the admin console: staff accounts, the audit log, searches and figures.

use sqlx::Row;

use super::{CustomerRow, Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::money::Money;
use crate::core::vocab::AccountStatus;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub id: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub reason: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub created_at: Timestamp,
}

/// The operator's figures for one mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorFigures {
    pub credits_sold: Money,
    pub credits_consumed: Money,
    pub liability: Money,
    pub negative_balances: i64,
    pub failed_webhooks: i64,
}

impl Store {
    pub async fn admin_by_email(&self, email: &str) -> Result<Option<AdminRow>> {
        let row = sqlx::query("SELECT id, email, password_hash, role FROM admins WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| {
            Ok(AdminRow {
                id: r.try_get(0)?,
                email: r.try_get(1)?,
                password_hash: r.try_get(2)?,
                role: r.try_get(3)?,
            })
        })
        .transpose()
    }

    pub async fn admin(&self, id: &str) -> Result<Option<AdminRow>> {
        let row = sqlx::query("SELECT id, email, password_hash, role FROM admins WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| {
            Ok(AdminRow {
                id: r.try_get(0)?,
                email: r.try_get(1)?,
                password_hash: r.try_get(2)?,
                role: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Creates or replaces (by email) a staff account.
    pub async fn upsert_admin(
        &self,
        id: &str,
        email: &str,
        hash: &str,
        role: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO admins (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (email) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
        )
        .bind(id)
        .bind(email)
        .bind(hash)
        .bind(role)
        .bind(now.micros())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Customers whose email, name or external id contains `q` (case-insensitive).
    /// Customers of `mode` matching `q` (email, name, external id, or the id itself) and
    /// the optional filters, newest first.
    pub async fn search_customers(
        &self,
        mode: &str,
        q: &str,
        filters: &CustomerFilters,
        limit: i64,
    ) -> Result<Vec<CustomerRow>> {
        let like = format!("%{}%", q.to_lowercase().replace(['%', '_'], ""));
        let sql = format!(
            "{} WHERE c.mode = $1 AND (LOWER(COALESCE(c.email, '')) LIKE $2 OR LOWER(COALESCE(c.name, '')) LIKE $2 \
             OR LOWER(c.external_id) LIKE $2 OR c.id = $3) \
             AND ($5 = '' OR a.status = $5) AND ($6 = '' OR c.plan_id = $6) AND a.available < $7 \
             ORDER BY c.id DESC LIMIT $4",
            super::customers::CUSTOMER_SELECT
        );
        let rows = sqlx::query(&sql)
            .bind(mode)
            .bind(like)
            .bind(q)
            .bind(limit)
            .bind(filters.status.map_or("", |s| s.as_str()))
            .bind(filters.plan.as_deref().unwrap_or(""))
            .bind(filters.available_below.map_or(i64::MAX, Money::nanos))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(super::customers::customer_from_row)
            .collect()
    }

    pub async fn audit_entries(&self, target: Option<&str>, limit: i64) -> Result<Vec<AuditRow>> {
        let base =
            "SELECT id, actor, action, target, reason, before, after, created_at FROM audit_log";
        let rows = match target {
            Some(t) => {
                sqlx::query(&format!(
                    "{base} WHERE target = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(t)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "{base} ORDER BY created_at DESC, id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    action: r.try_get(2)?,
                    target: r.try_get(3)?,
                    reason: r.try_get(4)?,
                    before: r.try_get(5)?,
                    after: r.try_get(6)?,
                    created_at: Timestamp::from_micros(r.try_get(7)?),
                })
            })
            .collect()
    }

    pub async fn operator_figures(&self, mode: &str) -> Result<OperatorFigures> {
        let sold: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) FROM ledger_transactions t \
             JOIN accounts a ON a.id = t.account_id WHERE t.kind = 'topup' AND a.mode = $1",
        )
        .bind(mode)
        .fetch_one(&self.reader)
        .await?;
        let consumed: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM postings WHERE account_id = $1",
        )
        .bind(format!("op_{mode}_revenue"))
        .fetch_one(&self.reader)
        .await?;
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(available + held), 0) AS BIGINT), \
               CAST(COALESCE(SUM(CASE WHEN available < 0 THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM accounts WHERE kind = 'customer' AND mode = $1",
        )
        .bind(mode)
        .fetch_one(&self.reader)
        .await?;
        let failed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_events WHERE status = 'failed' AND mode = $1",
        )
        .bind(mode)
        .fetch_one(&self.reader)
        .await?;
        Ok(OperatorFigures {
            credits_sold: Money::from_nanos(sold),
            credits_consumed: Money::from_nanos(consumed),
            liability: Money::from_nanos(row.try_get(0)?),
            negative_balances: row.try_get(1)?,
            failed_webhooks: failed,
        })
    }

    /// Customers of a mode by spend this month, highest first: (customer, spend).
    pub async fn top_spenders(
        &self,
        mode: &str,
        period: &str,
        limit: i64,
    ) -> Result<Vec<(CustomerRow, Money)>> {
        let sql = format!(
            "{}, usage_periods p WHERE p.customer_id = c.id AND p.period = $1 AND c.mode = $2 \
             ORDER BY p.spend DESC LIMIT $3",
            super::customers::CUSTOMER_SELECT
        );
        let sql = sql.replacen("SELECT c.id", "SELECT p.spend, c.id", 1);
        let rows = sqlx::query(&sql)
            .bind(period)
            .bind(mode)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                let spend: i64 = r.try_get(0)?;
                Ok((
                    super::customers::customer_from_row_at(r, 1)?,
                    Money::from_nanos(spend),
                ))
            })
            .collect()
    }
}

impl Tx {
    pub async fn insert_audit(&mut self, a: &AuditRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, actor, action, target, reason, before, after, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&a.id)
        .bind(&a.actor)
        .bind(&a.action)
        .bind(&a.target)
        .bind(&a.reason)
        .bind(a.before.as_deref())
        .bind(a.after.as_deref())
        .bind(a.created_at.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }
}

impl Tx {
    /// A staff member's password (its hash), set by a reset link.
    pub async fn set_staff_password(&mut self, id: &str, hash: &str) -> Result<()> {
        sqlx::query("UPDATE admins SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// The admins' email addresses (told when an endpoint is disabled).
    pub async fn staff_emails(&mut self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT email FROM admins WHERE role = 'admin' ORDER BY email")
                .fetch_all(&mut *self.inner)
                .await?,
        )
    }
}

/// What the console's customer search narrows by, beyond its text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerFilters {
    pub status: Option<AccountStatus>,
    pub plan: Option<String>,
    /// Only customers with less than this available.
    pub available_below: Option<Money>,
}
