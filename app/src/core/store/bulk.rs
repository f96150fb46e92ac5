//! Set-based SQL for the group commit's usage path: one statement reads or writes the rows
//! of a whole batch (`IN` lists, multi-row `VALUES`), instead of a round of statements per
//! event. Statement texts depend on the batch size, so they are not kept in the prepared
//! statement cache (`persistent(false)`).

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::metering::{
    customer_from_row, event_from_row, model_from_row, plan_version_from_row, CUSTOMER_SELECT,
    EVENT_COLUMNS, MODEL_SELECT,
};
use super::{
    account_from_row, grant_from_row, AccountRow, CustomerRow, Dialect, GrantRow, PlanRow,
    PlanVersionRow, PostingRow, TransactionRow, Tx, UsageEventRow,
};
use crate::core::error::Result;
use crate::core::money::Money;
use crate::core::pricing::ModelPrice;

/// Rows per multi-row statement: keeps every statement far below SQLite's and
/// PostgreSQL's limits on bound parameters (20 columns × 200 rows = 4,000).
const CHUNK: usize = 200;

/// Numbers bound parameters in statement order: `?` on SQLite, `$n` on PostgreSQL.
///
/// SQLite looks a named parameter (`$7`) up by a linear scan, so binding n of them costs
/// n²: with thousands per statement that dominated the write path. Plain `?` is positional.
struct Params {
    dialect: Dialect,
    next: usize,
}

impl Params {
    fn new(dialect: Dialect) -> Params {
        Params { dialect, next: 0 }
    }

    fn one(&mut self) -> String {
        self.next += 1;
        match self.dialect {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${}", self.next),
        }
    }

    /// `p, p, …` for `n` values.
    fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.one()).collect::<Vec<_>>().join(", ")
    }

    /// `(p, p), (p, p), …` for `rows` tuples of `cols` values.
    fn tuples(&mut self, rows: usize, cols: usize) -> String {
        (0..rows)
            .map(|_| format!("({})", self.list(cols)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Tx {
    async fn fetch_all_keyed(&mut self, sql: &str, keys: &[&str]) -> Result<Vec<AnyRow>> {
        let mut rows = Vec::new();
        for chunk in keys.chunks(CHUNK * 4) {
            let sql = sql.replace("{keys}", &Params::new(self.dialect).list(chunk.len()));
            let mut q = sqlx::query(&sql).persistent(false);
            for k in chunk {
                q = q.bind(*k);
            }
            rows.extend(q.fetch_all(&mut *self.inner).await?);
        }
        Ok(rows)
    }

    /// Customers by id (with their accounts' state as of this statement).
    pub async fn customers(&mut self, ids: &[&str]) -> Result<Vec<CustomerRow>> {
        let sql = format!("{CUSTOMER_SELECT} WHERE c.id IN ({{keys}})");
        let rows = self.fetch_all_keyed(&sql, ids).await?;
        rows.iter().map(customer_from_row).collect()
    }

    pub async fn models(&mut self, ids: &[&str]) -> Result<Vec<ModelPrice>> {
        let sql = format!("{MODEL_SELECT} WHERE id IN ({{keys}})");
        let rows = self.fetch_all_keyed(&sql, ids).await?;
        rows.iter().map(model_from_row).collect()
    }

    /// Plans by id, each with the version in force (its newest).
    pub async fn current_plans(&mut self, ids: &[&str]) -> Result<Vec<(PlanRow, PlanVersionRow)>> {
        let sql = "SELECT v.id, v.plan_id, v.version, v.terms, v.created_at, p.name, p.created_at \
                   FROM plans p JOIN plan_versions v ON v.plan_id = p.id \
                   WHERE p.id IN ({keys}) \
                     AND v.version = (SELECT MAX(w.version) FROM plan_versions w WHERE w.plan_id = p.id)";
        let rows = self.fetch_all_keyed(sql, ids).await?;
        rows.iter()
            .map(|r| {
                let version = plan_version_from_row(r)?;
                let plan = PlanRow {
                    id: version.plan_id.clone(),
                    name: r.try_get(5)?,
                    created_at: crate::core::clock::Timestamp::from_micros(r.try_get(6)?),
                };
                Ok((plan, version))
            })
            .collect()
    }

    /// Locks customer accounts (in id order, so two lockers never wait on each other in a
    /// cycle) and reads them. SQLite has one writer and needs no row locks.
    pub async fn lock_accounts(&mut self, ids: &[&str]) -> Result<Vec<AccountRow>> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let lock = match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        };
        let sql = format!(
            "SELECT id, mode, kind, name, status, available, held, created_at FROM accounts \
             WHERE id IN ({{keys}}) ORDER BY id{lock}"
        );
        let rows = self.fetch_all_keyed(&sql, &sorted).await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Live grants (something available or held) of many accounts, as (account, grant).
    pub async fn live_grants_of(
        &mut self,
        account_ids: &[&str],
    ) -> Result<Vec<(String, GrantRow)>> {
        let sql = "SELECT id, kind, amount, available, held, expires_at, created_at, account_id \
                   FROM grants WHERE account_id IN ({keys}) AND (available > 0 OR held > 0)";
        let rows = self.fetch_all_keyed(sql, account_ids).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(7)?, grant_from_row(r)?)))
            .collect()
    }

    /// Usage events already recorded under any of these (customer, request id) pairs.
    pub async fn usage_events_by_requests(
        &mut self,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<UsageEventRow>> {
        let mut out = Vec::new();
        for chunk in pairs.chunks(CHUNK) {
            let mut params = Params::new(self.dialect);
            let terms = (0..chunk.len())
                .map(|_| {
                    let (c, r) = (params.one(), params.one());
                    format!("(customer_id = {c} AND request_id = {r})")
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            let sql = format!("SELECT {EVENT_COLUMNS} FROM usage_events WHERE {terms}");
            let mut q = sqlx::query(&sql).persistent(false);
            for (c, r) in chunk {
                q = q.bind(*c).bind(*r);
            }
            for row in q.fetch_all(&mut *self.inner).await? {
                out.push(event_from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Period counters of many customers for the given periods: (customer, period) →
    /// (tokens, spend). Missing counters are zero.
    pub async fn period_totals_of(
        &mut self,
        customer_ids: &[&str],
        periods: &[&str],
    ) -> Result<HashMap<(String, String), (i64, Money)>> {
        let mut out = HashMap::new();
        for chunk in customer_ids.chunks(CHUNK * 4) {
            let mut params = Params::new(self.dialect);
            let sql = format!(
                "SELECT customer_id, period, tokens, spend FROM usage_periods \
                 WHERE customer_id IN ({}) AND period IN ({})",
                params.list(chunk.len()),
                params.list(periods.len())
            );
            let mut q = sqlx::query(&sql).persistent(false);
            for c in chunk.iter().chain(periods) {
                q = q.bind(*c);
            }
            for r in q.fetch_all(&mut *self.inner).await? {
                out.insert(
                    (r.try_get(0)?, r.try_get(1)?),
                    (r.try_get(2)?, Money::from_nanos(r.try_get(3)?)),
                );
            }
        }
        Ok(out)
    }

    /// Inserts transaction headers; a taken reference fails the statement (the caller
    /// checked under the account locks, so that is a bug or a race to roll back).
    pub async fn insert_transactions(&mut self, rows: &[TransactionRow]) -> Result<()> {
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO ledger_transactions \
                   (id, reference, fingerprint, kind, account_id, amount, actor, reason, created_at) \
                 VALUES {}",
                Params::new(self.dialect).tuples(chunk.len(), 9)
            );
            let mut q = sqlx::query(&sql).persistent(false);
            for t in chunk {
                q = q
                    .bind(&t.id)
                    .bind(&t.reference)
                    .bind(&t.fingerprint)
                    .bind(&t.kind)
                    .bind(&t.account_id)
                    .bind(t.amount.nanos())
                    .bind(t.actor.as_deref())
                    .bind(t.reason.as_deref())
                    .bind(t.created_at.micros());
            }
            q.execute(&mut *self.inner).await?;
        }
        Ok(())
    }

    /// Inserts postings as (transaction id, posting), in order.
    pub async fn insert_postings(&mut self, rows: &[(String, PostingRow)]) -> Result<()> {
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO postings (transaction_id, account_id, grant_id, bucket, amount) VALUES {}",
                Params::new(self.dialect).tuples(chunk.len(), 5)
            );
            let mut q = sqlx::query(&sql).persistent(false);
            for (t, p) in chunk {
                q = q
                    .bind(t)
                    .bind(&p.account_id)
                    .bind(p.grant_id.as_deref())
                    .bind(&p.bucket)
                    .bind(p.amount.nanos());
            }
            q.execute(&mut *self.inner).await?;
        }
        Ok(())
    }

    /// Adds (available, held) deltas to many rows of `accounts` or `grants` in one statement.
    async fn add_to_many(&mut self, table: Balances, deltas: &[(String, i64, i64)]) -> Result<()> {
        let table = match table {
            Balances::Accounts => "accounts",
            Balances::Grants => "grants",
        };
        for chunk in deltas.chunks(CHUNK) {
            let mut params = Params::new(self.dialect);
            let values = (0..chunk.len())
                .map(|_| {
                    let (id, a, h) = (params.one(), params.one(), params.one());
                    format!("({id}, CAST({a} AS BIGINT), CAST({h} AS BIGINT))")
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "WITH d (id, a, h) AS (VALUES {values}) \
                 UPDATE {table} SET \
                   available = available + (SELECT d.a FROM d WHERE d.id = {table}.id), \
                   held = held + (SELECT d.h FROM d WHERE d.id = {table}.id) \
                 WHERE id IN (SELECT id FROM d)"
            );
            let mut q = sqlx::query(&sql).persistent(false);
            for (id, a, h) in chunk {
                q = q.bind(id).bind(*a).bind(*h);
            }
            let n = q.execute(&mut *self.inner).await?.rows_affected();
            if n != chunk.len() as u64 {
                return Err(crate::core::error::Error::internal(format!(
                    "{table}: updated {n} of {} rows",
                    chunk.len()
                )));
            }
        }
        Ok(())
    }

    /// Adds (available, held) deltas to many accounts' cached balances (ids distinct).
    pub async fn add_to_accounts(&mut self, deltas: &[(String, i64, i64)]) -> Result<()> {
        self.add_to_many(Balances::Accounts, deltas).await
    }

    /// Adds (available, held) deltas to many grants' remainders (ids distinct).
    pub async fn add_to_grants(&mut self, deltas: &[(String, i64, i64)]) -> Result<()> {
        self.add_to_many(Balances::Grants, deltas).await
    }

    /// Of these transactions, those whose postings in the database do not sum to zero or
    /// that have none: the database's own word, once per batch.
    pub async fn unbalanced_among(&mut self, ids: &[&str]) -> Result<Vec<String>> {
        let mut bad = Vec::new();
        for chunk in ids.chunks(CHUNK * 4) {
            let sql = format!(
                "SELECT transaction_id, CAST(SUM(amount) AS BIGINT), COUNT(*) FROM postings \
                 WHERE transaction_id IN ({}) GROUP BY transaction_id",
                Params::new(self.dialect).list(chunk.len())
            );
            let mut q = sqlx::query(&sql).persistent(false);
            for id in chunk {
                q = q.bind(*id);
            }
            let mut seen = 0usize;
            for r in q.fetch_all(&mut *self.inner).await? {
                seen += 1;
                let sum: i64 = r.try_get(1)?;
                if sum != 0 {
                    bad.push(r.try_get(0)?);
                }
            }
            if seen != chunk.len() {
                bad.push(format!(
                    "{} transactions without postings",
                    chunk.len() - seen
                ));
            }
        }
        Ok(bad)
    }

    pub async fn insert_usage_events(&mut self, rows: &[UsageEventRow]) -> Result<()> {
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO usage_events ({EVENT_COLUMNS}) VALUES {}",
                Params::new(self.dialect).tuples(chunk.len(), 20)
            );
            let mut q = sqlx::query(&sql).persistent(false);
            for e in chunk {
                q = q
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
                    .bind(e.created_at.micros());
            }
            q.execute(&mut *self.inner).await?;
        }
        Ok(())
    }

    /// Adds to many period counters: (customer, period, tokens, spend), keys distinct.
    pub async fn add_period_usages(&mut self, rows: &[(String, String, i64, Money)]) -> Result<()> {
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO usage_periods (customer_id, period, tokens, spend) VALUES {} \
                 ON CONFLICT (customer_id, period) DO UPDATE SET \
                   tokens = usage_periods.tokens + excluded.tokens, \
                   spend = usage_periods.spend + excluded.spend",
                Params::new(self.dialect).tuples(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql).persistent(false);
            for (c, p, t, s) in chunk {
                q = q.bind(c).bind(p).bind(*t).bind(s.nanos());
            }
            q.execute(&mut *self.inner).await?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Balances {
    Accounts,
    Grants,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_value_once() {
        assert_eq!(
            Params::new(Dialect::Postgres).tuples(2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        let mut p = Params::new(Dialect::Postgres);
        p.list(2);
        assert_eq!(p.list(2), "$3, $4");
        assert_eq!(Params::new(Dialect::Sqlite).tuples(2, 2), "(?, ?), (?, ?)");
    }
}
