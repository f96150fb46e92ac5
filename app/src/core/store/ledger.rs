//! SQL of the ledger's tables: accounts, transactions, postings, grants, holds; the
//! reads behind `tally verify`; and the set-based statements a journal writes with.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

use super::bulk::{fields, unpacked, Sql::Int, Sql::Text};
use super::{Dialect, Store, Tx};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::money::Money;
use crate::core::vocab::{
    AccountKind, AccountStatus, Bucket, GrantKind, HoldStatus, Kind, Mode, Posting,
};

impl Store {
    // ---- reads ----

    pub async fn account(&self, id: &str) -> Result<AccountRow> {
        let row = sqlx::query(ACCOUNT_SELECT)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| account_from_row(&r))
            .transpose()?
            .ok_or(Error::NotFound("account"))
    }

    /// The balance of any account from its postings (operator accounts keep no cache).
    pub async fn posted_balance(&self, account_id: &str) -> Result<(Money, Money)> {
        let row = sqlx::query(
            "SELECT \
               CAST(COALESCE(SUM(CASE WHEN bucket = 'available' THEN amount ELSE 0 END), 0) AS BIGINT), \
               CAST(COALESCE(SUM(CASE WHEN bucket = 'held' THEN amount ELSE 0 END), 0) AS BIGINT) \
             FROM postings WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_one(&self.reader)
        .await?;
        Ok((
            Money::from_nanos(row.try_get(0)?),
            Money::from_nanos(row.try_get(1)?),
        ))
    }

    pub async fn hold(&self, id: &str) -> Result<HoldRow> {
        let row = sqlx::query(&format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| hold_from_row(&r))
            .transpose()?
            .ok_or(Error::NotFound("hold"))
    }

    pub async fn grants_of(&self, account_id: &str) -> Result<Vec<GrantRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, amount, available, held, expires_at, created_at \
             FROM grants WHERE account_id = $1 ORDER BY created_at, id",
        )
        .bind(account_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    pub async fn grant_by_transaction(&self, transaction_id: &str) -> Result<Option<GrantRow>> {
        let row = sqlx::query(
            "SELECT id, kind, amount, available, held, expires_at, created_at \
             FROM grants WHERE transaction_id = $1",
        )
        .bind(transaction_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| grant_from_row(&r)).transpose()
    }

    pub async fn transaction(&self, id: &str) -> Result<TransactionRow> {
        let row = sqlx::query(TXN_SELECT_BY_ID)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| txn_from_row(&r))
            .transpose()?
            .ok_or(Error::NotFound("transaction"))
    }

    /// Ledger transactions of one account, newest first, keyset on `id`: those older than
    /// `starting_after`, or with `ending_before` the ones just newer than it, oldest first
    /// (the edge turns the page round).
    pub async fn list_transactions(
        &self,
        account_id: &str,
        starting_after: Option<&str>,
        ending_before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TransactionRow>> {
        let (cursor, keyset, order) = match (starting_after, ending_before) {
            (Some(after), _) => (Some(after), "AND id < $2", "DESC"),
            (None, Some(before)) => (Some(before), "AND id > $2", "ASC"),
            (None, None) => (None, "", "DESC"),
        };
        let sql = format!(
            "SELECT {TXN_COLUMNS} FROM ledger_transactions WHERE account_id = $1 {keyset} \
             ORDER BY id {order} LIMIT {}",
            if cursor.is_some() { "$3" } else { "$2" },
        );
        let mut q = sqlx::query(&sql).bind(account_id);
        if let Some(s) = cursor {
            q = q.bind(s);
        }
        let rows = q.bind(limit).fetch_all(&self.reader).await?;
        rows.iter().map(txn_from_row).collect()
    }

    /// The account's money in and out other than usage: top-ups, grants, refunds,
    /// disputes, expiries and adjustments (not usage, holds or releases), newest first.
    pub async fn money_movements(
        &self,
        account_id: &str,
        limit: i64,
    ) -> Result<Vec<TransactionRow>> {
        let sql = format!(
            "SELECT {TXN_COLUMNS} FROM ledger_transactions WHERE account_id = $1 \
             AND kind NOT IN ('usage', 'hold', 'release') ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(account_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(txn_from_row).collect()
    }

    /// The postings of one mode's transactions made in `[from, to)`, in the order they
    /// were written, after the posting `after` (a page of an export).
    pub async fn posting_lines(
        &self,
        mode: Mode,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<PostingLine>> {
        let rows = sqlx::query(
            "SELECT p.id, t.created_at, t.id, t.kind, t.reference, p.account_id, a.kind, \
               p.bucket, p.amount \
             FROM postings p JOIN ledger_transactions t ON t.id = p.transaction_id \
             JOIN accounts a ON a.id = p.account_id \
             WHERE a.mode = $1 AND t.created_at >= $2 AND t.created_at < $3 AND p.id > $4 \
             ORDER BY p.id LIMIT $5",
        )
        .bind(mode.as_str())
        .bind(from.map_or(i64::MIN, Timestamp::micros))
        .bind(to.map_or(i64::MAX, Timestamp::micros))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PostingLine {
                    id: r.try_get(0)?,
                    at: Timestamp::from_micros(r.try_get(1)?),
                    transaction_id: r.try_get(2)?,
                    kind: Kind::from_db(&r.try_get::<String, _>(3)?)?,
                    reference: r.try_get(4)?,
                    account_id: r.try_get(5)?,
                    account_kind: AccountKind::from_db(&r.try_get::<String, _>(6)?)?,
                    bucket: Bucket::from_db(&r.try_get::<String, _>(7)?)?,
                    amount: Money::from_nanos(r.try_get(8)?),
                })
            })
            .collect()
    }

    pub async fn postings_of(&self, transaction_id: &str) -> Result<Vec<Posting>> {
        postings_of(&self.reader, transaction_id).await
    }

    /// Pending holds whose deadline has passed, oldest first.
    pub async fn overdue_holds(&self, now: Timestamp, limit: i64) -> Result<Vec<String>> {
        let ids = sqlx::query_scalar(
            "SELECT id FROM holds WHERE status = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now.micros())
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(ids)
    }

    /// Accounts with a grant past its expiry that still has an unspent remainder.
    pub async fn accounts_with_expired_grants(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<String>> {
        let ids = sqlx::query_scalar(
            "SELECT DISTINCT account_id FROM grants \
             WHERE expires_at IS NOT NULL AND expires_at <= $1 AND available > 0 LIMIT $2",
        )
        .bind(now.micros())
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(ids)
    }

    // ---- the checks behind `tally verify` ----

    /// Transactions whose postings do not sum to zero (id, sum).
    pub async fn unbalanced_transactions(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT t.id, CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) AS total \
             FROM ledger_transactions t LEFT JOIN postings p ON p.transaction_id = t.id \
             GROUP BY t.id HAVING COALESCE(SUM(p.amount), 0) <> 0",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Accounts whose cached balance differs from the sum of their postings.
    /// Operator accounts must show 0 in the cache (they are never cached).
    pub async fn drifted_accounts(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT a.id FROM accounts a LEFT JOIN ( \
               SELECT account_id, \
                 CAST(SUM(CASE WHEN bucket = 'available' THEN amount ELSE 0 END) AS BIGINT) AS av, \
                 CAST(SUM(CASE WHEN bucket = 'held' THEN amount ELSE 0 END) AS BIGINT) AS he \
               FROM postings GROUP BY account_id) p ON p.account_id = a.id \
             WHERE (a.kind = 'customer' AND (a.available <> COALESCE(p.av, 0) OR a.held <> COALESCE(p.he, 0))) \
                OR (a.kind = 'operator' AND (a.available <> 0 OR a.held <> 0))",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Usage events whose charge disagrees with the ledger: a cost without a transaction,
    /// a transaction whose amount is not minus the cost, or a refund that is not exactly
    /// its own transaction's amount or exceeds the cost.
    pub async fn mischarged_events(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT e.id FROM usage_events e \
             LEFT JOIN ledger_transactions t ON t.id = e.transaction_id \
             LEFT JOIN ledger_transactions r ON r.id = e.refund_transaction_id \
             WHERE (e.cost <> 0 AND t.id IS NULL) \
                OR (t.id IS NOT NULL AND t.amount <> -e.cost) \
                OR (e.refunded_amount > e.cost) \
                OR (e.refunded_amount > 0 AND (r.id IS NULL OR r.amount <> e.refunded_amount)) \
                OR (e.refunded_amount = 0 AND e.refund_transaction_id IS NOT NULL)",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Period counters (month and day, UTC, by when the event was recorded) that differ
    /// from the sums of their events, and sums with no counter.
    pub async fn drifted_period_counters(&self) -> Result<Vec<String>> {
        let (month, day) = match self.dialect {
            Dialect::Sqlite => (
                "strftime('%Y-%m', created_at / 1000000, 'unixepoch')",
                "strftime('%Y-%m-%d', created_at / 1000000, 'unixepoch')",
            ),
            Dialect::Postgres => (
                "to_char(to_timestamp(created_at / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM')",
                "to_char(to_timestamp(created_at / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            ),
        };
        let tokens =
            "input_tokens + output_tokens + cache_creation_input_tokens + cache_read_input_tokens";
        let sql = format!(
            "WITH s AS ( \
               SELECT customer_id, period, CAST(SUM(tokens) AS BIGINT) AS tokens, \
                 CAST(SUM(cost) AS BIGINT) AS spend FROM ( \
                   SELECT customer_id, {month} AS period, {tokens} AS tokens, cost FROM usage_events \
                   UNION ALL \
                   SELECT customer_id, {day} AS period, {tokens} AS tokens, cost FROM usage_events) x \
               GROUP BY customer_id, period) \
             SELECT u.customer_id || ' ' || u.period FROM usage_periods u \
               LEFT JOIN s ON s.customer_id = u.customer_id AND s.period = u.period \
               WHERE u.tokens <> COALESCE(s.tokens, 0) OR u.spend <> COALESCE(s.spend, 0) \
             UNION ALL \
             SELECT s.customer_id || ' ' || s.period FROM s \
               LEFT JOIN usage_periods u ON u.customer_id = s.customer_id AND u.period = s.period \
               WHERE u.customer_id IS NULL AND (s.tokens <> 0 OR s.spend <> 0)"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.reader).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Grants whose cached remainder differs from the sum of their postings, or whose
    /// postings sit on another account.
    pub async fn drifted_grants(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT g.id FROM grants g LEFT JOIN ( \
               SELECT grant_id, \
                 CAST(SUM(CASE WHEN bucket = 'available' THEN amount ELSE 0 END) AS BIGINT) AS av, \
                 CAST(SUM(CASE WHEN bucket = 'held' THEN amount ELSE 0 END) AS BIGINT) AS he \
               FROM postings WHERE grant_id IS NOT NULL GROUP BY grant_id) p ON p.grant_id = g.id \
             WHERE g.available <> COALESCE(p.av, 0) OR g.held <> COALESCE(p.he, 0) \
             UNION \
             SELECT DISTINCT p.grant_id FROM postings p JOIN grants g ON g.id = p.grant_id \
             WHERE p.account_id <> g.account_id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Holds whose state disagrees with their transactions: a pending hold must have no
    /// settlement, a settled one exactly one, and the held bucket must equal what pending
    /// holds reserve.
    pub async fn inconsistent_holds(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT h.id FROM holds h \
             LEFT JOIN ledger_transactions s ON s.id = h.settle_transaction_id \
             WHERE (h.status = 'pending') <> (h.settle_transaction_id IS NULL) \
                OR (h.status <> 'pending' AND s.id IS NULL) \
                OR (h.status = 'captured' AND h.captured_amount IS NULL) \
                OR (h.status NOT IN ('captured', 'expired') AND h.captured_amount IS NOT NULL) \
             UNION \
             SELECT a.id FROM accounts a LEFT JOIN ( \
               SELECT account_id, CAST(SUM(amount) AS BIGINT) AS pending FROM holds \
               WHERE status = 'pending' GROUP BY account_id) h ON h.account_id = a.id \
             WHERE a.kind = 'customer' AND a.held <> COALESCE(h.pending, 0)",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// References used by more than one transaction (the unique index forbids it; this
    /// proves the index is there and intact).
    pub async fn duplicate_references(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT reference FROM ledger_transactions GROUP BY reference HAVING COUNT(*) > 1",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Whether the database holds any customer or ledger transaction (two index probes,
    /// not counts).
    pub async fn holds_data(&self) -> Result<bool> {
        let any: i64 = sqlx::query_scalar(
            "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM customers) \
             OR EXISTS (SELECT 1 FROM ledger_transactions) THEN 1 ELSE 0 END AS BIGINT)",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(any == 1)
    }

    /// Writes a consistent copy of a SQLite database to the new file `dest` while it stays
    /// in use: `VACUUM INTO` reads it in one transaction on a reader connection, so the
    /// copy is the database at one instant (compacted), and writers go on meanwhile.
    /// PostgreSQL has `pg_dump` for this (README, Backups).
    pub async fn backup_sqlite(&self, dest: &std::path::Path) -> Result<()> {
        if self.dialect != Dialect::Sqlite {
            return Err(Error::invalid(
                "database_url",
                "tally backup copies a SQLite database; back PostgreSQL up with pg_dump (README, Backups)",
            ));
        }
        if dest.exists() {
            return Err(Error::invalid(
                "destination",
                format!("{} exists; a backup never overwrites", dest.display()),
            ));
        }
        let Some(dest) = dest.to_str() else {
            return Err(Error::invalid("destination", "the path is not UTF-8"));
        };
        sqlx::query("VACUUM INTO $1")
            .bind(dest)
            .execute(&self.reader)
            .await?;
        Ok(())
    }

    pub async fn count(&self, table: LedgerTable) -> Result<i64> {
        let sql = match table {
            LedgerTable::Transactions => "SELECT COUNT(*) FROM ledger_transactions",
            LedgerTable::Postings => "SELECT COUNT(*) FROM postings",
            LedgerTable::Accounts => "SELECT COUNT(*) FROM accounts",
            LedgerTable::Holds => "SELECT COUNT(*) FROM holds",
            LedgerTable::Grants => "SELECT COUNT(*) FROM grants",
        };
        Ok(sqlx::query_scalar(sql).fetch_one(&self.reader).await?)
    }
}

#[derive(Clone, Copy, Debug)]
pub enum LedgerTable {
    Transactions,
    Postings,
    Accounts,
    Holds,
    Grants,
}

// ---- rows ----

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRow {
    pub id: String,
    pub mode: Mode,
    pub kind: AccountKind,
    pub name: String,
    pub status: AccountStatus,
    pub available: Money,
    pub held: Money,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRow {
    pub id: String,
    pub kind: GrantKind,
    pub amount: Money,
    pub available: Money,
    pub held: Money,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRow {
    pub id: String,
    pub account_id: String,
    pub amount: Money,
    pub status: HoldStatus,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    pub hold_transaction_id: String,
    pub settle_transaction_id: Option<String>,
    pub captured_amount: Option<Money>,
}

/// One posting with its transaction, as the ledger export writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostingLine {
    /// The posting's own number: the export's order and its cursor.
    pub id: i64,
    pub at: Timestamp,
    pub transaction_id: String,
    pub kind: Kind,
    pub reference: String,
    pub account_id: String,
    pub account_kind: AccountKind,
    pub bucket: Bucket,
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionRow {
    pub id: String,
    pub reference: String,
    pub fingerprint: String,
    pub kind: Kind,
    pub account_id: String,
    pub amount: Money,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

const ACCOUNT_SELECT: &str = "SELECT id, mode, kind, name, status, available, held, created_at \
                              FROM accounts WHERE id = $1";
const HOLD_COLUMNS: &str = "id, account_id, amount, status, expires_at, created_at, \
                            hold_transaction_id, settle_transaction_id, captured_amount";
const TXN_COLUMNS: &str =
    "id, reference, fingerprint, kind, account_id, amount, actor, reason, created_at";
const TXN_SELECT_BY_ID: &str = "SELECT id, reference, fingerprint, kind, account_id, amount, \
                                actor, reason, created_at FROM ledger_transactions WHERE id = $1";

fn account_from_row(r: &AnyRow) -> Result<AccountRow> {
    Ok(AccountRow {
        id: r.try_get(0)?,
        mode: Mode::from_db(&r.try_get::<String, _>(1)?)?,
        kind: AccountKind::from_db(&r.try_get::<String, _>(2)?)?,
        name: r.try_get(3)?,
        status: AccountStatus::from_db(&r.try_get::<String, _>(4)?)?,
        available: Money::from_nanos(r.try_get(5)?),
        held: Money::from_nanos(r.try_get(6)?),
        created_at: Timestamp::from_micros(r.try_get(7)?),
    })
}

fn grant_from_row(r: &AnyRow) -> Result<GrantRow> {
    Ok(GrantRow {
        id: r.try_get(0)?,
        kind: GrantKind::from_db(&r.try_get::<String, _>(1)?)?,
        amount: Money::from_nanos(r.try_get(2)?),
        available: Money::from_nanos(r.try_get(3)?),
        held: Money::from_nanos(r.try_get(4)?),
        expires_at: r.try_get::<Option<i64>, _>(5)?.map(Timestamp::from_micros),
        created_at: Timestamp::from_micros(r.try_get(6)?),
    })
}

fn hold_from_row(r: &AnyRow) -> Result<HoldRow> {
    Ok(HoldRow {
        id: r.try_get(0)?,
        account_id: r.try_get(1)?,
        amount: Money::from_nanos(r.try_get(2)?),
        status: HoldStatus::from_db(&r.try_get::<String, _>(3)?)?,
        expires_at: Timestamp::from_micros(r.try_get(4)?),
        created_at: Timestamp::from_micros(r.try_get(5)?),
        hold_transaction_id: r.try_get(6)?,
        settle_transaction_id: r.try_get(7)?,
        captured_amount: r.try_get::<Option<i64>, _>(8)?.map(Money::from_nanos),
    })
}

fn txn_from_row(r: &AnyRow) -> Result<TransactionRow> {
    Ok(TransactionRow {
        id: r.try_get(0)?,
        reference: r.try_get(1)?,
        fingerprint: r.try_get(2)?,
        kind: Kind::from_db(&r.try_get::<String, _>(3)?)?,
        account_id: r.try_get(4)?,
        amount: Money::from_nanos(r.try_get(5)?),
        actor: r.try_get(6)?,
        reason: r.try_get(7)?,
        created_at: Timestamp::from_micros(r.try_get(8)?),
    })
}

async fn postings_of<'e, E>(executor: E, transaction_id: &str) -> Result<Vec<Posting>>
where
    E: Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT account_id, grant_id, bucket, amount FROM postings \
         WHERE transaction_id = $1 ORDER BY id",
    )
    .bind(transaction_id)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Posting {
                account_id: r.try_get(0)?,
                grant_id: r.try_get(1)?,
                bucket: Bucket::from_db(&r.try_get::<String, _>(2)?)?,
                amount: Money::from_nanos(r.try_get(3)?),
            })
        })
        .collect()
}

impl Tx {
    pub async fn insert_account(
        &mut self,
        id: &str,
        mode: Mode,
        name: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO accounts (id, mode, kind, name, created_at) VALUES ($1, $2, 'customer', $3, $4)",
        )
        .bind(id)
        .bind(mode.as_str())
        .bind(name)
        .bind(now.micros())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Reads a customer account and, on PostgreSQL, locks its row until commit so that
    /// every change to its balance and grants is serialised. (SQLite has one writer.)
    pub async fn lock_account(&mut self, id: &str) -> Result<AccountRow> {
        let sql = match self.dialect {
            Dialect::Sqlite => ACCOUNT_SELECT.to_string(),
            Dialect::Postgres => format!("{ACCOUNT_SELECT} FOR UPDATE"),
        };
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| account_from_row(&r))
            .transpose()?
            .ok_or(Error::NotFound("account"))
    }

    /// Suspends (`Some(by)`) or resumes (`None`) an account, whoever had suspended it.
    pub async fn set_account_status(&mut self, id: &str, suspended_by: Option<&str>) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET status = CASE WHEN $1 IS NULL THEN 'active' ELSE 'suspended' END, \
             suspended_by = $1 WHERE id = $2",
        )
        .bind(suspended_by)
        .bind(id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Suspends an active account because of a lost dispute; true if it was active.
    pub async fn suspend_for_dispute(&mut self, id: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE accounts SET status = 'suspended', suspended_by = 'dispute' \
             WHERE id = $1 AND status = 'active'",
        )
        .bind(id)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Lifts a suspension that a dispute made (never one by staff); true if it did.
    pub async fn lift_dispute_suspension(&mut self, id: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE accounts SET status = 'active', suspended_by = NULL \
             WHERE id = $1 AND status = 'suspended' AND suspended_by = 'dispute'",
        )
        .bind(id)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// How many of a customer's disputes are lost.
    pub async fn lost_disputes(&mut self, customer_id: &str) -> Result<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM disputes d JOIN topups t ON t.id = d.topup_id \
             WHERE t.customer_id = $1 AND d.status = 'lost'",
        )
        .bind(customer_id)
        .fetch_one(&mut *self.inner)
        .await?;
        Ok(n)
    }

    pub async fn transaction_by_reference(
        &mut self,
        reference: &str,
    ) -> Result<Option<TransactionRow>> {
        let sql = format!("SELECT {TXN_COLUMNS} FROM ledger_transactions WHERE reference = $1");
        let row = sqlx::query(&sql)
            .bind(reference)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| txn_from_row(&r)).transpose()
    }

    pub async fn transaction(&mut self, id: &str) -> Result<TransactionRow> {
        let row = sqlx::query(TXN_SELECT_BY_ID)
            .bind(id)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| txn_from_row(&r))
            .transpose()?
            .ok_or(Error::NotFound("transaction"))
    }

    pub async fn postings_of(&mut self, transaction_id: &str) -> Result<Vec<Posting>> {
        postings_of(&mut *self.inner, transaction_id).await
    }

    pub async fn hold(&mut self, id: &str) -> Result<HoldRow> {
        let row = sqlx::query(&format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| hold_from_row(&r))
            .transpose()?
            .ok_or(Error::NotFound("hold"))
    }

    // ---- set-based: what a journal reads and writes ----

    /// The transactions that already took any of these references.
    pub async fn transactions_by_references(
        &mut self,
        references: &[&str],
    ) -> Result<Vec<TransactionRow>> {
        let sql =
            format!("SELECT {TXN_COLUMNS} FROM ledger_transactions WHERE reference {{in_keys}}");
        let rows = self.fetch_all_keyed(&sql, references).await?;
        rows.iter().map(txn_from_row).collect()
    }

    /// Holds by id, and the (hold transaction, grant, amount) parts each moved into `held`.
    pub async fn holds_with_parts(
        &mut self,
        ids: &[&str],
    ) -> Result<(Vec<HoldRow>, Vec<(String, String, i64)>)> {
        let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id {{in_keys}}");
        let holds: Vec<HoldRow> = self
            .fetch_all_keyed(&sql, ids)
            .await?
            .iter()
            .map(hold_from_row)
            .collect::<Result<_>>()?;
        let transactions: Vec<&str> = holds
            .iter()
            .map(|h| h.hold_transaction_id.as_str())
            .collect();
        let sql = "SELECT transaction_id, grant_id, amount FROM postings \
                   WHERE transaction_id {in_keys} AND bucket = 'held' AND grant_id IS NOT NULL \
                   ORDER BY id";
        let parts = self
            .fetch_all_keyed(sql, &transactions)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_>>()?;
        Ok((holds, parts))
    }

    /// Inserts new grants with nothing in them; their postings fill them through
    /// [`Tx::add_to_grants`].
    pub async fn insert_grants(&mut self, rows: &[NewGrant]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO grants \
               (id, account_id, kind, amount, available, held, expires_at, created_at, transaction_id) \
             SELECT {} FROM {}",
            "CAST(j.value->>0 AS TEXT), CAST(j.value->>1 AS TEXT), CAST(j.value->>2 AS TEXT), \
             CAST(j.value->>3 AS BIGINT), 0, 0, CAST(j.value->>4 AS BIGINT), \
             CAST(j.value->>5 AS BIGINT), CAST(j.value->>6 AS TEXT)",
            unpacked(self.dialect)
        );
        let rows = rows
            .iter()
            .map(|g| {
                json!([
                    g.id,
                    g.account_id,
                    g.kind.as_str(),
                    g.amount.nanos(),
                    g.expires_at.map(Timestamp::micros),
                    g.created_at.micros(),
                    g.transaction_id
                ])
            })
            .collect();
        self.execute_rows(&sql, rows).await?;
        Ok(())
    }

    /// Inserts new holds as they are.
    pub async fn insert_holds(&mut self, rows: &[HoldRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO holds (id, account_id, amount, status, expires_at, created_at, \
               hold_transaction_id, settle_transaction_id, captured_amount) \
             SELECT {} FROM {}",
            fields(&[Text, Text, Int, Text, Int, Int, Text, Text, Int]),
            unpacked(self.dialect)
        );
        let rows = rows
            .iter()
            .map(|h| {
                json!([
                    h.id,
                    h.account_id,
                    h.amount.nanos(),
                    h.status.as_str(),
                    h.expires_at.micros(),
                    h.created_at.micros(),
                    h.hold_transaction_id,
                    h.settle_transaction_id,
                    h.captured_amount.map(Money::nanos)
                ])
            })
            .collect();
        self.execute_rows(&sql, rows).await?;
        Ok(())
    }

    /// Writes holds' new state (status, settlement, captured amount), each guarded on the
    /// state it was read in: a hold that changed under its account's lock is a bug, and
    /// fails the statement's caller.
    pub async fn update_holds(&mut self, rows: &[(HoldRow, HoldStatus)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE holds SET status = d.s, settle_transaction_id = d.t, captured_amount = d.c \
             FROM (SELECT CAST(j.value->>0 AS TEXT) AS id, CAST(j.value->>1 AS TEXT) AS s, \
                          CAST(j.value->>2 AS TEXT) AS t, CAST(j.value->>3 AS BIGINT) AS c, \
                          CAST(j.value->>4 AS TEXT) AS was FROM {}) AS d \
             WHERE holds.id = d.id AND holds.status = d.was",
            unpacked(self.dialect)
        );
        let n = rows.len() as u64;
        let rows = rows
            .iter()
            .map(|(h, was)| {
                json!([
                    h.id,
                    h.status.as_str(),
                    h.settle_transaction_id,
                    h.captured_amount.map(Money::nanos),
                    was.as_str()
                ])
            })
            .collect();
        let updated = self.execute_rows(&sql, rows).await?;
        if updated != n {
            return Err(Error::internal(format!(
                "holds: updated {updated} of {n}: a hold changed under its account's lock"
            )));
        }
        Ok(())
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

    /// Inserts transaction headers; a taken reference fails the statement (the caller
    /// checked under the account locks, so that is a bug or a race to roll back).
    pub async fn insert_transactions(&mut self, rows: &[TransactionRow]) -> Result<()> {
        let rows_len = rows.len() as u64;
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
                    t.kind.as_str(),
                    t.account_id,
                    t.amount.nanos(),
                    t.actor,
                    t.reason,
                    t.created_at.micros()
                ])
            })
            .collect();
        self.execute_rows(&sql, rows).await?;
        self.transactions += rows_len;
        Ok(())
    }

    /// Inserts postings as (transaction id, posting), in order.
    pub async fn insert_postings(&mut self, rows: &[(String, Posting)]) -> Result<()> {
        let sql = format!(
            "INSERT INTO postings (transaction_id, account_id, grant_id, bucket, amount) \
             SELECT {} FROM {}",
            fields(&[Text, Text, Text, Text, Int]),
            unpacked(self.dialect)
        );
        let rows = rows
            .iter()
            .map(|(t, p)| {
                json!([
                    t,
                    p.account_id,
                    p.grant_id,
                    p.bucket.as_str(),
                    p.amount.nanos()
                ])
            })
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
            return Err(Error::internal(format!(
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
}

/// A grant a journal creates, empty until its postings fill it.
#[derive(Clone, Debug)]
pub struct NewGrant {
    pub id: String,
    pub account_id: String,
    pub kind: GrantKind,
    pub amount: Money,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub transaction_id: String,
}

#[derive(Clone, Copy)]
enum Balances {
    Accounts,
    Grants,
}
