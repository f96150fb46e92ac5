//! The admin console's server functions through the real server: roles, audit entries,
//! ledger transactions, plan edits, webhook replay.

use app::core::admin::{self, Role};
use app::core::keys::Scope;
use app::core::ledger::Mode;
use serde_json::{json, Value};

use crate::helpers::{browser, server_fn, spawn_app, TestApp};

pub(crate) async fn staff_browser(app: &TestApp, email: &str, role: Role) -> reqwest::Client {
    admin::create_staff(&app.running.core, email, "a-long-password", role)
        .await
        .unwrap();
    let b = browser();
    let (status, body) = server_fn(
        app,
        &b,
        "admin_sign_in",
        &format!(
            "email={}&password=a-long-password",
            email.replace('@', "%40")
        ),
    )
    .await;
    assert!(status < 400, "{body}");
    b
}

async fn audit_count(app: &TestApp, target: &str) -> usize {
    app.db
        .store
        .audit_entries(Some(target), 100)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn only_staff_with_the_right_role_may_act() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "target", "5").await;
    let grant = format!("id={cus}&amount=1&reason=because");

    // Nobody, and a signed-in customer, are refused everything.
    let (status, _) = server_fn(&app, &browser(), "admin_overview", "").await;
    assert!(status >= 400);
    let customer = browser();
    let s = app
        .post(
            &key,
            &format!("/v1/customers/{cus}/portal_sessions"),
            json!({}),
        )
        .await;
    customer
        .get(s.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    for (name, body) in [
        ("admin_overview", ""),
        ("admin_grant", grant.as_str()),
        ("admin_customer", &format!("id={cus}")),
        ("admin_topups", ""),
        ("verify_ledger", ""),
        ("ledger_summary", ""),
    ] {
        let (status, _) = server_fn(&app, &customer, name, body).await;
        assert_eq!(status, 403, "a customer called {name}");
        let (status, _) = server_fn(&app, &browser(), name, body).await;
        assert_eq!(status, 403, "an anonymous visitor called {name}");
    }
    // A viewer reads (the ledger check included) but does not act.
    let viewer = staff_browser(&app, "viewer@example.com", Role::Viewer).await;
    let (status, _) = server_fn(&app, &viewer, "admin_customer", &format!("id={cus}")).await;
    assert_eq!(status, 200);
    let (status, report) = server_fn(&app, &viewer, "verify_ledger", "").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["clean"], true, "{report}");
    for (name, body) in [
        ("admin_grant", grant.clone()),
        ("admin_correct", format!("id={cus}&amount=-1&reason=x")),
        ("admin_suspend", format!("id={cus}&suspend=true&reason=x")),
        (
            "admin_edit_plan",
            "id=standard&changes=%7B%7D&reason=x".to_string(),
        ),
        ("admin_reconcile_now", String::new()),
    ] {
        let (status, _) = server_fn(&app, &viewer, name, &body).await;
        assert_eq!(status, 403, "a viewer called {name}");
    }
    assert_eq!(audit_count(&app, &cus).await, 0);
    let bal = app.get(&key, &format!("/v1/customers/{cus}/balance")).await;
    assert_eq!(bal.body["available"], "5.000000000");
}

#[tokio::test]
async fn every_action_leaves_one_audit_entry_and_the_right_transaction() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "target", "5").await;
    let admin = staff_browser(&app, "boss@example.com", Role::Admin).await;
    let kinds = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["kind"].as_str().unwrap().to_string())
            .collect()
    };

    let (status, body) = server_fn(
        &app,
        &admin,
        "admin_grant",
        &format!("id={cus}&amount=2.50&expires_on=2099-01-01&reason=goodwill"),
    )
    .await;
    assert!(status < 400, "{body}");
    assert_eq!(audit_count(&app, &cus).await, 1);
    let t = app
        .get(&key, &format!("/v1/customers/{cus}/transactions"))
        .await;
    assert_eq!(kinds(&t.body)[0], "grant");
    assert_eq!(t.body["data"][0]["reason"], "goodwill");

    // The console's form sends an empty date when none is chosen.
    let (status, body) = server_fn(
        &app,
        &admin,
        "admin_grant",
        &format!("id={cus}&amount=0.75&expires_on=&reason=no+expiry"),
    )
    .await;
    assert!(status < 400, "{body}");
    let (status, body) = server_fn(
        &app,
        &admin,
        "admin_correct",
        &format!("id={cus}&amount=-0.75&reason=undo"),
    )
    .await;
    assert!(status < 400, "{body}");

    let (status, _) = server_fn(
        &app,
        &admin,
        "admin_correct",
        &format!("id={cus}&amount=-1.25&reason=double+charge"),
    )
    .await;
    assert!(status < 400);
    assert_eq!(audit_count(&app, &cus).await, 4);
    let t = app
        .get(&key, &format!("/v1/customers/{cus}/transactions"))
        .await;
    assert_eq!(kinds(&t.body)[0], "adjustment");
    assert_eq!(t.body["data"][0]["amount"], "-1.250000000");
    assert_eq!(
        app.get(&key, &format!("/v1/customers/{cus}/balance"))
            .await
            .body["available"],
        "6.250000000"
    );

    // A correction without a reason is refused and leaves nothing.
    let (status, _) = server_fn(
        &app,
        &admin,
        "admin_correct",
        &format!("id={cus}&amount=-1&reason=+"),
    )
    .await;
    assert!(status >= 400);
    assert_eq!(audit_count(&app, &cus).await, 4);

    let (status, _) = server_fn(
        &app,
        &admin,
        "admin_suspend",
        &format!("id={cus}&suspend=true&reason=fraud+review"),
    )
    .await;
    assert!(status < 400);
    assert_eq!(
        app.get(&key, &format!("/v1/customers/{cus}")).await.body["status"],
        "suspended"
    );
    let (status, _) = server_fn(
        &app,
        &admin,
        "admin_suspend",
        &format!("id={cus}&suspend=false&reason=cleared"),
    )
    .await;
    assert!(status < 400);
    assert_eq!(audit_count(&app, &cus).await, 6);

    let entries = app.db.store.audit_entries(Some(&cus), 10).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["resume", "suspend", "correct", "correct", "grant", "grant"]
    );
    assert!(entries.iter().all(|e| e.actor == "staff:boss@example.com"));
    assert_eq!(entries[1].before.as_deref(), Some("active"));
    assert_eq!(entries[1].after.as_deref(), Some("suspended"));
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_price_edit_changes_new_usage_and_not_old() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "target", "50").await;
    let admin = staff_browser(&app, "boss@example.com", Role::Admin).await;
    let ev = |rid: &str| json!({"customer": cus, "model": "gpt-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": rid});
    let old = app.post(&key, "/v1/usage", ev("before")).await;
    assert_eq!(old.body["cost"], "1.250000000");
    let (status, body) = server_fn(
        &app,
        &admin,
        "admin_edit_plan",
        "id=standard&changes=%7B%22markup_percent%22%3A%2210%22%7D&reason=new+prices",
    )
    .await;
    assert!(status < 400, "{body}");
    let new = app.post(&key, "/v1/usage", ev("after")).await;
    assert_eq!(new.body["cost"], "1.375000000");
    let again = app
        .get(
            &key,
            &format!("/v1/usage/{}", old.body["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(again.body["cost"], "1.250000000");
    assert_eq!(audit_count(&app, "standard").await, 1);
}

#[tokio::test]
async fn a_failed_webhook_is_replayed_from_the_console() {
    let app = spawn_app().await;
    let admin = staff_browser(&app, "boss@example.com", Role::Admin).await;
    // An event nobody can apply yet: a refund for an unknown payment fails and waits.
    let payload = json!({"id": "evt_console_1", "object": "event", "type": "charge.refunded", "created": 1, "livemode": false,
        "data": {"object": {"id": "ch_1", "payment_intent": "pi_unknown", "amount_refunded": 100}}}).to_string();
    let secret = app
        .running
        .core
        .payments
        .webhook_secret(&app.db.store)
        .await
        .unwrap();
    let header = stripe_webhook::Webhook::generate_test_header(&payload, secret.expose(), None);
    let r = app
        .http
        .post(format!("{}/webhooks/stripe", app.base))
        .header("stripe-signature", header)
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut status = String::new();
    for _ in 0..50 {
        status = app
            .db
            .store
            .webhook_event("evt_console_1")
            .await
            .unwrap()
            .unwrap()
            .status;
        if status == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "failed");
    let (code, list) = server_fn(&app, &admin, "admin_webhooks", "status=failed").await;
    assert_eq!(code, 200);
    assert_eq!(list[0]["id"], "evt_console_1");
    assert!(list[0]["error"]
        .as_str()
        .unwrap()
        .contains("no fulfilled top-up"));
    let (code, body) = server_fn(
        &app,
        &admin,
        "admin_replay",
        "id=evt_console_1&reason=retry+after+fix",
    )
    .await;
    assert!(code < 400, "{body}");
    assert_eq!(audit_count(&app, "evt_console_1").await, 1);
    let row = app
        .db
        .store
        .webhook_event("evt_console_1")
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.status == "pending" || row.status == "processing" || row.status == "failed",
        "{row:?}"
    );
}
