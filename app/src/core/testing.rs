//! Test support: a fresh, migrated database per test, on the backend the environment
//! names. `TALLY_TEST_DATABASE_URL` unset means a new SQLite file in a temporary
//! directory; a `postgres://` URL there names a server on which each call creates its own
//! database. Used by the tests of every crate and by the benchmarks.

use sqlx::{Connection, Executor};

use super::error::{Error, Result};
use super::ids;
use super::store::Store;

/// A fresh store and what keeps it alive (the SQLite file's directory).
pub struct TestDb {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn fresh_store() -> Result<TestDb> {
    fresh_store_at(i64::MAX).await
}

/// A fresh store migrated up to and including migration `last`.
pub async fn fresh_store_at(last: i64) -> Result<TestDb> {
    match std::env::var("TALLY_TEST_DATABASE_URL") {
        Ok(admin) if !admin.is_empty() => {
            sqlx::any::install_default_drivers();
            let name = ids::new_id("t");
            let mut conn = sqlx::AnyConnection::connect(&admin).await?;
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await?;
            conn.close().await?;
            let url = match admin.rfind('/') {
                Some(i) => format!("{}/{name}", &admin[..i]),
                None => return Err(Error::internal("bad TALLY_TEST_DATABASE_URL")),
            };
            let store = Store::connect(&url).await?;
            store.migrate_to(last).await?;
            Ok(TestDb {
                store,
                url,
                _dir: None,
            })
        }
        _ => {
            let dir = tempfile::tempdir().map_err(|e| Error::internal(e.to_string()))?;
            let url = format!("sqlite://{}/tally.db", dir.path().display());
            let store = Store::connect(&url).await?;
            store.migrate_to(last).await?;
            Ok(TestDb {
                store,
                url,
                _dir: Some(dir),
            })
        }
    }
}

impl TestDb {
    /// The same database through a store of its own: another node (or process) sharing it.
    /// The first `TestDb` keeps the database alive.
    pub async fn another_store(&self) -> Result<TestDb> {
        Ok(TestDb {
            store: Store::connect(&self.url).await?,
            url: self.url.clone(),
            _dir: None,
        })
    }
}

/// Runs SQL on a test database over a connection of its own (to set up rows that the code
/// of this version would no longer write, such as those before a migration).
pub async fn execute(db: &TestDb, sql: &str) -> Result<()> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await?;
    conn.execute(sql).await?;
    conn.close().await?;
    Ok(())
}
