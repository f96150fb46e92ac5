//! The one-shot commands: `migrate`, `verify`, `demo`.

use std::process::ExitCode;
use std::sync::Arc;

use app::core::clock::{Clock, SystemClock};
use app::core::error::Result;
use app::core::ledger::{kind, Attribution, Credit, Debit, GrantKind, Mode, Operator};
use app::core::money::Money;
use app::core::store::LedgerTable;
use app::core::Core;

use crate::open_store;

pub async fn migrate(url: &str) -> Result<ExitCode> {
    let store = open_store(url).await?;
    println!("migrations applied ({})", store.dialect().name());
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(url: &str) -> Result<ExitCode> {
    let store = open_store(url).await?;
    let core = Core::new(store.clone(), Arc::new(SystemClock));
    let report = core.ledger.verify().await?;
    print!("{}", report.render());
    store.close().await;
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Seeds a few demo accounts with top-ups, a promotion, holds and usage, through the
/// ledger like any other client. Refuses a database that already has customers.
pub async fn demo(url: &str) -> Result<ExitCode> {
    let store = open_store(url).await?;
    let customers = store.count(LedgerTable::Accounts).await?;
    if customers > 12 {
        println!("the database already has data; demo not seeded");
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let core = Core::new(store.clone(), clock.clone());
    let ledger = &core.ledger;
    for (i, name) in ["Ada's Assistant", "Babbage Bots", "Curie Chat"]
        .iter()
        .enumerate()
    {
        let account = ledger.open_account(Mode::Test, name).await?;
        let topup = Money::from_cents(2_000 * (i as i64 + 1))?;
        ledger
            .credit(&Credit {
                account_id: account.id.clone(),
                amount: topup,
                grant_kind: GrantKind::Purchased,
                expires_at: None,
                source: Operator::StripeClearing,
                kind: kind::TOPUP,
                reference: format!("demo:topup:{}", account.id),
                attribution: Attribution::default(),
            })
            .await?;
        ledger
            .credit(&Credit {
                account_id: account.id.clone(),
                amount: Money::from_cents(500)?,
                grant_kind: GrantKind::Promotional,
                expires_at: Some(clock.now().plus_seconds(30 * 86_400)),
                source: Operator::Promotions,
                kind: kind::GRANT,
                reference: format!("demo:promo:{}", account.id),
                attribution: Attribution {
                    actor: Some("demo".into()),
                    reason: Some("welcome credits".into()),
                },
            })
            .await?;
        for n in 0..20i64 {
            // A hold for the worst case, captured at the actual cost.
            let hold = ledger
                .hold(
                    &account.id,
                    Money::from_nanos(60_000_000),
                    clock.now().plus_seconds(600),
                )
                .await?;
            ledger
                .capture(&hold.id, Money::from_nanos(3_612_000 + n * 1_000_000))
                .await?;
            ledger
                .debit(&Debit {
                    account_id: account.id.clone(),
                    amount: Money::from_nanos(1_250_000 + n * 10_000),
                    counter: Operator::Revenue,
                    kind: kind::USAGE,
                    reference: format!("demo:usage:{}:{n}", account.id),
                    attribution: Attribution::default(),
                })
                .await?;
        }
        println!("seeded {name} ({})", account.id);
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
