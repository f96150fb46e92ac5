//! SQL of idempotency records (each its own short transaction).

use sqlx::Row;

use super::Store;
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub status_code: Option<i64>,
    pub response: Option<String>,
    pub created_at: Timestamp,
}

impl Store {
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

    /// Deletes an expired record, unless another request took the key since (its
    /// `created_at` differs).
    pub async fn delete_idempotency_key_if(
        &self,
        mode: &str,
        key: &str,
        created_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE mode = $1 AND key = $2 AND created_at = $3",
        )
        .bind(mode)
        .bind(key)
        .bind(created_at.micros())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Deletes the answered records first used before `cutoff` (claims still running are
    /// left: their request finishes or is taken over).
    pub async fn delete_idempotency_keys_before(&self, cutoff: Timestamp) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM idempotency_keys WHERE created_at < $1 AND status_code IS NOT NULL",
        )
        .bind(cutoff.micros())
        .execute(&self.writer)
        .await?
        .rows_affected())
    }
}
