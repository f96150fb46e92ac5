//! SQL of the portal: browser sessions, customer passwords, and the aggregates the
//! overview shows.

use sqlx::Row;

use super::{Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::money::Money;

/// Spend and tokens of one model on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyUsage {
    /// Days since the epoch (UTC).
    pub day: i64,
    pub model: String,
    pub cost: Money,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_write_tokens: i64,
    pub cache_read_tokens: i64,
}

/// A customer's spend through one customer key on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDaySpend {
    /// Days since the epoch (UTC).
    pub day: i64,
    /// The key's id and name; `None` for usage recorded without a key (through `/v1`).
    pub key: Option<(String, String)>,
    pub cost: Money,
}

/// A customer's requests and what they cost on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageDay {
    /// Days since the epoch (UTC).
    pub day: i64,
    pub requests: i64,
    pub cost: Money,
}

const DAY_MICROS: i64 = 86_400_000_000;

impl Store {
    pub async fn session_load(&self, id: &str, now: Timestamp) -> Result<Option<(String, i64)>> {
        let row = sqlx::query(
            "SELECT data, expiry_date FROM sessions WHERE id = $1 AND expiry_date > $2",
        )
        .bind(id)
        .bind(now.micros())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Inserts a new session; false if the id exists (the caller picks another).
    pub async fn session_create(&self, id: &str, data: &str, expiry: i64) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(data)
        .bind(expiry)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn session_save(&self, id: &str, data: &str, expiry: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date",
        )
        .bind(id)
        .bind(data)
        .bind(expiry)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn session_delete(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expiry_date <= $1")
            .bind(now.micros())
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    /// (customer id, password hash) of customers with this email who set a password.
    pub async fn credentials_by_email(&self, email: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT id, password_hash FROM customers WHERE email = $1 AND password_hash IS NOT NULL \
             ORDER BY mode, id",
        )
        .bind(email)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn set_low_balance_threshold(
        &self,
        customer_id: &str,
        threshold: Option<Money>,
    ) -> Result<()> {
        sqlx::query("UPDATE customers SET low_balance_threshold = $1 WHERE id = $2")
            .bind(threshold.map(Money::nanos))
            .bind(customer_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// A customer's requests and spend per day since `since`, newest day first.
    pub async fn usage_by_day(&self, customer_id: &str, since: Timestamp) -> Result<Vec<UsageDay>> {
        let rows = sqlx::query(
            "SELECT CAST(occurred_at / $3 AS BIGINT) AS day, COUNT(*), CAST(SUM(cost) AS BIGINT) \
             FROM usage_events WHERE customer_id = $1 AND occurred_at >= $2 \
             GROUP BY 1 ORDER BY 1 DESC",
        )
        .bind(customer_id)
        .bind(since.micros())
        .bind(DAY_MICROS)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageDay {
                    day: r.try_get(0)?,
                    requests: r.try_get(1)?,
                    cost: Money::from_nanos(r.try_get(2)?),
                })
            })
            .collect()
    }

    /// Usage of a customer per day and model since `since`.
    pub async fn daily_usage(
        &self,
        customer_id: &str,
        since: Timestamp,
    ) -> Result<Vec<DailyUsage>> {
        let rows = sqlx::query(
            "SELECT CAST(occurred_at / $3 AS BIGINT) AS day, model, \
               CAST(SUM(cost) AS BIGINT), CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
               CAST(SUM(cache_creation_input_tokens) AS BIGINT), CAST(SUM(cache_read_input_tokens) AS BIGINT) \
             FROM usage_events WHERE customer_id = $1 AND occurred_at >= $2 \
             GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind(customer_id)
        .bind(since.micros())
        .bind(DAY_MICROS)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DailyUsage {
                    day: r.try_get(0)?,
                    model: r.try_get(1)?,
                    cost: Money::from_nanos(r.try_get(2)?),
                    input_tokens: r.try_get(3)?,
                    output_tokens: r.try_get(4)?,
                    cache_write_tokens: r.try_get(5)?,
                    cache_read_tokens: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// A customer's spend per day and customer key since `since`: each event joined to the
    /// proxied request that recorded it, if any.
    pub async fn daily_spend_by_key(
        &self,
        customer_id: &str,
        since: Timestamp,
    ) -> Result<Vec<KeyDaySpend>> {
        let rows = sqlx::query(
            "SELECT CAST(e.occurred_at / $3 AS BIGINT) AS day, k.id, k.name, CAST(SUM(e.cost) AS BIGINT) \
             FROM usage_events e \
             LEFT JOIN proxy_requests p ON p.event_id = e.id \
             LEFT JOIN customer_keys k ON k.id = p.customer_key_id \
             WHERE e.customer_id = $1 AND e.occurred_at >= $2 \
             GROUP BY 1, 2, 3 ORDER BY 1, 2",
        )
        .bind(customer_id)
        .bind(since.micros())
        .bind(DAY_MICROS)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let id: Option<String> = r.try_get(1)?;
                let name: Option<String> = r.try_get(2)?;
                Ok(KeyDaySpend {
                    day: r.try_get(0)?,
                    key: id.zip(name),
                    cost: Money::from_nanos(r.try_get(3)?),
                })
            })
            .collect()
    }
}

impl Tx {
    /// A customer's password (its hash), set by the portal or a reset link.
    pub async fn set_customer_password(&mut self, id: &str, hash: &str) -> Result<()> {
        sqlx::query("UPDATE customers SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }
}
