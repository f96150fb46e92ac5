//! The store: the only place with SQL. One implementation over sqlx's `Any` driver serves
//! SQLite and PostgreSQL with the same statements (`$1` placeholders work on both); the few
//! spots where the dialects differ branch on [`Dialect`]. Each backend has its own
//! migrations in `migrations/<backend>/`, embedded in the binary.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row};

use super::clock::Timestamp;
use super::error::{Error, Result};
use super::money::Money;

mod admin;
mod bulk;
mod metering;
mod payments;
pub use admin::{AdminRow, AuditRow, OperatorFigures};
mod portal;
mod proxy;
pub use metering::{
    ApiKeyRow, AuthorizationRow, CustomerRow, IdempotencyRow, PlanRow, PlanVersionRow,
    UsageEventRow, UsageFilter,
};
pub use payments::{AutoTopupRow, AutoTopupSettings, ReconciliationRow, TopupRow, WebhookEventRow};
pub use portal::DailyUsage;
pub use proxy::{ConversationRow, CustomerKeyRow, DriftRow, ProxyRequestRow, ProxyStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// A handle on the database: cheap to clone.
///
/// SQLite allows one writer at a time, so its write pool has exactly one connection: writers
/// queue in-process instead of failing with "database is locked", and readers use their own
/// pool concurrently (WAL). PostgreSQL has separate writer and reader pools too.
#[derive(Clone, Debug)]
pub struct Store {
    writer: AnyPool,
    reader: AnyPool,
    dialect: Dialect,
}

macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal),* $(,)?) => {
        vec![$(Migration::new(
            $version,
            Cow::Borrowed($name),
            MigrationType::Simple,
            Cow::Borrowed(include_str!(concat!("../../../../migrations/", $dir, "/", $name, ".sql"))),
            false,
        )),*]
    };
}

fn migrator(dialect: Dialect) -> Migrator {
    let migrations = match dialect {
        Dialect::Sqlite => {
            migrations!("sqlite": 1 "0001_ledger", 2 "0002_metering", 3 "0003_price_book", 4 "0004_payments", 5 "0005_portal", 6 "0006_admin", 7 "0007_auto_topup", 8 "0008_late_capture_refunds", 9 "0009_catalog_per_mode", 10 "0010_proxy", 11 "0011_cache_write_1h", 12 "0012_provider_drift")
        }
        Dialect::Postgres => {
            migrations!("postgres": 1 "0001_ledger", 2 "0002_metering", 3 "0003_price_book", 4 "0004_payments", 5 "0005_portal", 6 "0006_admin", 7 "0007_auto_topup", 8 "0008_late_capture_refunds", 9 "0009_catalog_per_mode", 10 "0010_proxy", 11 "0011_cache_write_1h", 12 "0012_provider_drift")
        }
    };
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// What a SQLite pool is for: its connections' pragmas differ.
#[derive(Clone, Copy)]
enum SqliteRole {
    /// The one write connection. Its page cache holds the hot indexes (64 MiB); it copies
    /// the WAL into the database itself only as a backstop (at 10,000 pages, about 40 MB),
    /// because the background checkpointer ([`Store::checkpoint`]) does that on a reader
    /// connection, off the group commit's path.
    Writer,
    Reader,
}

/// A SQLite pool. WAL lets readers run beside the writer; synchronous=FULL means a commit
/// is on disk before we answer; the busy timeout covers other processes (the CLI).
/// Statement journals stay in memory (`temp_store`).
async fn sqlite_pool(url: &str, role: SqliteRole) -> Result<AnyPool> {
    const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                           PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                           PRAGMA temp_store = MEMORY;";
    let (connections, role_pragmas) = match role {
        SqliteRole::Writer => (
            1,
            "PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 10000;",
        ),
        SqliteRole::Reader => (8, "PRAGMA cache_size = -16384;"),
    };
    Ok(AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        // A SQLite connection is a handle in this process: there is nothing to ping, and a
        // ping would be one more round trip to its thread before every group commit.
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(PRAGMAS).await?;
                conn.execute(role_pragmas).await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

impl Store {
    /// Connects by URL scheme: `sqlite://path` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::Unavailable(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
            }
            let url = format!("sqlite://{path}?mode=rwc");
            let writer = sqlite_pool(&url, SqliteRole::Writer).await?;
            let reader = sqlite_pool(&url, SqliteRole::Reader).await?;
            Ok(Store {
                writer,
                reader,
                dialect: Dialect::Sqlite,
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // The group commit's writers get a pool of their own, so that readers (a
            // thousand clients checking balances) can never starve them of connections;
            // a few spare connections serve writes outside the batcher (webhooks, console).
            let pool = |connections: u32| {
                AnyPoolOptions::new()
                    .max_connections(connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
            };
            let writer = pool(super::batch::POSTGRES_WRITERS as u32 + 4).await?;
            let reader = pool(16).await?;
            Ok(Store {
                writer,
                reader,
                dialect: Dialect::Postgres,
            })
        } else {
            Err(Error::invalid(
                "database_url",
                "DATABASE_URL must start with sqlite:// or postgres://",
            ))
        }
    }

    /// At most one row selected by one text key on the reader pool, mapped by `map`.
    async fn one_by<T>(
        &self,
        sql: &str,
        key: &str,
        map: fn(&AnyRow) -> Result<T>,
    ) -> Result<Option<T>> {
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| map(&r)).transpose()
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn migrate(&self) -> Result<()> {
        self.migrate_to(i64::MAX).await
    }

    /// Applies the migrations up to and including version `last` (tests of a migration
    /// start from the schema before it).
    pub async fn migrate_to(&self, last: i64) -> Result<()> {
        let mut migrator = migrator(self.dialect);
        migrator.migrations = Cow::Owned(
            migrator
                .migrations
                .iter()
                .filter(|m| m.version <= last)
                .cloned()
                .collect(),
        );
        match self.dialect {
            Dialect::Postgres => migrator.run(&self.writer).await?,
            Dialect::Sqlite => {
                // SQLite changes a key only by rebuilding the table, which its documentation
                // says to do with foreign-key enforcement off (a pragma that is ignored
                // inside a transaction, so it is set around the migrator), checking every
                // reference before turning it back on.
                let mut conn = self.writer.acquire().await?;
                sqlx::query("PRAGMA foreign_keys = OFF")
                    .execute(&mut *conn)
                    .await?;
                let ran = migrator.run(&mut *conn).await;
                let broken = sqlx::query("PRAGMA foreign_key_check")
                    .fetch_all(&mut *conn)
                    .await?
                    .len();
                sqlx::query("PRAGMA foreign_keys = ON")
                    .execute(&mut *conn)
                    .await?;
                ran?;
                if broken > 0 {
                    return Err(Error::internal(format!(
                        "{broken} rows refer to rows that do not exist after migrating"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Ready when the database answers and every embedded migration has been applied.
    pub async fn ready(&self) -> Result<()> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.reader)
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))?;
        let expected = migrator(self.dialect).iter().count() as i64;
        if applied < expected {
            return Err(Error::Unavailable(format!(
                "{applied} of {expected} migrations applied"
            )));
        }
        Ok(())
    }

    /// SQLite: copies what the WAL holds into the database file as far as no reader still
    /// needs it (a passive checkpoint, on a reader connection: it never waits and never
    /// blocks the writer). PostgreSQL: nothing to do.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.reader)
                .await?;
        }
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.writer.is_closed()
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        let inner = self.writer.begin().await?;
        Ok(Tx {
            inner,
            dialect: self.dialect,
        })
    }

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
        let row = sqlx::query(HOLD_SELECT)
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

    pub async fn postings_of(&self, transaction_id: &str) -> Result<Vec<PostingRow>> {
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
    pub mode: String,
    pub kind: String,
    pub name: String,
    pub status: String,
    pub available: Money,
    pub held: Money,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRow {
    pub id: String,
    pub kind: String,
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
    pub status: String,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    pub hold_transaction_id: String,
    pub settle_transaction_id: Option<String>,
    pub captured_amount: Option<Money>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionRow {
    pub id: String,
    pub reference: String,
    pub fingerprint: String,
    pub kind: String,
    pub account_id: String,
    pub amount: Money,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostingRow {
    pub account_id: String,
    pub grant_id: Option<String>,
    pub bucket: String,
    pub amount: Money,
}

const ACCOUNT_SELECT: &str = "SELECT id, mode, kind, name, status, available, held, created_at \
                              FROM accounts WHERE id = $1";
const HOLD_SELECT: &str = "SELECT id, account_id, amount, status, expires_at, created_at, \
                           hold_transaction_id, settle_transaction_id, captured_amount \
                           FROM holds WHERE id = $1";
const TXN_COLUMNS: &str =
    "id, reference, fingerprint, kind, account_id, amount, actor, reason, created_at";
const TXN_SELECT_BY_ID: &str = "SELECT id, reference, fingerprint, kind, account_id, amount, \
                                actor, reason, created_at FROM ledger_transactions WHERE id = $1";

fn account_from_row(r: &AnyRow) -> Result<AccountRow> {
    Ok(AccountRow {
        id: r.try_get(0)?,
        mode: r.try_get(1)?,
        kind: r.try_get(2)?,
        name: r.try_get(3)?,
        status: r.try_get(4)?,
        available: Money::from_nanos(r.try_get(5)?),
        held: Money::from_nanos(r.try_get(6)?),
        created_at: Timestamp::from_micros(r.try_get(7)?),
    })
}

fn grant_from_row(r: &AnyRow) -> Result<GrantRow> {
    Ok(GrantRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
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
        status: r.try_get(3)?,
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
        kind: r.try_get(3)?,
        account_id: r.try_get(4)?,
        amount: Money::from_nanos(r.try_get(5)?),
        actor: r.try_get(6)?,
        reason: r.try_get(7)?,
        created_at: Timestamp::from_micros(r.try_get(8)?),
    })
}

async fn postings_of<'e, E>(executor: E, transaction_id: &str) -> Result<Vec<PostingRow>>
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
            Ok(PostingRow {
                account_id: r.try_get(0)?,
                grant_id: r.try_get(1)?,
                bucket: r.try_get(2)?,
                amount: Money::from_nanos(r.try_get(3)?),
            })
        })
        .collect()
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back and leaves no trace.
pub struct Tx {
    inner: sqlx::Transaction<'static, sqlx::Any>,
    dialect: Dialect,
}

/// What inserting a transaction header found.
#[derive(Debug)]
pub enum Inserted {
    New,
    /// A transaction with this reference already exists.
    Existing(TransactionRow),
}

/// A new ledger transaction's header.
#[derive(Clone, Debug)]
pub struct NewTransaction<'a> {
    pub id: &'a str,
    pub reference: &'a str,
    pub fingerprint: &'a str,
    pub kind: &'a str,
    pub account_id: &'a str,
    pub amount: Money,
    pub actor: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub created_at: Timestamp,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        Ok(())
    }

    /// Marks a point this transaction can return to (one job of a group commit).
    pub async fn savepoint(&mut self) -> Result<()> {
        self.inner.execute("SAVEPOINT job").await?;
        Ok(())
    }

    pub async fn release_savepoint(&mut self) -> Result<()> {
        self.inner.execute("RELEASE SAVEPOINT job").await?;
        Ok(())
    }

    /// Undoes everything since the savepoint, keeping the rest of the transaction.
    pub async fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.inner.execute("ROLLBACK TO SAVEPOINT job").await?;
        self.inner.execute("RELEASE SAVEPOINT job").await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.inner.rollback().await?;
        Ok(())
    }

    pub async fn insert_account(
        &mut self,
        id: &str,
        mode: &str,
        name: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO accounts (id, mode, kind, name, created_at) VALUES ($1, $2, 'customer', $3, $4)",
        )
        .bind(id)
        .bind(mode)
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

    /// Grants of an account that still hold something (available or held).
    pub async fn live_grants(&mut self, account_id: &str) -> Result<Vec<GrantRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, amount, available, held, expires_at, created_at FROM grants \
             WHERE account_id = $1 AND (available > 0 OR held > 0)",
        )
        .bind(account_id)
        .fetch_all(&mut *self.inner)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// Inserts a transaction header unless its reference is taken; then reports the
    /// existing one. Concurrent inserts of one reference serialise on the unique index.
    pub async fn insert_transaction(&mut self, t: &NewTransaction<'_>) -> Result<Inserted> {
        let inserted = sqlx::query(
            "INSERT INTO ledger_transactions \
               (id, reference, fingerprint, kind, account_id, amount, actor, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (reference) DO NOTHING",
        )
        .bind(t.id)
        .bind(t.reference)
        .bind(t.fingerprint)
        .bind(t.kind)
        .bind(t.account_id)
        .bind(t.amount.nanos())
        .bind(t.actor)
        .bind(t.reason)
        .bind(t.created_at.micros())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Inserted::New);
        }
        let existing = self
            .transaction_by_reference(t.reference)
            .await?
            .ok_or_else(|| Error::internal("reference conflict without a row"))?;
        Ok(Inserted::Existing(existing))
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

    pub async fn postings_of(&mut self, transaction_id: &str) -> Result<Vec<PostingRow>> {
        postings_of(&mut *self.inner, transaction_id).await
    }

    pub async fn insert_posting(&mut self, transaction_id: &str, p: &PostingRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO postings (transaction_id, account_id, grant_id, bucket, amount) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(transaction_id)
        .bind(&p.account_id)
        .bind(p.grant_id.as_deref())
        .bind(&p.bucket)
        .bind(p.amount.nanos())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// The database's own word that a transaction balances, read back inside it.
    pub async fn posted_sum(&mut self, transaction_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM postings WHERE transaction_id = $1",
        )
        .bind(transaction_id)
        .fetch_one(&mut *self.inner)
        .await?)
    }

    pub async fn add_to_account(&mut self, id: &str, available: i64, held: i64) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET available = available + $1, held = held + $2 WHERE id = $3",
        )
        .bind(available)
        .bind(held)
        .bind(id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn add_to_grant(&mut self, id: &str, available: i64, held: i64) -> Result<()> {
        sqlx::query("UPDATE grants SET available = available + $1, held = held + $2 WHERE id = $3")
            .bind(available)
            .bind(held)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Inserts a grant with nothing in it; its postings fill it through `add_to_grant`.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_grant(
        &mut self,
        id: &str,
        account_id: &str,
        kind: &str,
        amount: Money,
        expires_at: Option<Timestamp>,
        created_at: Timestamp,
        transaction_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO grants (id, account_id, kind, amount, available, held, expires_at, created_at, transaction_id) \
             VALUES ($1, $2, $3, $4, 0, 0, $5, $6, $7)",
        )
        .bind(id)
        .bind(account_id)
        .bind(kind)
        .bind(amount.nanos())
        .bind(expires_at.map(Timestamp::micros))
        .bind(created_at.micros())
        .bind(transaction_id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn insert_hold(&mut self, h: &HoldRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO holds (id, account_id, amount, status, expires_at, created_at, hold_transaction_id) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6)",
        )
        .bind(&h.id)
        .bind(&h.account_id)
        .bind(h.amount.nanos())
        .bind(h.expires_at.micros())
        .bind(h.created_at.micros())
        .bind(&h.hold_transaction_id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn hold(&mut self, id: &str) -> Result<HoldRow> {
        let row = sqlx::query(HOLD_SELECT)
            .bind(id)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.map(|r| hold_from_row(&r))
            .transpose()?
            .ok_or(Error::NotFound("hold"))
    }

    /// Moves a pending hold to its final state. Returns false when it was not pending
    /// (someone settled it first); the caller then reads what happened.
    /// Records what an expired hold's late capture charged (from available), once.
    pub async fn mark_late_capture(&mut self, id: &str, actual: Money) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE holds SET captured_amount = $1 \
             WHERE id = $2 AND status = 'expired' AND captured_amount IS NULL",
        )
        .bind(actual.nanos())
        .bind(id)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn settle_hold(
        &mut self,
        id: &str,
        status: &str,
        settle_transaction_id: &str,
        captured_amount: Option<Money>,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE holds SET status = $1, settle_transaction_id = $2, captured_amount = $3 \
             WHERE id = $4 AND status = 'pending'",
        )
        .bind(status)
        .bind(settle_transaction_id)
        .bind(captured_amount.map(Money::nanos))
        .bind(id)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}
