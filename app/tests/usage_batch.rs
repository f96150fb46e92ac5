//! The group commit's set-based usage path, on whichever database
//! `TALLY_TEST_DATABASE_URL` names: events queued together come out exactly as if each had
//! been recorded alone (duplicates, refusals, an account whose grant is due to expire),
//! and a set-based write that fails falls back to one event at a time without losing any.

use std::sync::Arc;

use app::core::clock::{ManualClock, Timestamp};
use app::core::customers::{self, NewCustomer};
use app::core::error::Error;
use app::core::ledger::{Attribution, Credit, Debit, GrantKind, Kind, Mode, Operator};
use app::core::metering::{self, Recorded, UsageInput};
use app::core::money::Money;
use app::core::pricing::{Outcome, Tokens};
use app::core::testing::{fresh_store, TestDb};
use app::core::Core;

const START: Timestamp = Timestamp::from_micros(1_790_000_000_000_000);

async fn setup() -> (TestDb, Arc<ManualClock>, Core) {
    let db = fresh_store().await.expect("test database");
    let clock = ManualClock::new(START);
    let core = Core::new(db.store.clone(), clock.clone());
    (db, clock, core)
}

async fn customer(core: &Core, name: &str, dollars: i64) -> (String, String) {
    let c = customers::create(
        core,
        Mode::Test,
        &NewCustomer {
            external_id: name.into(),
            ..NewCustomer::default()
        },
    )
    .await
    .unwrap();
    core.ledger
        .credit(&Credit::topup(
            c.account_id.clone(),
            Money::from_cents(dollars * 100).unwrap(),
            format!("topup:{name}"),
        ))
        .await
        .unwrap();
    (c.id, c.account_id)
}

fn usage(customer: &str, model: &str, request_id: &str) -> UsageInput {
    UsageInput {
        customer: customer.into(),
        model: model.into(),
        tokens: Tokens {
            input: 1_000,
            output: 500,
            cache_write: 0,
            cache_read: 0,
            cache_write_1h: 0,
        },
        batch: false,
        outcome: Outcome::Succeeded,
        request_id: request_id.into(),
        occurred_at: None,
        metadata: None,
    }
}

/// Submits every input at once, so that they queue together on the writers.
async fn record_together(core: &Core, inputs: &[UsageInput]) -> Vec<Result<Recorded, Error>> {
    futures::future::join_all(
        inputs
            .iter()
            .map(|i| metering::record_usage(core, Mode::Test, i)),
    )
    .await
}

async fn assert_clean(core: &Core) {
    let report = core.ledger.verify().await.unwrap();
    assert!(report.is_clean(), "{}", report.render());
}

#[tokio::test]
async fn events_queued_together_are_recorded_as_if_one_at_a_time() {
    let (_db, clock, core) = setup().await;
    let (a, a_account) = customer(&core, "a", 10).await;
    let (b, _) = customer(&core, "b", 10).await;
    let (c, c_account) = customer(&core, "c", 10).await;
    // c also has a promotional grant that is due to expire when the events arrive.
    core.ledger
        .credit(&Credit {
            account_id: c_account.clone(),
            amount: Money::from_cents(500).unwrap(),
            grant_kind: GrantKind::Promotional,
            expires_at: Some(START.plus_seconds(60)),
            source: Operator::Promotions,
            kind: Kind::Grant,
            reference: "promo:c".into(),
            attribution: Attribution::default(),
        })
        .await
        .unwrap();
    clock.advance_seconds(120);

    let model = "claude-sonnet-4-5";
    let results = record_together(
        &core,
        &[
            usage(&a, model, "a-1"),
            usage(&a, model, "a-2"),
            usage(&a, model, "a-1"),
            usage(&b, "no-such-model", "b-1"),
            usage("cus_nobody", model, "x-1"),
            usage(&c, model, "c-1"),
            usage(&b, model, "b-2"),
        ],
    )
    .await;

    let ok = |i: usize| results[i].as_ref().expect("recorded");
    // The repeated request id is one event, created once.
    assert_eq!(ok(0).event.id, ok(2).event.id);
    assert_eq!(
        [ok(0).created, ok(2).created]
            .iter()
            .filter(|c| **c)
            .count(),
        1
    );
    assert!(ok(1).created && ok(5).created && ok(6).created);
    assert!(matches!(
        &results[3],
        Err(Error::Invalid { code, .. }) if *code == "unknown_model"
    ));
    assert!(matches!(&results[4], Err(Error::NotFound("customer"))));

    // Every created event was charged its price, and the balances add up.
    let cost = ok(1).event.cost;
    assert!(cost.is_positive());
    assert_eq!(ok(0).event.cost, cost);
    let a_now = core.ledger.account(&a_account).await.unwrap().available;
    assert_eq!(
        a_now,
        Money::from_cents(1000)
            .unwrap()
            .checked_sub(cost)
            .unwrap()
            .checked_sub(cost)
            .unwrap()
    );
    // c's promotion expired first (its expiry transaction exists), then the event was
    // charged against the top-up.
    let c_now = core.ledger.account(&c_account).await.unwrap().available;
    assert_eq!(
        c_now,
        Money::from_cents(1000).unwrap().checked_sub(cost).unwrap()
    );
    assert_eq!(ok(5).balance, c_now);
    let listed = metering::list_usage(
        &core,
        &app::core::store::UsageFilter {
            mode: "test".into(),
            conversation: None,
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 4);
    assert_clean(&core).await;

    // Sent again later, each is answered with the original and charged nothing more.
    let again = record_together(&core, &[usage(&a, model, "a-2"), usage(&c, model, "c-1")]).await;
    for (r, original) in again.iter().zip([ok(1), ok(5)]) {
        let r = r.as_ref().unwrap();
        assert!(!r.created);
        assert_eq!(r.event.id, original.event.id);
    }
    assert_eq!(
        core.ledger.account(&a_account).await.unwrap().available,
        a_now
    );
    assert_clean(&core).await;
}

#[tokio::test]
async fn a_failing_set_based_write_falls_back_to_one_event_at_a_time() {
    let (_db, _clock, core) = setup().await;
    let (a, a_account) = customer(&core, "a", 10).await;
    let (b, _) = customer(&core, "b", 10).await;
    // A ledger transaction already holds the reference a usage event would take (it
    // cannot happen through Tally; it stands for any statement that fails). The batch's
    // multi-row insert then fails as a whole, and every event is recorded one at a time:
    // the clashing one is refused, the others are recorded.
    core.ledger
        .debit(&Debit {
            account_id: a_account.clone(),
            amount: Money::from_nanos(1),
            counter: Operator::Revenue,
            kind: Kind::Adjustment,
            reference: format!("usage:{a}:clash"),
            attribution: Attribution::default(),
        })
        .await
        .unwrap();
    let model = "claude-sonnet-4-5";
    let inputs: Vec<UsageInput> = (0..20)
        .map(|i| usage(if i % 2 == 0 { &a } else { &b }, model, &format!("r-{i}")))
        .chain([usage(&a, model, "clash")])
        .collect();
    let results = record_together(&core, &inputs).await;
    for r in &results[..20] {
        assert!(r.as_ref().expect("recorded").created);
    }
    assert!(matches!(
        &results[20],
        Err(Error::Conflict { code, .. }) if *code == "reference_reused"
    ));
    let listed = metering::list_usage(
        &core,
        &app::core::store::UsageFilter {
            mode: "test".into(),
            conversation: None,
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 20);
    assert_clean(&core).await;
}

#[tokio::test]
async fn the_batch_sum_check_names_unbalanced_and_empty_transactions() {
    use app::core::store::TransactionRow;
    use app::core::vocab::{Bucket, Posting};
    let (_db, _clock, core) = setup().await;
    let (_, account) = customer(&core, "a", 10).await;
    let revenue = Operator::Revenue.account_id(Mode::Test);
    let header = |id: &str| TransactionRow {
        id: id.into(),
        reference: format!("test:{id}"),
        fingerprint: "f".into(),
        kind: Kind::Adjustment,
        account_id: account.clone(),
        amount: Money::from_nanos(-5),
        actor: None,
        reason: None,
        created_at: START,
    };
    let posting = |account: &str, nanos: i64| Posting {
        account_id: account.into(),
        grant_id: None,
        bucket: Bucket::Available,
        amount: Money::from_nanos(nanos),
    };
    // Written by hand, inside a transaction that is never committed: nothing in Tally
    // writes such postings, which is what the check is there to prove.
    let mut tx = core.store.begin().await.unwrap();
    tx.insert_transactions(&[header("txn_ok"), header("txn_bad"), header("txn_empty")])
        .await
        .unwrap();
    tx.insert_postings(&[
        ("txn_ok".into(), posting(&account, -5)),
        ("txn_ok".into(), posting(&revenue, 5)),
        ("txn_bad".into(), posting(&account, -5)),
        ("txn_bad".into(), posting(&revenue, 4)),
    ])
    .await
    .unwrap();
    assert!(tx.unbalanced_among(&["txn_ok"]).await.unwrap().is_empty());
    assert_eq!(
        tx.unbalanced_among(&["txn_ok", "txn_bad"]).await.unwrap(),
        vec!["txn_bad".to_string()]
    );
    assert_eq!(
        tx.unbalanced_among(&["txn_ok", "txn_empty"]).await.unwrap(),
        vec!["1 transactions without postings".to_string()]
    );
    tx.rollback().await.unwrap();
    assert_clean(&core).await;
}
