//! The catalog migration: existing models, plans and usage are copied into both modes'
//! catalogs and keep pointing at what they were priced with. Runs on the backend that
//! `TALLY_TEST_DATABASE_URL` names.

use app::core::ledger::Mode;
use app::core::plans;
use app::core::testing::{execute, fresh_store_at};

#[tokio::test]
async fn existing_catalog_rows_are_copied_into_both_modes() {
    let db = fresh_store_at(8).await.unwrap();
    execute(
        &db,
        "INSERT INTO plans (id, name, created_at) VALUES ('pro', 'Pro', 1)",
    )
    .await
    .unwrap();
    for sql in [
        "INSERT INTO plan_versions (id, plan_id, version, terms, created_at) \
         VALUES ('plv_pro_1', 'pro', 1, '{\"markup_percent\": \"10.00\"}', 1)",
        "UPDATE models SET input_rate = 2000000000 WHERE id = 'gpt-5'",
        "INSERT INTO accounts (id, mode, kind, name, created_at) VALUES \
         ('acct_l', 'live', 'customer', 'L', 1), ('acct_t', 'test', 'customer', 'T', 1)",
        "INSERT INTO customers (id, mode, external_id, plan_id, account_id, created_at) VALUES \
         ('cus_l', 'live', 'l', 'pro', 'acct_l', 1), ('cus_t', 'test', 't', 'standard', 'acct_t', 1)",
        "INSERT INTO usage_events (id, mode, customer_id, request_id, model, outcome, batch, \
           input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost, \
           line_items, plan_version_id, tier, occurred_at, created_at) VALUES \
         ('evt_l', 'live', 'cus_l', 'r', 'gpt-5', 'succeeded', 0, 0, 0, 0, 0, 0, '[]', 'plv_pro_1', 0, 1, 1), \
         ('evt_t', 'test', 'cus_t', 'r', 'gpt-5', 'succeeded', 0, 0, 0, 0, 0, 0, '[]', 'plv_standard_1', 0, 1, 1)",
    ] {
        execute(&db, sql).await.unwrap();
    }
    db.store.migrate().await.unwrap();

    for mode in [Mode::Test, Mode::Live] {
        let models = plans::models(&db.store, mode).await.unwrap();
        assert_eq!(models.len(), 15, "{mode:?}");
        let gpt5 = plans::model(&db.store, mode, "gpt-5").await.unwrap();
        assert_eq!(gpt5.rates.input.to_string(), "2.000000000");
        assert_eq!(gpt5.version, 1);
        let pro = plans::plan(&db.store, mode, "pro").await.unwrap();
        assert_eq!(pro.terms.markup_percent.to_string(), "10.00");
        assert_eq!(plans::plans(&db.store, mode).await.unwrap().len(), 2);
    }
    // Each customer's plan is in its own mode; each event points at its mode's copies.
    let live = db.store.customer("cus_l").await.unwrap().unwrap();
    assert_eq!(
        plans::of_customer(&db.store, &live).await.unwrap().mode,
        Mode::Live
    );
    let evt = db.store.usage_event("evt_l").await.unwrap().unwrap();
    assert_eq!(evt.plan_version_id, "plv_pro_1_live");
    assert_eq!(evt.price_version_id.as_deref(), Some("mpv_live_gpt-5_1"));
    let evt = db.store.usage_event("evt_t").await.unwrap().unwrap();
    assert_eq!(evt.plan_version_id, "plv_standard_1");
    assert_eq!(evt.price_version_id.as_deref(), Some("mpv_test_gpt-5_1"));
    let (row, _) = plans::version(&db.store, "plv_pro_1_live").await.unwrap();
    assert_eq!(row.plan_id, "pro");
}
