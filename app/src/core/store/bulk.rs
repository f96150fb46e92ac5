//! Set-based SQL for the group commit's usage path: one statement reads or writes the rows
//! of a whole batch, instead of a round of statements per event.
//!
//! A batch's keys or rows travel as ONE bound parameter, a JSON array, which the database
//! unpacks into a table (`json_each` on SQLite, `jsonb_array_elements` on PostgreSQL). So
//! every statement text is the same whatever the batch size: it is prepared once per
//! connection and kept in sqlx's statement cache, and binding costs one value instead of
//! twenty per row. Numbers are JSON integers (i64, exact on both databases; never floats),
//! read back with `CAST(… AS BIGINT)`. Both databases scan the array in order, so rows are
//! inserted in the order given.

use std::collections::HashMap;

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{
    catalog::{model_from_row, model_mode, plan_version_from_row, CURRENT_PRICE, MODEL_SELECT},
    customers::{customer_from_row, CUSTOMER_SELECT},
    usage::{event_from_row, EVENT_COLUMNS, EVENT_SELECT},
};
use super::{CustomerRow, Dialect, PlanRow, PlanVersionRow, Tx, UsageEventRow};
use crate::core::error::Result;
use crate::core::money::Money;
use crate::core::pricing::ModelPrice;
use crate::core::vocab::Mode;

/// The table a JSON array of arrays in parameter `$1` unpacks into, as `j`: one row per
/// element, field `i` of a row is `j.value->>i`.
///
/// Each row must be turned into JSON once, not once per field: on SQLite every mention of
/// `json_each`'s `value` converts the row back to text, so the scan sits in a subquery
/// that `OFFSET 0` keeps from being flattened (its `value` is computed once per row, and
/// the fields' `->>` then share one parse of it); on PostgreSQL the array is `jsonb`, so
/// `->>` indexes a parsed row instead of re-reading its text for every field. Profiled:
/// the JSON functions were more than half of the SQLite writer's instructions before.
pub(super) fn unpacked(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "(SELECT value FROM json_each($1) LIMIT -1 OFFSET 0) AS j",
        Dialect::Postgres => "jsonb_array_elements(CAST($1 AS jsonb)) AS j(value)",
    }
}

/// `IN (…)` for a key column against the JSON array of strings in parameter `$n`. On
/// PostgreSQL it is `= ANY(ARRAY(…))`: the planner then probes the column's index for each
/// key, where a join against the function scan (which it guesses at 100 rows) can pick a
/// sequential scan of a table that is still small, and keep that plan as it grows.
pub(super) fn in_keys(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("IN (SELECT value FROM json_each(${n}))"),
        Dialect::Postgres => {
            format!("= ANY(ARRAY(SELECT json_array_elements_text(CAST(${n} AS json))))")
        }
    }
}

/// `CAST(j.value->>0 AS TEXT), CAST(j.value->>1 AS BIGINT), …` for the given column types.
pub(super) fn fields(types: &[Sql]) -> String {
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
pub(super) enum Sql {
    Text,
    Int,
}
use Sql::{Int, Text};

/// The JSON array bound as the statement's one parameter.
pub(super) fn array(items: impl IntoIterator<Item = Value>) -> String {
    Value::Array(items.into_iter().collect()).to_string()
}

/// A plan joined with its versions; with [`CURRENT_VERSION`], the version in force (its
/// newest). Rows are read by [`current_plan_from_row`].
pub(super) const CURRENT_PLAN_SELECT: &str =
    "SELECT v.id, v.plan_id, v.version, v.terms, v.created_at, p.name, p.created_at, p.mode \
     FROM plans p JOIN plan_versions v ON v.mode = p.mode AND v.plan_id = p.id";
pub(super) const CURRENT_VERSION: &str = "v.version = (SELECT MAX(w.version) FROM plan_versions w \
     WHERE w.mode = p.mode AND w.plan_id = p.id)";

pub(super) fn current_plan_from_row(r: &AnyRow) -> Result<(PlanRow, PlanVersionRow)> {
    let version = plan_version_from_row(r)?;
    let plan = PlanRow {
        mode: Mode::from_db(&r.try_get::<String, _>(7)?)?,
        id: version.plan_id.clone(),
        name: r.try_get(5)?,
        created_at: crate::core::clock::Timestamp::from_micros(r.try_get(6)?),
    };
    Ok((plan, version))
}

impl Tx {
    /// Rows whose key column is in `keys`: `sql` holds `{in_keys}` after that column.
    pub(super) async fn fetch_all_keyed(
        &mut self,
        sql: &str,
        keys: &[&str],
    ) -> Result<Vec<AnyRow>> {
        let sql = sql.replace("{in_keys}", &in_keys(self.dialect, 1));
        Ok(sqlx::query(&sql)
            .bind(array(keys.iter().map(|k| json!(k))))
            .fetch_all(&mut *self.inner)
            .await?)
    }

    /// Runs a statement whose one parameter is `rows` as a JSON array of arrays; returns
    /// the rows it affected.
    pub(super) async fn execute_rows(&mut self, sql: &str, rows: Vec<Value>) -> Result<u64> {
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
        let sql = format!("{CURRENT_PLAN_SELECT} WHERE p.id {{in_keys}} AND {CURRENT_VERSION}");
        let rows = self.fetch_all_keyed(&sql, ids).await?;
        rows.iter().map(current_plan_from_row).collect()
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

    /// Usage events recorded by captures of any of these authorizations.
    pub async fn usage_events_by_authorizations(
        &mut self,
        ids: &[&str],
    ) -> Result<Vec<UsageEventRow>> {
        let sql =
            format!("SELECT {EVENT_SELECT} FROM usage_events WHERE authorization_id {{in_keys}}");
        let rows = self.fetch_all_keyed(&sql, ids).await?;
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
                    e.outcome.as_str(),
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
