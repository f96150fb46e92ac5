//! SQL of the metering side: price book, plans, customers, API keys, usage events,
//! authorizations, period counters, idempotency records and portal links.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::money::Money;
use crate::core::pricing::{ModelPrice, Rates};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerRow {
    pub id: String,
    pub mode: String,
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
    pub account_status: String,
    /// The auto top-up threshold while auto top-up is on.
    pub auto_topup_below: Option<Money>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanRow {
    pub mode: String,
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanVersionRow {
    pub id: String,
    pub plan_id: String,
    pub version: i64,
    pub terms: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub mode: String,
    pub scope: String,
    pub name: String,
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageEventRow {
    pub id: String,
    pub mode: String,
    pub customer_id: String,
    pub request_id: String,
    pub model: String,
    pub outcome: String,
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
    pub mode: String,
    pub customer_id: String,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub max_output_tokens: Option<i64>,
    pub cache_creation_input_tokens: Option<i64>,
    pub cache_read_input_tokens: Option<i64>,
    pub batch: bool,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub status_code: Option<i64>,
    pub response: Option<String>,
    pub created_at: Timestamp,
}

/// Filters of a usage listing; newest first, keyset on `id`.
#[derive(Clone, Debug, Default)]
pub struct UsageFilter {
    pub mode: String,
    pub customer_id: Option<String>,
    pub model: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub starting_after: Option<String>,
    /// Only events of proxied requests sent with this `Tally-Conversation`.
    pub conversation: Option<String>,
    pub limit: i64,
}

pub(super) const CUSTOMER_SELECT: &str =
    "SELECT c.id, c.mode, c.external_id, c.email, c.name, c.plan_id, \
     c.account_id, c.low_balance_threshold, c.created_at, a.available, a.held, a.status, \
     c.auto_topup_below \
     FROM customers c JOIN accounts a ON a.id = c.account_id";

pub(super) fn customer_from_row(r: &AnyRow) -> Result<CustomerRow> {
    customer_from_row_at(r, 0)
}

/// A customer whose columns start at `at` in the row.
pub(super) fn customer_from_row_at(r: &AnyRow, at: usize) -> Result<CustomerRow> {
    Ok(CustomerRow {
        id: r.try_get(at)?,
        mode: r.try_get(at + 1)?,
        external_id: r.try_get(at + 2)?,
        email: r.try_get(at + 3)?,
        name: r.try_get(at + 4)?,
        plan_id: r.try_get(at + 5)?,
        account_id: r.try_get(at + 6)?,
        low_balance_threshold: r.try_get::<Option<i64>, _>(at + 7)?.map(Money::from_nanos),
        created_at: Timestamp::from_micros(r.try_get(at + 8)?),
        available: Money::from_nanos(r.try_get(at + 9)?),
        held: Money::from_nanos(r.try_get(at + 10)?),
        account_status: r.try_get(at + 11)?,
        auto_topup_below: r.try_get::<Option<i64>, _>(at + 12)?.map(Money::from_nanos),
    })
}

/// Price versions; add `WHERE` and, for the prices in force, [`CURRENT_PRICE`].
pub(super) const MODEL_SELECT: &str =
    "SELECT p.model, p.provider, p.input_rate, p.output_rate, p.cache_write_rate, \
     p.cache_read_rate, p.batch_discount_percent, p.id, p.version, p.created_at, p.mode, \
     p.cache_write_1h_rate \
     FROM model_prices p";

/// The newest version of each model is the one in force.
pub(super) const CURRENT_PRICE: &str = "p.version = (SELECT MAX(q.version) FROM model_prices q \
     WHERE q.mode = p.mode AND q.model = p.model)";

/// The mode a price version belongs to (column 10 of [`MODEL_SELECT`]).
pub(super) fn model_mode(r: &AnyRow) -> Result<String> {
    Ok(r.try_get(10)?)
}

pub(super) fn model_from_row(r: &AnyRow) -> Result<ModelPrice> {
    Ok(ModelPrice {
        version_id: r.try_get(7)?,
        version: r.try_get(8)?,
        since: Timestamp::from_micros(r.try_get(9)?),
        id: r.try_get(0)?,
        provider: r.try_get(1)?,
        rates: Rates {
            input: Money::from_nanos(r.try_get(2)?),
            output: Money::from_nanos(r.try_get(3)?),
            cache_write: Money::from_nanos(r.try_get(4)?),
            cache_read: Money::from_nanos(r.try_get(5)?),
            cache_write_1h: r.try_get::<Option<i64>, _>(11)?.map(Money::from_nanos),
        },
        batch_discount_percent: u32::try_from(r.try_get::<i64, _>(6)?)
            .map_err(|_| Error::internal("bad batch discount"))?,
    })
}

const PLAN_VERSION_SELECT: &str =
    "SELECT id, plan_id, version, terms, created_at FROM plan_versions";

fn plan_from_row(r: &AnyRow) -> Result<PlanRow> {
    Ok(PlanRow {
        mode: r.try_get(0)?,
        id: r.try_get(1)?,
        name: r.try_get(2)?,
        created_at: Timestamp::from_micros(r.try_get(3)?),
    })
}

pub(super) fn plan_version_from_row(r: &AnyRow) -> Result<PlanVersionRow> {
    Ok(PlanVersionRow {
        id: r.try_get(0)?,
        plan_id: r.try_get(1)?,
        version: r.try_get(2)?,
        terms: r.try_get(3)?,
        created_at: Timestamp::from_micros(r.try_get(4)?),
    })
}

const KEY_SELECT: &str =
    "SELECT id, mode, scope, name, secret_hash, created_at, revoked_at FROM api_keys";

fn key_from_row(r: &AnyRow) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: r.try_get(0)?,
        mode: r.try_get(1)?,
        scope: r.try_get(2)?,
        name: r.try_get(3)?,
        secret_hash: r.try_get(4)?,
        created_at: Timestamp::from_micros(r.try_get(5)?),
        revoked_at: r.try_get::<Option<i64>, _>(6)?.map(Timestamp::from_micros),
    })
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
        mode: r.try_get(1)?,
        customer_id: r.try_get(2)?,
        request_id: r.try_get(3)?,
        model: r.try_get(4)?,
        outcome: r.try_get(5)?,
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
        mode: r.try_get(1)?,
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
            .bind(&customer.mode)
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

    /// A mode's price book: the version of each model in force.
    pub async fn models(&self, mode: &str) -> Result<Vec<ModelPrice>> {
        let sql = format!(
            "{MODEL_SELECT} WHERE p.mode = $1 AND {CURRENT_PRICE} ORDER BY p.provider, p.model"
        );
        let rows = sqlx::query(&sql).bind(mode).fetch_all(&self.reader).await?;
        rows.iter().map(model_from_row).collect()
    }

    /// A model's price in force in a mode.
    pub async fn model(&self, mode: &str, id: &str) -> Result<Option<ModelPrice>> {
        let sql = format!(
            "{MODEL_SELECT} WHERE p.mode = $1 AND p.model = $2 ORDER BY p.version DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(mode)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| model_from_row(&r)).transpose()
    }

    /// Every version of a mode's price book, newest first (of one model, if given).
    pub async fn model_versions(&self, mode: &str, id: Option<&str>) -> Result<Vec<ModelPrice>> {
        let sql = format!(
            "{MODEL_SELECT} WHERE p.mode = $1 AND ($2 IS NULL OR p.model = $2) \
             ORDER BY p.created_at DESC, p.model, p.version DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(mode)
            .bind(id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(model_from_row).collect()
    }

    /// A price version by its id, with its mode.
    pub async fn price_version(&self, version_id: &str) -> Result<Option<(String, ModelPrice)>> {
        let sql = format!("{MODEL_SELECT} WHERE p.id = $1");
        let row = sqlx::query(&sql)
            .bind(version_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| Ok((model_mode(&r)?, model_from_row(&r)?)))
            .transpose()
    }

    /// A model's price in force at an instant (the newest version created by then).
    pub async fn model_at(
        &self,
        mode: &str,
        id: &str,
        at: Timestamp,
    ) -> Result<Option<ModelPrice>> {
        let sql = format!(
            "{MODEL_SELECT} WHERE p.mode = $1 AND p.model = $2 AND p.created_at <= $3 \
             ORDER BY p.version DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(mode)
            .bind(id)
            .bind(at.micros())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| model_from_row(&r)).transpose()
    }

    pub async fn plans(&self, mode: &str) -> Result<Vec<PlanRow>> {
        let rows = sqlx::query(
            "SELECT mode, id, name, created_at FROM plans WHERE mode = $1 ORDER BY created_at, id",
        )
        .bind(mode)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(plan_from_row).collect()
    }

    pub async fn plan(&self, mode: &str, id: &str) -> Result<Option<PlanRow>> {
        let row =
            sqlx::query("SELECT mode, id, name, created_at FROM plans WHERE mode = $1 AND id = $2")
                .bind(mode)
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        row.map(|r| plan_from_row(&r)).transpose()
    }

    /// The version of a plan in force: the newest.
    pub async fn current_plan_version(
        &self,
        mode: &str,
        plan_id: &str,
    ) -> Result<Option<PlanVersionRow>> {
        let sql = format!(
            "{PLAN_VERSION_SELECT} WHERE mode = $1 AND plan_id = $2 ORDER BY version DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(mode)
            .bind(plan_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| plan_version_from_row(&r)).transpose()
    }

    pub async fn plan_versions(&self, mode: &str, plan_id: &str) -> Result<Vec<PlanVersionRow>> {
        let sql =
            format!("{PLAN_VERSION_SELECT} WHERE mode = $1 AND plan_id = $2 ORDER BY version DESC");
        let rows = sqlx::query(&sql)
            .bind(mode)
            .bind(plan_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(plan_version_from_row).collect()
    }

    pub async fn plan_version(&self, id: &str) -> Result<Option<PlanVersionRow>> {
        let sql = format!("{PLAN_VERSION_SELECT} WHERE id = $1");
        self.one_by(&sql, id, plan_version_from_row).await
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRow>> {
        let sql = format!("{KEY_SELECT} WHERE id = $1");
        self.one_by(&sql, id, key_from_row).await
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        let sql = format!("{KEY_SELECT} ORDER BY created_at DESC");
        let rows = sqlx::query(&sql).fetch_all(&self.reader).await?;
        rows.iter().map(key_from_row).collect()
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
        if f.conversation.is_some() {
            next(
                " AND id IN (SELECT event_id FROM proxy_requests WHERE conversation = ? AND event_id IS NOT NULL)",
                &mut sql,
            );
        }
        next(" ORDER BY id DESC LIMIT ?", &mut sql);
        let mut q = sqlx::query(&sql).bind(&f.mode);
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

    /// Ledger transactions of one account, newest first, keyset on `id`.
    pub async fn list_transactions(
        &self,
        account_id: &str,
        starting_after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<super::TransactionRow>> {
        let sql =
            format!(
            "SELECT {} FROM ledger_transactions WHERE account_id = $1 {} ORDER BY id DESC LIMIT {}",
            super::TXN_COLUMNS,
            if starting_after.is_some() { "AND id < $2" } else { "" },
            if starting_after.is_some() { "$3" } else { "$2" },
        );
        let mut q = sqlx::query(&sql).bind(account_id);
        if let Some(s) = starting_after {
            q = q.bind(s);
        }
        let rows = q.bind(limit).fetch_all(&self.reader).await?;
        rows.iter().map(super::txn_from_row).collect()
    }

    pub async fn authorization(&self, id: &str) -> Result<Option<AuthorizationRow>> {
        let sql = format!("{AUTH_SELECT} WHERE id = $1");
        self.one_by(&sql, id, auth_from_row).await
    }

    /// (tokens, spend) of a customer in a period; zero when nothing was counted.
    pub async fn period_totals(&self, customer_id: &str, period: &str) -> Result<(i64, Money)> {
        period_totals(&self.reader, customer_id, period).await
    }

    // ---- idempotency records (each its own short transaction) ----

    /// Claims `(mode, key)` for a request; returns the existing record when taken.
    pub async fn claim_idempotency_key(
        &self,
        mode: &str,
        key: &str,
        request_hash: &str,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRow>> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (mode, key, request_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (mode, key) DO NOTHING",
        )
        .bind(mode)
        .bind(key)
        .bind(request_hash)
        .bind(now.micros())
        .execute(&self.writer)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT request_hash, status_code, response, created_at FROM idempotency_keys \
             WHERE mode = $1 AND key = $2",
        )
        .bind(mode)
        .bind(key)
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(r) => Ok(Some(IdempotencyRow {
                request_hash: r.try_get(0)?,
                status_code: r.try_get(1)?,
                response: r.try_get(2)?,
                created_at: Timestamp::from_micros(r.try_get(3)?),
            })),
            // Released between our insert and our read: claim again next time.
            None => Err(Error::Unavailable(
                "idempotency key changed concurrently".into(),
            )),
        }
    }

    pub async fn complete_idempotency_key(
        &self,
        mode: &str,
        key: &str,
        status: u16,
        response: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status_code = $1, response = $2 WHERE mode = $3 AND key = $4",
        )
        .bind(i64::from(status))
        .bind(response)
        .bind(mode)
        .bind(key)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Forgets a claim whose request failed on our side, so a retry runs again.
    pub async fn release_idempotency_key(&self, mode: &str, key: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE mode = $1 AND key = $2 AND status_code IS NULL",
        )
        .bind(mode)
        .bind(key)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Takes over a claim left in flight by a crashed request.
    pub async fn reclaim_idempotency_key(
        &self,
        mode: &str,
        key: &str,
        older_than: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE idempotency_keys SET created_at = $1 \
             WHERE mode = $2 AND key = $3 AND status_code IS NULL AND created_at < $4",
        )
        .bind(now.micros())
        .bind(mode)
        .bind(key)
        .bind(older_than.micros())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n == 1)
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
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_customer(
        &mut self,
        id: &str,
        mode: &str,
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
        .bind(mode)
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

    /// Appends the next version of a model's price in a mode (the first adds the model);
    /// the unique (mode, model, version) index makes two concurrent edits fail rather than
    /// share a number. `id` is the new version's id; returns its number.
    pub async fn insert_model_price(
        &mut self,
        mode: &str,
        id: &str,
        m: &ModelPrice,
        now: Timestamp,
    ) -> Result<i64> {
        let version: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) FROM model_prices WHERE mode = $1 AND model = $2",
        )
        .bind(mode)
        .bind(&m.id)
        .fetch_one(&mut *self.inner)
        .await?;
        sqlx::query(
            "INSERT INTO model_prices (id, mode, model, provider, version, input_rate, output_rate, \
               cache_write_rate, cache_read_rate, batch_discount_percent, created_at, \
               cache_write_1h_rate) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(id)
        .bind(mode)
        .bind(&m.id)
        .bind(&m.provider)
        .bind(version)
        .bind(m.rates.input.nanos())
        .bind(m.rates.output.nanos())
        .bind(m.rates.cache_write.nanos())
        .bind(m.rates.cache_read.nanos())
        .bind(i64::from(m.batch_discount_percent))
        .bind(now.micros())
        .bind(m.rates.cache_write_1h.map(Money::nanos))
        .execute(&mut *self.inner)
        .await?;
        Ok(version)
    }

    pub async fn insert_plan(
        &mut self,
        mode: &str,
        id: &str,
        name: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO plans (mode, id, name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (mode, id) DO NOTHING",
        )
        .bind(mode)
        .bind(id)
        .bind(name)
        .bind(now.micros())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn rename_plan(&mut self, mode: &str, id: &str, name: &str) -> Result<()> {
        sqlx::query("UPDATE plans SET name = $1 WHERE mode = $2 AND id = $3")
            .bind(name)
            .bind(mode)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Appends the next version of a plan; the unique (mode, plan, version) index makes two
    /// concurrent edits fail rather than share a number.
    pub async fn insert_plan_version(
        &mut self,
        mode: &str,
        id: &str,
        plan_id: &str,
        terms: &str,
        now: Timestamp,
    ) -> Result<i64> {
        let version: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) FROM plan_versions WHERE mode = $1 AND plan_id = $2",
        )
        .bind(mode)
        .bind(plan_id)
        .fetch_one(&mut *self.inner)
        .await?;
        sqlx::query(
            "INSERT INTO plan_versions (id, mode, plan_id, version, terms, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(mode)
        .bind(plan_id)
        .bind(version)
        .bind(terms)
        .bind(now.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(version)
    }

    pub async fn insert_api_key(&mut self, k: &ApiKeyRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, mode, scope, name, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.id)
        .bind(&k.mode)
        .bind(&k.scope)
        .bind(&k.name)
        .bind(&k.secret_hash)
        .bind(k.created_at.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn revoke_api_key(&mut self, id: &str, now: Timestamp) -> Result<bool> {
        let n =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now.micros())
                .bind(id)
                .execute(&mut *self.inner)
                .await?
                .rows_affected();
        Ok(n == 1)
    }

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
            .bind(&e.mode)
            .bind(&e.customer_id)
            .bind(&e.request_id)
            .bind(&e.model)
            .bind(&e.outcome)
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
        .bind(&a.mode)
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
