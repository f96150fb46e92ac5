//! SQL of the metering proxy: customer keys and the record of each proxied request.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::money::Money;
use crate::core::vocab::Mode;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerKeyRow {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub name: String,
    pub secret_hash: String,
    pub spend_limit: Option<Money>,
    /// `day`, `month` or `total`.
    pub limit_period: String,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

const KEY_COLUMNS: &str = "id, mode, customer_id, name, secret_hash, spend_limit, limit_period, \
     expires_at, created_at, revoked_at";

fn key_from_row(r: &AnyRow) -> Result<CustomerKeyRow> {
    Ok(CustomerKeyRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        customer_id: r.try_get(2)?,
        name: r.try_get(3)?,
        secret_hash: r.try_get(4)?,
        spend_limit: r.try_get::<Option<i64>, _>(5)?.map(Money::from_nanos),
        limit_period: r.try_get(6)?,
        expires_at: r.try_get::<Option<i64>, _>(7)?.map(Timestamp::from_micros),
        created_at: Timestamp::from_micros(r.try_get(8)?),
        revoked_at: r.try_get::<Option<i64>, _>(9)?.map(Timestamp::from_micros),
    })
}

/// Where a proxied request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyStatus {
    /// Held, not yet settled.
    Open,
    /// Settled with a cost.
    Charged,
    /// Settled with nothing charged (the reason says why).
    Failed,
    /// Refused before anything was held or sent.
    Refused,
}

impl ProxyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyStatus::Open => "open",
            ProxyStatus::Charged => "charged",
            ProxyStatus::Failed => "failed",
            ProxyStatus::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<ProxyStatus> {
        [
            ProxyStatus::Open,
            ProxyStatus::Charged,
            ProxyStatus::Failed,
            ProxyStatus::Refused,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// One proxied request as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyRequestRow {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub customer_key_id: Option<String>,
    pub authorization_id: Option<String>,
    pub provider: String,
    pub endpoint: String,
    pub model: String,
    pub streamed: bool,
    pub conversation: Option<String>,
    pub status: ProxyStatus,
    pub upstream_status: Option<i64>,
    /// Why nothing (or not everything) was charged, in a word or two.
    pub reason: Option<String>,
    pub event_id: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

const REQUEST_COLUMNS: &str =
    "id, mode, customer_id, customer_key_id, authorization_id, provider, \
     endpoint, model, streamed, conversation, status, upstream_status, reason, event_id, \
     created_at, finished_at";

fn request_from_row(r: &AnyRow) -> Result<ProxyRequestRow> {
    Ok(ProxyRequestRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        customer_id: r.try_get(2)?,
        customer_key_id: r.try_get(3)?,
        authorization_id: r.try_get(4)?,
        provider: r.try_get(5)?,
        endpoint: r.try_get(6)?,
        model: r.try_get(7)?,
        streamed: r.try_get::<i64, _>(8)? != 0,
        conversation: r.try_get(9)?,
        status: {
            let s: String = r.try_get(10)?;
            ProxyStatus::parse(&s).ok_or_else(|| {
                crate::core::error::Error::internal(format!("proxy request status {s}"))
            })?
        },
        upstream_status: r.try_get(11)?,
        reason: r.try_get(12)?,
        event_id: r.try_get(13)?,
        created_at: Timestamp::from_micros(r.try_get(14)?),
        finished_at: r.try_get::<Option<i64>, _>(15)?.map(Timestamp::from_micros),
    })
}

/// A conversation's requests, summed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationRow {
    pub conversation: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost: Money,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
}

/// One model on one day of a provider reconciliation run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftRow {
    pub id: String,
    pub run_id: String,
    pub provider: String,
    pub day: String,
    pub model: String,
    pub tally_input: i64,
    pub tally_output: i64,
    pub tally_cache_write: i64,
    pub tally_cache_read: i64,
    pub provider_input: i64,
    pub provider_output: i64,
    pub provider_cache_write: i64,
    pub provider_cache_read: i64,
    pub created_at: Timestamp,
}

const DRIFT_COLUMNS: &str = "id, run_id, provider, day, model, tally_input, tally_output, \
     tally_cache_write, tally_cache_read, provider_input, provider_output, provider_cache_write, \
     provider_cache_read, created_at";

fn drift_from_row(r: &AnyRow) -> Result<DriftRow> {
    Ok(DriftRow {
        id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        provider: r.try_get(2)?,
        day: r.try_get(3)?,
        model: r.try_get(4)?,
        tally_input: r.try_get(5)?,
        tally_output: r.try_get(6)?,
        tally_cache_write: r.try_get(7)?,
        tally_cache_read: r.try_get(8)?,
        provider_input: r.try_get(9)?,
        provider_output: r.try_get(10)?,
        provider_cache_write: r.try_get(11)?,
        provider_cache_read: r.try_get(12)?,
        created_at: Timestamp::from_micros(r.try_get(13)?),
    })
}

/// What a key's requests spent (charged less refunded) since an instant, and what they hold.
const KEY_SPEND: &str = "SELECT \
       CAST(COALESCE((SELECT SUM(e.cost - e.refunded_amount) FROM proxy_requests p \
                 JOIN usage_events e ON e.id = p.event_id \
                 WHERE p.customer_key_id = $1 AND p.created_at >= $2), 0) AS BIGINT), \
       CAST(COALESCE((SELECT SUM(h.amount) FROM proxy_requests p \
                 JOIN holds h ON h.id = p.authorization_id \
                 WHERE p.customer_key_id = $1 AND h.status = 'pending'), 0) AS BIGINT)";

async fn key_spend<'e, E>(executor: E, key_id: &str, since: Timestamp) -> Result<(Money, Money)>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let r = sqlx::query(KEY_SPEND)
        .bind(key_id)
        .bind(since.micros())
        .fetch_one(executor)
        .await?;
    Ok((
        Money::from_nanos(r.try_get(0)?),
        Money::from_nanos(r.try_get(1)?),
    ))
}

/// Tokens of one model's proxied requests on one UTC day (`YYYY-MM-DD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxiedTokensRow {
    pub model: String,
    pub day: String,
    pub input: i64,
    pub output: i64,
    pub cache_write: i64,
    pub cache_read: i64,
}

impl Store {
    /// Tokens of a provider's proxied requests in a mode per (model, UTC day) in
    /// `[from, to)`, from their usage events.
    pub async fn proxied_tokens_by_day(
        &self,
        provider: &str,
        mode: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<ProxiedTokensRow>> {
        let rows = sqlx::query(
            "SELECT e.model, CAST(e.occurred_at / 86400000000 AS BIGINT), \
                    CAST(SUM(e.input_tokens) AS BIGINT), CAST(SUM(e.output_tokens) AS BIGINT), \
                    CAST(SUM(e.cache_creation_input_tokens) AS BIGINT), CAST(SUM(e.cache_read_input_tokens) AS BIGINT) \
             FROM proxy_requests p JOIN usage_events e ON e.id = p.event_id \
             WHERE p.provider = $1 AND p.mode = $2 AND e.occurred_at >= $3 AND e.occurred_at < $4 \
             GROUP BY e.model, CAST(e.occurred_at / 86400000000 AS BIGINT)",
        )
        .bind(provider)
        .bind(mode)
        .bind(from.micros())
        .bind(to.micros())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let day: i64 = r.try_get(1)?;
                Ok(ProxiedTokensRow {
                    model: r.try_get(0)?,
                    day: Timestamp::from_micros(day * 86_400_000_000).day_key(),
                    input: r.try_get(2)?,
                    output: r.try_get(3)?,
                    cache_write: r.try_get(4)?,
                    cache_read: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// The latest reconciliation run of each provider, its rows by day and model.
    pub async fn latest_drift(&self) -> Result<Vec<DriftRow>> {
        let sql = format!(
            "SELECT {DRIFT_COLUMNS} FROM provider_drift d WHERE d.run_id IN \
               (SELECT (SELECT e.run_id FROM provider_drift e WHERE e.provider = x.provider \
                        ORDER BY e.created_at DESC, e.run_id DESC LIMIT 1) \
                FROM (SELECT DISTINCT provider FROM provider_drift) x) \
             ORDER BY d.provider, d.day DESC, d.model"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.reader).await?;
        rows.iter().map(drift_from_row).collect()
    }

    /// When the provider was last reconciled (the daily job's clock).
    pub async fn last_drift_at(&self, provider: &str) -> Result<Option<Timestamp>> {
        let r = sqlx::query("SELECT MAX(created_at) FROM provider_drift WHERE provider = $1")
            .bind(provider)
            .fetch_one(&self.reader)
            .await?;
        Ok(r.try_get::<Option<i64>, _>(0)?.map(Timestamp::from_micros))
    }

    /// Proxied requests held and not yet settled (streams settle in their own tasks).
    pub async fn count_open_proxy_requests(&self) -> Result<i64> {
        let r = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM proxy_requests WHERE status = 'open'",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(r.try_get(0)?)
    }

    pub async fn customer_key(&self, id: &str) -> Result<Option<CustomerKeyRow>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM customer_keys WHERE id = $1");
        self.one_by(&sql, id, key_from_row).await
    }

    pub async fn customer_keys(&self, customer_id: &str) -> Result<Vec<CustomerKeyRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM customer_keys WHERE customer_id = $1 ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(customer_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// `(spent, held)` of a key: charged less refunded since `since`, and pending holds.
    pub async fn customer_key_spend(
        &self,
        key_id: &str,
        since: Timestamp,
    ) -> Result<(Money, Money)> {
        key_spend(&self.reader, key_id, since).await
    }

    pub async fn proxy_request(&self, id: &str) -> Result<Option<ProxyRequestRow>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM proxy_requests WHERE id = $1");
        self.one_by(&sql, id, request_from_row).await
    }

    /// The latest proxied requests of every customer, newest first.
    pub async fn recent_proxy_requests(&self, limit: i64) -> Result<Vec<ProxyRequestRow>> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM proxy_requests ORDER BY created_at DESC, id DESC LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(request_from_row).collect()
    }

    /// A customer's proxied requests, newest first.
    pub async fn proxy_requests(
        &self,
        customer_id: &str,
        limit: i64,
    ) -> Result<Vec<ProxyRequestRow>> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM proxy_requests WHERE customer_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(customer_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(request_from_row).collect()
    }

    /// A customer's conversations with what each cost, most recent first.
    pub async fn conversations(
        &self,
        customer_id: &str,
        limit: i64,
    ) -> Result<Vec<ConversationRow>> {
        let rows = sqlx::query(
            "SELECT p.conversation, CAST(COUNT(*) AS BIGINT), \
                    CAST(COALESCE(SUM(e.input_tokens + e.output_tokens + e.cache_creation_input_tokens + e.cache_read_input_tokens), 0) AS BIGINT), \
                    CAST(COALESCE(SUM(e.cost - e.refunded_amount), 0) AS BIGINT), MIN(p.created_at), MAX(p.created_at) \
             FROM proxy_requests p LEFT JOIN usage_events e ON e.id = p.event_id \
             WHERE p.customer_id = $1 AND p.conversation IS NOT NULL \
             GROUP BY p.conversation ORDER BY MAX(p.created_at) DESC LIMIT $2",
        )
        .bind(customer_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConversationRow {
                    conversation: r.try_get(0)?,
                    requests: r.try_get(1)?,
                    tokens: r.try_get(2)?,
                    cost: Money::from_nanos(r.try_get(3)?),
                    first_at: Timestamp::from_micros(r.try_get(4)?),
                    last_at: Timestamp::from_micros(r.try_get(5)?),
                })
            })
            .collect()
    }
}

impl Tx {
    pub async fn insert_drift(&mut self, d: &DriftRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO provider_drift ({DRIFT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        );
        sqlx::query(&sql)
            .bind(&d.id)
            .bind(&d.run_id)
            .bind(&d.provider)
            .bind(&d.day)
            .bind(&d.model)
            .bind(d.tally_input)
            .bind(d.tally_output)
            .bind(d.tally_cache_write)
            .bind(d.tally_cache_read)
            .bind(d.provider_input)
            .bind(d.provider_output)
            .bind(d.provider_cache_write)
            .bind(d.provider_cache_read)
            .bind(d.created_at.micros())
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn insert_customer_key(&mut self, k: &CustomerKeyRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO customer_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        sqlx::query(&sql)
            .bind(&k.id)
            .bind(k.mode.as_str())
            .bind(&k.customer_id)
            .bind(&k.name)
            .bind(&k.secret_hash)
            .bind(k.spend_limit.map(Money::nanos))
            .bind(&k.limit_period)
            .bind(k.expires_at.map(Timestamp::micros))
            .bind(k.created_at.micros())
            .bind(k.revoked_at.map(Timestamp::micros))
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Sets or clears a key's limit; false when the key is unknown.
    pub async fn update_customer_key_limit(
        &mut self,
        id: &str,
        spend_limit: Option<Money>,
        limit_period: &str,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE customer_keys SET spend_limit = $1, limit_period = $2 WHERE id = $3",
        )
        .bind(spend_limit.map(Money::nanos))
        .bind(limit_period)
        .bind(id)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn revoke_customer_key(&mut self, id: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE customer_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now.micros())
        .bind(id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// [`Store::customer_key_spend`] inside the transaction (under the account's lock).
    pub async fn customer_key_spend(
        &mut self,
        key_id: &str,
        since: Timestamp,
    ) -> Result<(Money, Money)> {
        key_spend(&mut *self.inner, key_id, since).await
    }

    pub async fn insert_proxy_request(&mut self, p: &ProxyRequestRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO proxy_requests ({REQUEST_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        );
        sqlx::query(&sql)
            .bind(&p.id)
            .bind(p.mode.as_str())
            .bind(&p.customer_id)
            .bind(p.customer_key_id.as_deref())
            .bind(p.authorization_id.as_deref())
            .bind(&p.provider)
            .bind(&p.endpoint)
            .bind(&p.model)
            .bind(i64::from(p.streamed))
            .bind(p.conversation.as_deref())
            .bind(p.status.as_str())
            .bind(p.upstream_status)
            .bind(p.reason.as_deref())
            .bind(p.event_id.as_deref())
            .bind(p.created_at.micros())
            .bind(p.finished_at.map(Timestamp::micros))
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Settles the request held by `authorization_id`, once (a settled row is left alone).
    pub async fn finish_proxy_request(
        &mut self,
        authorization_id: &str,
        status: ProxyStatus,
        upstream_status: Option<i64>,
        reason: Option<&str>,
        event_id: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE proxy_requests SET status = $1, upstream_status = $2, reason = $3, event_id = $4, \
             finished_at = $5 WHERE authorization_id = $6 AND status = 'open'",
        )
        .bind(status.as_str())
        .bind(upstream_status)
        .bind(reason)
        .bind(event_id)
        .bind(now.micros())
        .bind(authorization_id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }
}
