//! The domain core: money, the ledger and the store. Compiled only with `ssr`; it knows
//! nothing of leptos or axum. Edges (REST handlers in `server/`, server functions in
//! `app/`) call into it and map its one [`error::Error`].

pub mod admin;
pub mod audit;
pub mod batch;
pub mod clock;
pub mod console;
pub mod currency;
pub mod customer_keys;
pub mod customers;
pub mod error;
pub mod fuzzing;
pub mod idempotency;
pub mod ids;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod metering;
pub mod meters;
pub mod money;
pub mod notify;
pub mod password_reset;
pub mod passwords;
pub mod payments;
pub mod plans;
pub mod portal;
pub mod pricing;
pub mod proxy;
pub mod reprice;
pub mod store;
pub mod subscriptions;
pub mod testing;
pub mod vocab;

use std::sync::Arc;

use clock::Clock;
use ledger::Ledger;
use payments::Payments;
use store::Store;

/// Everything the edges need, in one cheap `Clone` value: REST state and Leptos context
/// both carry it. A clone is one reference count: the edges clone it for every request
/// (each extractor and middleware takes the state by value), and cloning each part was a
/// profiled 15 % of the HTTP side's own CPU (docs/benchmarks.md, "The CPU budget").
#[derive(Clone)]
pub struct Core(Arc<Parts>);

/// What a [`Core`] holds; its fields are read through the core (`core.store`).
#[derive(Clone)]
pub struct Parts {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub ledger: Ledger,
    pub payments: Arc<Payments>,
    /// Group commit for metering's writes (usage events, holds, captures).
    pub(crate) batcher: batch::Batcher<metering::Op>,
    /// API keys recently authenticated (the REST edge reads through it).
    pub keys: Arc<keys::KeyCache>,
    /// Password attempts and reset links per email (portal and console).
    pub sign_in_limits: Arc<limits::SignInLimits>,
    /// Whether emails are sent (SMTP configured) and the portal's address for their links.
    pub mailing: Arc<notify::Mailing>,
    /// The server's recorder, which group commits and the edges record into.
    pub meters: meters::Meters,
}

impl std::ops::Deref for Core {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl Core {
    /// A core with simulated payments (the CLI, tests that do not pay).
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Core {
        Core::with_payments(store, clock, Payments::simulated("http://127.0.0.1:3000"))
    }

    /// A core that measures nothing (the CLI's commands, reports).
    pub fn with_payments(store: Store, clock: Arc<dyn Clock>, payments: Payments) -> Core {
        Core::measured(store, clock, payments, meters::Meters::default())
    }

    /// A core whose group commits (and whoever else reads `core.meters`) record into
    /// `meters`: a server's.
    pub fn measured(
        store: Store,
        clock: Arc<dyn Clock>,
        payments: Payments,
        meters: meters::Meters,
    ) -> Core {
        let ledger = Ledger::new(store.clone(), clock.clone());
        let batcher = batch::Batcher::start(store.clone(), clock.clone(), meters.clone());
        Core(Arc::new(Parts {
            store,
            clock,
            ledger,
            payments: Arc::new(payments),
            batcher,
            keys: Arc::default(),
            sign_in_limits: Arc::default(),
            mailing: Arc::default(),
            meters,
        }))
    }

    /// The same core with emails sent (or not) as `mailing` says.
    pub fn with_mailing(self, mailing: notify::Mailing) -> Core {
        let mut parts = Arc::unwrap_or_clone(self.0);
        parts.mailing = Arc::new(mailing);
        Core(Arc::new(parts))
    }
}
