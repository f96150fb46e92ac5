//! The store: the only place with SQL. One implementation over sqlx's `Any` driver serves
//! SQLite and PostgreSQL with the same statements (`$1` placeholders work on both); the few
//! spots where the dialects differ branch on [`Dialect`]. Each backend has its own
//! migrations in `migrations/<backend>/`, embedded in the binary.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};

use super::error::{Error, Result};

mod admin;
mod api_keys;
mod bulk;
mod catalog;
mod customers;
mod idempotency;
mod leader;
mod ledger;
mod notify;
mod payments;
mod portal;
mod proxy;
mod subscriptions;
mod usage;

pub use admin::{AdminRow, AuditRow, CustomerFilters, OperatorFigures};
pub use api_keys::ApiKeyRow;
pub use catalog::{PlanRow, PlanVersionRow};
pub use customers::CustomerRow;
pub use idempotency::IdempotencyRow;
pub use leader::{Job, Leadership};
pub use ledger::{
    AccountRow, GrantRow, HoldRow, LedgerTable, NewGrant, PostingLine, TransactionRow,
};
pub use notify::{Attempt, DeliveryRow, EmailRow, EndpointRow, EventRow, QueueLags};
pub use payments::{AutoTopupRow, AutoTopupSettings, ReconciliationRow, TopupRow, WebhookEventRow};
pub use portal::{DailyUsage, KeyDaySpend, UsageDay};
pub use proxy::{ConversationRow, CustomerKeyRow, DriftRow, ProxyRequestRow, ProxyStatus};
pub use subscriptions::{InvoiceRow, PlanPriceRow, SubscriptionRow};
pub use usage::{AuthorizationRow, UsageEventRow, UsageFilter};

/// Writers on PostgreSQL. Fewer writers make bigger batches, so fewer statements per
/// event: on 2 cores, where PostgreSQL's per-statement CPU is the limit, 2 writers recorded
/// single events fastest and 4 batches of 1,000 (8 was slower at both; see
/// docs/benchmarks.md). Each writer has its own connection in the writer pool, which the store sizes;
/// the group commit (`core::batch`) starts that many writers.
pub const POSTGRES_WRITERS: usize = 4;

/// How many connections a node's pools may open, when not the defaults (`tally serve
/// --db-readers/--db-writers`). Readers: 8 on SQLite, 16 on PostgreSQL. Writers: SQLite
/// has exactly one; on PostgreSQL one per group-commit writer plus four for writes outside
/// it ([`POSTGRES_WRITERS`] + 4), and never fewer than [`POSTGRES_WRITERS`] + 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolSizes {
    pub readers: Option<u32>,
    pub writers: Option<u32>,
}

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
    written: Arc<Written>,
}

/// What this process has written since it started, counted as it commits (for
/// `/metrics`, which must not count rows in growing tables at every scrape).
#[derive(Debug, Default)]
pub struct Written {
    ledger_transactions: AtomicU64,
    webhook_events_processed: AtomicU64,
}

impl Written {
    /// Ledger transactions committed.
    pub fn ledger_transactions(&self) -> u64 {
        self.ledger_transactions.load(Ordering::Relaxed)
    }

    /// Stripe events the inbox applied.
    pub fn webhook_events_processed(&self) -> u64 {
        self.webhook_events_processed.load(Ordering::Relaxed)
    }
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
            migrations!("sqlite": 1 "0001_ledger", 2 "0002_metering", 3 "0003_price_book", 4 "0004_payments", 5 "0005_portal", 6 "0006_admin", 7 "0007_auto_topup", 8 "0008_late_capture_refunds", 9 "0009_catalog_per_mode", 10 "0010_proxy", 11 "0011_cache_write_1h", 12 "0012_provider_drift", 13 "0013_subscriptions", 14 "0014_notifications", 15 "0015_idempotency_expiry")
        }
        Dialect::Postgres => {
            migrations!("postgres": 1 "0001_ledger", 2 "0002_metering", 3 "0003_price_book", 4 "0004_payments", 5 "0005_portal", 6 "0006_admin", 7 "0007_auto_topup", 8 "0008_late_capture_refunds", 9 "0009_catalog_per_mode", 10 "0010_proxy", 11 "0011_cache_write_1h", 12 "0012_provider_drift", 13 "0013_subscriptions", 14 "0014_notifications", 15 "0015_idempotency_expiry")
        }
    };
    let mut migrator = Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    };
    // A rolling deploy: a newer version has migrated the database while this one still
    // runs (or restarts). Its migrations are left alone instead of refusing to start; they
    // are additive (new tables, new columns nullable or with a default), so this
    // version's statements still work beside them.
    migrator.set_ignore_missing(true);
    migrator
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
async fn sqlite_pool(url: &str, role: SqliteRole, readers: u32) -> Result<AnyPool> {
    const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                           PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                           PRAGMA temp_store = MEMORY;";
    let (connections, role_pragmas) = match role {
        SqliteRole::Writer => (
            1,
            "PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 10000;",
        ),
        SqliteRole::Reader => (readers, "PRAGMA cache_size = -16384;"),
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
        Store::connect_with(url, PoolSizes::default()).await
    }

    /// [`Store::connect`] with pools of the given sizes.
    pub async fn connect_with(url: &str, sizes: PoolSizes) -> Result<Store> {
        if sizes.readers == Some(0) {
            return Err(Error::invalid(
                "db_readers",
                "a node needs at least one reader",
            ));
        }
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
            if sizes.writers.is_some_and(|w| w != 1) {
                return Err(Error::invalid(
                    "db_writers",
                    "SQLite has exactly one writer connection",
                ));
            }
            let url = format!("sqlite://{path}?mode=rwc");
            let readers = sizes.readers.unwrap_or(8);
            let writer = sqlite_pool(&url, SqliteRole::Writer, readers).await?;
            let reader = sqlite_pool(&url, SqliteRole::Reader, readers).await?;
            Ok(Store {
                writer,
                reader,
                dialect: Dialect::Sqlite,
                written: Arc::default(),
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
            let least = POSTGRES_WRITERS as u32 + 1;
            let writers = sizes.writers.unwrap_or(POSTGRES_WRITERS as u32 + 4);
            if writers < least {
                return Err(Error::invalid(
                    "db_writers",
                    format!("PostgreSQL needs at least {least} writer connections (one per group-commit writer, and one more)"),
                ));
            }
            let writer = pool(writers).await?;
            let reader = pool(sizes.readers.unwrap_or(16)).await?;
            Ok(Store {
                writer,
                reader,
                dialect: Dialect::Postgres,
                written: Arc::default(),
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

    /// The most connections each pool may open: (readers, writers).
    pub fn pool_sizes(&self) -> (u32, u32) {
        (
            self.reader.options().get_max_connections(),
            self.writer.options().get_max_connections(),
        )
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
            written: self.written.clone(),
            transactions: 0,
            transactions_at_savepoint: 0,
        })
    }

    /// What this process has written since it started.
    pub fn written(&self) -> &Written {
        &self.written
    }
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back and leaves no trace.
pub struct Tx {
    inner: sqlx::Transaction<'static, sqlx::Any>,
    dialect: Dialect,
    written: Arc<Written>,
    /// Ledger transactions inserted, counted into `written` at commit.
    transactions: u64,
    transactions_at_savepoint: u64,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        self.written
            .ledger_transactions
            .fetch_add(self.transactions, Ordering::Relaxed);
        Ok(())
    }

    /// Marks a point this transaction can return to (one job of a group commit).
    pub async fn savepoint(&mut self) -> Result<()> {
        self.inner.execute("SAVEPOINT job").await?;
        self.transactions_at_savepoint = self.transactions;
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
        self.transactions = self.transactions_at_savepoint;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.inner.rollback().await?;
        Ok(())
    }
}
