//! SQL of usage: usage events (and their refunds), authorizations, and the per-customer
//! period counters (`usage_periods`).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{CustomerRow, Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::money::Money;
use crate::core::pricing::Outcome;
use crate::core::vocab::Mode;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageEventRow {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub request_id: String,
    pub model: String,
    pub outcome: Outcome,
    pub batch: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cost: Money,
    pub line_items: String,
    pub plan_version_id: String,
    /// The price-book version of the model the event was priced with.
    pub price_version_id: Option<String>,
    pub tier: i64,
    pub authorization_id: Option<String>,
    /// None for an event that cost nothing (nothing was posted).
    pub transaction_id: Option<String>,
    pub metadata: Option<String>,
    pub occurred_at: Timestamp,
    pub created_at: Timestamp,
    /// Captured after its authorization expired (charged from available).
    pub authorization_expired: bool,
    /// Given back by a refund of this event (zero when none).
    pub refunded_amount: Money,
    pub refund_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationRow {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub max_output_tokens: Option<i64>,
    pub cache_creation_input_tokens: Option<i64>,
    pub cache_read_input_tokens: Option<i64>,
    pub batch: bool,
    pub created_at: Timestamp,
}

/// Filters of a usage listing; newest first, keyset on `id`. With `ending_before` the
/// rows are the `limit` just newer than it, oldest first (the edge turns the page round).
#[derive(Clone, Debug, Default)]
pub struct UsageFilter {
    pub mode: String,
    pub customer_id: Option<String>,
    pub model: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
    /// Only events of proxied requests sent with this `Tally-Conversation`.
    pub conversation: Option<String>,
    pub limit: i64,
}

pub(super) const EVENT_COLUMNS: &str = "id, mode, customer_id, request_id, model, outcome, batch, \
     input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost, \
     line_items, plan_version_id, tier, authorization_id, transaction_id, metadata, \
     occurred_at, created_at, authorization_expired, price_version_id";

/// What a usage event is read with: what it is written with, plus its refund.
pub(super) const EVENT_SELECT: &str = "id, mode, customer_id, request_id, model, outcome, batch, \
     input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost, \
     line_items, plan_version_id, tier, authorization_id, transaction_id, metadata, \
     occurred_at, created_at, authorization_expired, price_version_id, refunded_amount, refund_reason";

pub(super) fn event_from_row(r: &AnyRow) -> Result<UsageEventRow> {
    Ok(UsageEventRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        customer_id: r.try_get(2)?,
        request_id: r.try_get(3)?,
        model: r.try_get(4)?,
        outcome: Outcome::parse(&r.try_get::<String, _>(5)?)
            .ok_or_else(|| Error::internal("unknown outcome in the database"))?,
        batch: r.try_get::<i64, _>(6)? != 0,
        input_tokens: r.try_get(7)?,
        output_tokens: r.try_get(8)?,
        cache_creation_input_tokens: r.try_get(9)?,
        cache_read_input_tokens: r.try_get(10)?,
        cost: Money::from_nanos(r.try_get(11)?),
        line_items: r.try_get(12)?,
        plan_version_id: r.try_get(13)?,
        tier: r.try_get(14)?,
        authorization_id: r.try_get(15)?,
        transaction_id: r.try_get(16)?,
        metadata: r.try_get(17)?,
        occurred_at: Timestamp::from_micros(r.try_get(18)?),
        created_at: Timestamp::from_micros(r.try_get(19)?),
        authorization_expired: r.try_get::<i64, _>(20)? != 0,
        price_version_id: r.try_get(21)?,
        refunded_amount: Money::from_nanos(r.try_get(22)?),
        refund_reason: r.try_get(23)?,
    })
}

const AUTH_SELECT: &str = "SELECT id, mode, customer_id, model, input_tokens, max_output_tokens, \
     cache_creation_input_tokens, cache_read_input_tokens, created_at, batch FROM authorizations";

fn auth_from_row(r: &AnyRow) -> Result<AuthorizationRow> {
    Ok(AuthorizationRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        customer_id: r.try_get(2)?,
        model: r.try_get(3)?,
        input_tokens: r.try_get(4)?,
        max_output_tokens: r.try_get(5)?,
        cache_creation_input_tokens: r.try_get(6)?,
        cache_read_input_tokens: r.try_get(7)?,
        created_at: Timestamp::from_micros(r.try_get(8)?),
        batch: r.try_get::<i64, _>(9)? != 0,
    })
}

impl Store {
    /// Benchmark fixture only: `n` usage events for one customer in one statement, with no
    /// ledger side (they measure the read path of the usage page, not money).
    pub async fn insert_bench_usage(
        &self,
        customer: &CustomerRow,
        n: i64,
        now: Timestamp,
    ) -> Result<()> {
        let id = match self.dialect {
            super::Dialect::Sqlite => "'evt_bench_' || printf('%012d', x)",
            super::Dialect::Postgres => "'evt_bench_' || lpad(x::text, 12, '0')",
        };
        let sql = format!(
            "INSERT INTO usage_events ({EVENT_COLUMNS}) \
             WITH RECURSIVE seq(x) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT x + 1 FROM seq WHERE x < $1) \
             SELECT {id}, $2, $3, 'bench-' || CAST(x AS TEXT), 'claude-sonnet-4-5', 'succeeded', 0, 1204, 350, 0, 2048, \
               0, '[]', 'plv_standard_1', 0, NULL, NULL, NULL, $4 - x * 1000000, $4, 0, NULL FROM seq"
        );
        sqlx::query(&sql)
            .bind(n)
            .bind(customer.mode.as_str())
            .bind(&customer.id)
            .bind(now.micros())
            .execute(&self.writer)
            .await?;
        // Their counters, so `verify` still holds (the fixture's events cost nothing).
        for period in [now.month_key(), now.day_key()] {
            sqlx::query(
                "INSERT INTO usage_periods (customer_id, period, tokens, spend) VALUES ($1, $2, $3, 0) \
                 ON CONFLICT (customer_id, period) DO UPDATE SET tokens = usage_periods.tokens + excluded.tokens",
            )
            .bind(&customer.id)
            .bind(&period)
            .bind(n * (1204 + 350 + 2048))
            .execute(&self.writer)
            .await?;
        }
        // Fresh statistics, as autovacuum would gather them shortly after a bulk load.
        sqlx::query("ANALYZE usage_events")
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn usage_event(&self, id: &str) -> Result<Option<UsageEventRow>> {
        let sql = format!("SELECT {EVENT_SELECT} FROM usage_events WHERE id = $1");
        self.one_by(&sql, id, event_from_row).await
    }

    pub async fn usage_event_by_authorization(&self, id: &str) -> Result<Option<UsageEventRow>> {
        let sql = format!("SELECT {EVENT_SELECT} FROM usage_events WHERE authorization_id = $1");
        self.one_by(&sql, id, event_from_row).await
    }

    pub async fn list_usage(&self, f: &UsageFilter) -> Result<Vec<UsageEventRow>> {
        let mut sql = format!("SELECT {EVENT_SELECT} FROM usage_events WHERE mode = $1");
        let mut n = 1;
        let mut next = |clause: &str, sql: &mut String| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        if f.customer_id.is_some() {
            next(" AND customer_id = ?", &mut sql);
        }
        if f.model.is_some() {
            next(" AND model = ?", &mut sql);
        }
        if f.from.is_some() {
            next(" AND occurred_at >= ?", &mut sql);
        }
        if f.to.is_some() {
            next(" AND occurred_at < ?", &mut sql);
        }
        if f.starting_after.is_some() {
            next(" AND id < ?", &mut sql);
        }
        if f.ending_before.is_some() {
            next(" AND id > ?", &mut sql);
        }
        if f.conversation.is_some() {
            next(
                " AND id IN (SELECT event_id FROM proxy_requests WHERE conversation = ? AND event_id IS NOT NULL)",
                &mut sql,
            );
        }
        if f.ending_before.is_some() {
            next(" ORDER BY id LIMIT ?", &mut sql);
        } else {
            next(" ORDER BY id DESC LIMIT ?", &mut sql);
        }
        let mut q = sqlx::query(&sql).bind(f.mode.as_str());
        if let Some(c) = &f.customer_id {
            q = q.bind(c);
        }
        if let Some(m) = &f.model {
            q = q.bind(m);
        }
        if let Some(t) = f.from {
            q = q.bind(t.micros());
        }
        if let Some(t) = f.to {
            q = q.bind(t.micros());
        }
        if let Some(s) = &f.starting_after {
            q = q.bind(s);
        }
        if let Some(s) = &f.ending_before {
            q = q.bind(s);
        }
        if let Some(c) = &f.conversation {
            q = q.bind(c);
        }
        let rows = q.bind(f.limit).fetch_all(&self.reader).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Usage events of a mode (of one customer, if given) that occurred in `[from, to)`,
    /// oldest recorded first, keyset on `id`: the scan of a re-rating.
    pub async fn usage_in_order(
        &self,
        mode: &str,
        customer_id: Option<&str>,
        from: Timestamp,
        to: Timestamp,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<UsageEventRow>> {
        let sql = format!(
            "SELECT {EVENT_SELECT} FROM usage_events WHERE mode = $1 \
             AND ($2 IS NULL OR customer_id = $2) AND occurred_at >= $3 AND occurred_at < $4 \
             AND ($5 IS NULL OR id > $5) ORDER BY id LIMIT $6"
        );
        let rows = sqlx::query(&sql)
            .bind(mode)
            .bind(customer_id)
            .bind(from.micros())
            .bind(to.micros())
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// How many events [`Store::usage_in_order`] will scan.
    pub async fn count_usage(
        &self,
        mode: &str,
        customer_id: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE mode = $1 \
             AND ($2 IS NULL OR customer_id = $2) AND occurred_at >= $3 AND occurred_at < $4",
        )
        .bind(mode)
        .bind(customer_id)
        .bind(from.micros())
        .bind(to.micros())
        .fetch_one(&self.reader)
        .await?;
        Ok(n)
    }

    /// Tokens a customer used in `[from, to)` (by when the usage occurred).
    pub async fn tokens_between(
        &self,
        customer_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<i64> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(input_tokens + output_tokens + cache_creation_input_tokens + \
               cache_read_input_tokens) AS BIGINT) FROM usage_events \
             WHERE customer_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
        )
        .bind(customer_id)
        .bind(from.micros())
        .bind(to.micros())
        .fetch_one(&self.reader)
        .await?;
        Ok(n.unwrap_or(0))
    }

    pub async fn authorization(&self, id: &str) -> Result<Option<AuthorizationRow>> {
        let sql = format!("{AUTH_SELECT} WHERE id = $1");
        self.one_by(&sql, id, auth_from_row).await
    }

    /// (tokens, spend) of a customer in a period; zero when nothing was counted.
    pub async fn period_totals(&self, customer_id: &str, period: &str) -> Result<(i64, Money)> {
        period_totals(&self.reader, customer_id, period).await
    }
}

async fn period_totals<'e, E>(executor: E, customer_id: &str, period: &str) -> Result<(i64, Money)>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT tokens, spend FROM usage_periods WHERE customer_id = $1 AND period = $2",
    )
    .bind(customer_id)
    .bind(period)
    .fetch_optional(executor)
    .await?;
    match row {
        Some(r) => Ok((r.try_get(0)?, Money::from_nanos(r.try_get(1)?))),
        None => Ok((0, Money::ZERO)),
    }
}

impl Tx {
    /// Inserts a usage event unless `(customer, request_id)` is already recorded; then
    /// returns the recorded one.
    pub async fn insert_usage_event(&mut self, e: &UsageEventRow) -> Result<Option<UsageEventRow>> {
        let sql = format!(
            "INSERT INTO usage_events ({EVENT_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) \
             ON CONFLICT (customer_id, request_id) DO NOTHING"
        );
        let n = sqlx::query(&sql)
            .bind(&e.id)
            .bind(e.mode.as_str())
            .bind(&e.customer_id)
            .bind(&e.request_id)
            .bind(&e.model)
            .bind(e.outcome.as_str())
            .bind(i64::from(e.batch))
            .bind(e.input_tokens)
            .bind(e.output_tokens)
            .bind(e.cache_creation_input_tokens)
            .bind(e.cache_read_input_tokens)
            .bind(e.cost.nanos())
            .bind(&e.line_items)
            .bind(&e.plan_version_id)
            .bind(e.tier)
            .bind(e.authorization_id.as_deref())
            .bind(e.transaction_id.as_deref())
            .bind(e.metadata.as_deref())
            .bind(e.occurred_at.micros())
            .bind(e.created_at.micros())
            .bind(i64::from(e.authorization_expired))
            .bind(e.price_version_id.as_deref())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 1 {
            return Ok(None);
        }
        self.usage_event_by_request(&e.customer_id, &e.request_id)
            .await?
            .map(Some)
            .ok_or_else(|| Error::internal("usage event conflict without a row"))
    }

    pub async fn usage_event_by_request(
        &mut self,
        customer_id: &str,
        request_id: &str,
    ) -> Result<Option<UsageEventRow>> {
        let sql = format!(
            "SELECT {EVENT_SELECT} FROM usage_events WHERE customer_id = $1 AND request_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(customer_id)
            .bind(request_id)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| event_from_row(&r)).transpose()
    }

    pub async fn usage_event(&mut self, id: &str) -> Result<Option<UsageEventRow>> {
        let sql = format!("SELECT {EVENT_SELECT} FROM usage_events WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| event_from_row(&r)).transpose()
    }

    /// Records a refund on an event that has none; false if it already has one.
    pub async fn set_usage_refund(
        &mut self,
        id: &str,
        amount: Money,
        reason: &str,
        transaction_id: &str,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE usage_events SET refunded_amount = $1, refund_reason = $2, \
               refund_transaction_id = $3 WHERE id = $4 AND refunded_amount = 0",
        )
        .bind(amount.nanos())
        .bind(reason)
        .bind(transaction_id)
        .bind(id)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn usage_event_by_authorization(
        &mut self,
        id: &str,
    ) -> Result<Option<UsageEventRow>> {
        let sql = format!("SELECT {EVENT_SELECT} FROM usage_events WHERE authorization_id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| event_from_row(&r)).transpose()
    }

    pub async fn period_totals(&mut self, customer_id: &str, period: &str) -> Result<(i64, Money)> {
        period_totals(&mut *self.inner, customer_id, period).await
    }

    pub async fn add_period_usage(
        &mut self,
        customer_id: &str,
        period: &str,
        tokens: i64,
        spend: Money,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO usage_periods (customer_id, period, tokens, spend) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (customer_id, period) DO UPDATE SET \
               tokens = usage_periods.tokens + excluded.tokens, spend = usage_periods.spend + excluded.spend",
        )
        .bind(customer_id)
        .bind(period)
        .bind(tokens)
        .bind(spend.nanos())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn insert_authorization(&mut self, a: &AuthorizationRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO authorizations (id, mode, customer_id, model, input_tokens, max_output_tokens, \
               cache_creation_input_tokens, cache_read_input_tokens, created_at, batch) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&a.id)
        .bind(a.mode.as_str())
        .bind(&a.customer_id)
        .bind(a.model.as_deref())
        .bind(a.input_tokens)
        .bind(a.max_output_tokens)
        .bind(a.cache_creation_input_tokens)
        .bind(a.cache_read_input_tokens)
        .bind(a.created_at.micros())
        .bind(i64::from(a.batch))
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }
}
