//! Set-based SQL for the group commit's usage path: one statement reads or writes the rows
//! of a whole batch, instead of a round of statements per event.
//!
//! A batch's keys or rows travel as ONE bound parameter, a JSON array, which the database
//! unpacks into a table (`json_each` on SQLite, `json_array_elements` on PostgreSQL). So
//! every statement text is the same whatever the batch size: it is prepared once per
//! connection and kept in sqlx's statement cache, and binding costs one value instead of
//! twenty per row. Numbers are JSON integers (i64, exact on both databases; never floats),
//! read back with `CAST(… AS BIGINT)`. Both databases scan the array in order, so rows are
//! inserted in the order given.

use std::collections::HashMap;

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::metering::{
    customer_from_row, event_from_row, model_from_row, model_mode, plan_version_from_row,
    CURRENT_PRICE, CUSTOMER_SELECT, EVENT_COLUMNS, EVENT_SELECT, MODEL_SELECT,
};
use super::{
    account_from_row, grant_from_row, AccountRow, CustomerRow, Dialect, GrantRow, PlanRow,
    PlanVersionRow, PostingRow, TransactionRow, Tx, UsageEventRow,
};
use crate::core::error::Result;
use crate::core::money::Money;
use crate::core::pricing::ModelPrice;

/// The table a JSON array of arrays in parameter `$1` unpacks into, as `j`: one row per
/// element, field `i` of a row is `j.value->>i`.
fn unpacked(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "json_each($1) AS j",
        Dialect::Postgres => "json_array_elements(CAST($1 AS json)) AS j(value)",
    }
}

/// `IN (…)` for a key column against the JSON array of strings in parameter `$n`. On
/// PostgreSQL it is `= ANY(ARRAY(…))`: the planner then probes the column's index for each
/// key, where a join against the function scan (which it guesses at 100 rows) can pick a
/// sequential scan of a table that is still small, and keep that plan as it grows.
fn in_keys(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("IN (SELECT value FROM json_each(${n}))"),
        Dialect::Postgres => {
            format!("= ANY(ARRAY(SELECT json_array_elements_text(CAST(${n} AS json))))")
        }
    }
}

/// `CAST(j.value->>0 AS TEXT), CAST(j.value->>1 AS BIGINT), …` for the given column types.
fn fields(types: &[Sql]) -> String {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let t = match t {
                Sql::Text => "TEXT",
                Sql::Int => "BIGINT",
            };
            format!("CAST(j.value->>{i} AS {t})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Clone, Copy)]
enum Sql {
    Text,
    Int,
}
use Sql::{Int, Text};

/// The JSON array bound as the statement's one parameter.
fn array(items: impl IntoIterator<Item = Value>) -> String {
    Value::Array(items.into_iter().collect()).to_string()
}

impl Tx {
    /// Rows whose key column is in `keys`: `sql` holds `{in_keys}` after that column.
    async fn fetch_all_keyed(&mut self, sql: &str, keys: &[&str]) -> Result<Vec<AnyRow>> {
        let sql = sql.replace("{in_keys}", &in_keys(self.dialect, 1));
        Ok(sqlx::query(&sql)
            .bind(array(keys.iter().map(|k| json!(k))))
            .fetch_all(&mut *self.inner)
            .await?)
    }

    /// Runs a statement whose one parameter is `rows` as a JSON array of arrays; returns
    /// the rows it affected.
    async fn execute_rows(&mut self, sql: &str, rows: Vec<Value>) -> Result<u64> {
        Ok(sqlx::query(sql)
            .bind(array(rows))
            .execute(&mut *self.inner)
            .await?
            .rows_affected())
    }

    /// Customers by id (with their accounts' state as of this statement).
    pub async fn customers(&mut self, ids: &[&str]) -> Result<Vec<CustomerRow>> {
        let sql = format!("{CUSTOMER_SELECT} WHERE c.id {{in_keys}}");
        let rows = self.fetch_all_keyed(&sql, ids).await?;
        rows.iter().map(customer_from_row).collect()
    }

    /// The prices in force of these models, in every mode: (mode, price).
    pub async fn models(&mut self, ids: &[&str]) -> Result<Vec<(String, ModelPrice)>> {
        let sql = format!("{MODEL_SELECT} WHERE p.model {{in_keys}} AND {CURRENT_PRICE}");
        let rows = self.fetch_all_keyed(&sql, ids).await?;
        rows.iter()
            .map(|r| Ok((model_mode(r)?, model_from_row(r)?)))
            .collect()
    }

    /// Plans by id, in every mode, each with the version in force (its newest).
    pub async fn current_plans(&mut self, ids: &[&str]) -> Result<Vec<(PlanRow, PlanVersionRow)>> {
        let sql = "SELECT v.id, v.plan_id, v.version, v.terms, v.created_at, p.name, p.created_at, p.mode \
                   FROM plans p JOIN plan_versions v ON v.mode = p.mode AND v.plan_id = p.id \
                   WHERE p.id {in_keys} \
                     AND v.version = (SELECT MAX(w.version) FROM plan_versions w \
                                      WHERE w.mode = p.mode AND w.plan_id = p.id)";
        let rows = self.fetch_all_keyed(sql, ids).await?;
        rows.iter()
            .map(|r| {
                let version = plan_version_from_row(r)?;
                let plan = PlanRow {
                    mode: r.try_get(7)?,
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
        let lock = match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        };
        let sql = format!(
            "SELECT id, mode, kind, name, status, available, held, created_at FROM accounts \
             WHERE id {{in_keys}} ORDER BY id{lock}"
        );
        let rows = self.fetch_all_keyed(&sql, ids).await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Live grants (something available or held) of many accounts, as (account, grant).
    pub async fn live_grants_of(
        &mut self,
        account_ids: &[&str],
    ) -> Result<Vec<(String, GrantRow)>> {
        let sql = "SELECT id, kind, amount, available, held, expires_at, created_at, account_id \
                   FROM grants WHERE account_id {in_keys} AND (available > 0 OR held > 0)";
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
        // The pairs drive the loop and each probes UNIQUE (customer_id, request_id);
        // CROSS JOIN keeps SQLite's planner to that order.
        let columns = EVENT_SELECT
            .split(',')
            .map(|c| format!("e.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM {} CROSS JOIN usage_events e \
             WHERE e.customer_id = CAST(j.value->>0 AS TEXT) \
               AND e.request_id = CAST(j.value->>1 AS TEXT)",
            unpacked(self.dialect)
        );
        let rows = sqlx::query(&sql)
            .bind(array(pairs.iter().map(|(c, r)| json!([c, r]))))
            .fetch_all(&mut *self.inner)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Period counters of many customers for the given periods: (customer, period) →
    /// (tokens, spend). Missing counters are zero.
    pub async fn period_totals_of(
        &mut self,
        customer_ids: &[&str],
        periods: &[&str],
    ) -> Result<HashMap<(String, String), (i64, Money)>> {
        let sql = format!(
            "SELECT customer_id, period, tokens, spend FROM usage_periods \
             WHERE customer_id {} AND period {}",
            in_keys(self.dialect, 1),
            in_keys(self.dialect, 2)
        );
        let customers = array(customer_ids.iter().map(|c| json!(c)));
        let periods = array(periods.iter().map(|p| json!(p)));
        let mut out = HashMap::new();
        for r in sqlx::query(&sql)
            .bind(customers)
            .bind(periods)
            .fetch_all(&mut *self.inner)
            .await?
        {
            out.insert(
                (r.try_get(0)?, r.try_get(1)?),
                (r.try_get(2)?, Money::from_nanos(r.try_get(3)?)),
            );
        }
        Ok(out)
    }

    /// Inserts transaction headers; a taken reference fails the statement (the caller
    /// checked under the account locks, so that is a bug or a race to roll back).
    pub async fn insert_transactions(&mut self, rows: &[TransactionRow]) -> Result<()> {
        let sql = format!(
            "INSERT INTO ledger_transactions \
               (id, reference, fingerprint, kind, account_id, amount, actor, reason, created_at) \
             SELECT {} FROM {}",
            fields(&[Text, Text, Text, Text, Text, Int, Text, Text, Int]),
            unpacked(self.dialect)
        );
        let rows = rows
            .iter()
            .map(|t| {
                json!([
                    t.id,
                    t.reference,
                    t.fingerprint,
                    t.kind,
                    t.account_id,
                    t.amount.nanos(),
                    t.actor,
                    t.reason,
                    t.created_at.micros()
                ])
            })
            .collect();
        self.execute_rows(&sql, rows).await?;
        Ok(())
    }

    /// Inserts postings as (transaction id, posting), in order.
    pub async fn insert_postings(&mut self, rows: &[(String, PostingRow)]) -> Result<()> {
        let sql = format!(
            "INSERT INTO postings (transaction_id, account_id, grant_id, bucket, amount) \
             SELECT {} FROM {}",
            fields(&[Text, Text, Text, Text, Int]),
            unpacked(self.dialect)
        );
        let rows = rows
            .iter()
            .map(|(t, p)| json!([t, p.account_id, p.grant_id, p.bucket, p.amount.nanos()]))
            .collect();
        self.execute_rows(&sql, rows).await?;
        Ok(())
    }

    /// Adds (available, held) deltas to many rows of `accounts` or `grants` in one statement.
    async fn add_to_many(&mut self, table: Balances, deltas: &[(String, i64, i64)]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let table = match table {
            Balances::Accounts => "accounts",
            Balances::Grants => "grants",
        };
        let sql = format!(
            "UPDATE {table} SET available = {table}.available + d.a, held = {table}.held + d.h \
             FROM (SELECT CAST(j.value->>0 AS TEXT) AS id, CAST(j.value->>1 AS BIGINT) AS a, \
                          CAST(j.value->>2 AS BIGINT) AS h FROM {}) AS d \
             WHERE {table}.id = d.id",
            unpacked(self.dialect)
        );
        let rows = deltas.iter().map(|(id, a, h)| json!([id, a, h])).collect();
        let n = self.execute_rows(&sql, rows).await?;
        if n != deltas.len() as u64 {
            return Err(crate::core::error::Error::internal(format!(
                "{table}: updated {n} of {} rows",
                deltas.len()
            )));
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
    /// that have none: the database's own word, once per batch. The check itself answers
    /// with one row (how many transactions have postings, how many of them are unbalanced);
    /// only when it fails are the culprits listed.
    pub async fn unbalanced_among(&mut self, ids: &[&str]) -> Result<Vec<String>> {
        let sums = "SELECT transaction_id, CAST(SUM(amount) AS BIGINT) AS s FROM postings \
                    WHERE transaction_id {in_keys} GROUP BY transaction_id";
        let check = format!(
            "SELECT CAST(COUNT(*) AS BIGINT), \
                    CAST(COALESCE(SUM(CASE WHEN t.s <> 0 THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM ({sums}) AS t"
        );
        let row = self.fetch_all_keyed(&check, ids).await?;
        let (with_postings, unbalanced): (i64, i64) = match row.first() {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (0, 0),
        };
        let distinct = ids.iter().collect::<std::collections::BTreeSet<_>>().len();
        if unbalanced == 0 && with_postings == distinct as i64 {
            return Ok(Vec::new());
        }
        let mut bad = Vec::new();
        for r in self.fetch_all_keyed(sums, ids).await? {
            let sum: i64 = r.try_get(1)?;
            if sum != 0 {
                bad.push(r.try_get(0)?);
            }
        }
        let missing = distinct.saturating_sub(usize::try_from(with_postings).unwrap_or(0));
        if missing > 0 {
            bad.push(format!("{missing} transactions without postings"));
        }
        Ok(bad)
    }

    pub async fn insert_usage_events(&mut self, rows: &[UsageEventRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO usage_events ({EVENT_COLUMNS}) SELECT {} FROM {}",
            fields(&[
                Text, Text, Text, Text, Text, Text, Int, Int, Int, Int, Int, Int, Text, Text, Int,
                Text, Text, Text, Int, Int, Int, Text
            ]),
            unpacked(self.dialect)
        );
        let rows = rows
            .iter()
            .map(|e| {
                json!([
                    e.id,
                    e.mode,
                    e.customer_id,
                    e.request_id,
                    e.model,
                    e.outcome,
                    i64::from(e.batch),
                    e.input_tokens,
                    e.output_tokens,
                    e.cache_creation_input_tokens,
                    e.cache_read_input_tokens,
                    e.cost.nanos(),
                    e.line_items,
                    e.plan_version_id,
                    e.tier,
                    e.authorization_id,
                    e.transaction_id,
                    e.metadata,
                    e.occurred_at.micros(),
                    e.created_at.micros(),
                    i64::from(e.authorization_expired),
                    e.price_version_id
                ])
            })
            .collect();
        self.execute_rows(&sql, rows).await?;
        Ok(())
    }

    /// Adds to many period counters: (customer, period, tokens, spend), keys distinct.
    pub async fn add_period_usages(&mut self, rows: &[(String, String, i64, Money)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // `WHERE true` tells SQLite's parser that ON CONFLICT is the upsert, not a join's ON.
        let sql = format!(
            "INSERT INTO usage_periods (customer_id, period, tokens, spend) SELECT {} FROM {} \
             WHERE true \
             ON CONFLICT (customer_id, period) DO UPDATE SET \
               tokens = usage_periods.tokens + excluded.tokens, \
               spend = usage_periods.spend + excluded.spend",
            fields(&[Text, Text, Int, Int]),
            unpacked(self.dialect)
        );
        let rows = rows
            .iter()
            .map(|(c, p, t, s)| json!([c, p, t, s.nanos()]))
            .collect();
        self.execute_rows(&sql, rows).await?;
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
    fn fields_cast_each_element_of_a_row() {
        assert_eq!(
            fields(&[Text, Int]),
            "CAST(j.value->>0 AS TEXT), CAST(j.value->>1 AS BIGINT)"
        );
    }

    #[test]
    fn the_array_keeps_every_integer_exact() {
        let max = i64::MAX;
        assert_eq!(
            array([json!(["a", max, null])]),
            format!("[[\"a\",{max},null]]")
        );
    }
}
