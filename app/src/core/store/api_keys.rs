//! SQL of API keys.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::vocab::Mode;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub mode: Mode,
    pub scope: String,
    pub name: String,
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

const KEY_SELECT: &str =
    "SELECT id, mode, scope, name, secret_hash, created_at, revoked_at FROM api_keys";

fn key_from_row(r: &AnyRow) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        scope: r.try_get(2)?,
        name: r.try_get(3)?,
        secret_hash: r.try_get(4)?,
        created_at: Timestamp::from_micros(r.try_get(5)?),
        revoked_at: r.try_get::<Option<i64>, _>(6)?.map(Timestamp::from_micros),
    })
}

impl Store {
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRow>> {
        let sql = format!("{KEY_SELECT} WHERE id = $1");
        self.one_by(&sql, id, key_from_row).await
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        let sql = format!("{KEY_SELECT} ORDER BY created_at DESC");
        let rows = sqlx::query(&sql).fetch_all(&self.reader).await?;
        rows.iter().map(key_from_row).collect()
    }
}

impl Tx {
    pub async fn insert_api_key(&mut self, k: &ApiKeyRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, mode, scope, name, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.id)
        .bind(k.mode.as_str())
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
}
