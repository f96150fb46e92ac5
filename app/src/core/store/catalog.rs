//! SQL of the catalog: price versions (the price book, per mode) and plans with their
//! versions.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::money::Money;
use crate::core::pricing::{ModelPrice, Rates};
use crate::core::vocab::Mode;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanRow {
    pub mode: Mode,
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
        mode: Mode::from_db(&r.try_get::<String, _>(0)?)?,
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

impl Store {
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

    /// A plan with the version in force, in one statement (one snapshot).
    pub async fn current_plan(
        &self,
        mode: &str,
        id: &str,
    ) -> Result<Option<(PlanRow, PlanVersionRow)>> {
        let sql = format!(
            "{} WHERE p.mode = $1 AND p.id = $2 AND {}",
            super::bulk::CURRENT_PLAN_SELECT,
            super::bulk::CURRENT_VERSION
        );
        let row = sqlx::query(&sql)
            .bind(mode)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref()
            .map(super::bulk::current_plan_from_row)
            .transpose()
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
}

impl Tx {
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
}
