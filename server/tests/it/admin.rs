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
        "mode=test&id=standard&changes=%7B%22markup_percent%22%3A%2210%22%7D&reason=new+prices",
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
    assert_eq!(audit_count(&app, "test:standard").await, 1);
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
    use app::core::vocab::InboxStatus;
    let mut status = InboxStatus::Pending;
    for _ in 0..50 {
        status = app
            .db
            .store
            .webhook_event("evt_console_1")
            .await
            .unwrap()
            .unwrap()
            .status;
        if status == InboxStatus::Failed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, InboxStatus::Failed);
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
        matches!(
            row.status,
            InboxStatus::Pending | InboxStatus::Processing | InboxStatus::Failed
        ),
        "{row:?}"
    );
}

#[tokio::test]
async fn a_list_price_edit_is_previewed_audited_and_applies_to_new_usage_only() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "target", "50").await;
    let admin = staff_browser(&app, "boss@example.com", Role::Admin).await;
    let viewer = staff_browser(&app, "viewer@example.com", Role::Viewer).await;
    let ev = |rid: &str| json!({"customer": cus, "model": "gpt-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": rid});
    let old = app.post(&key, "/v1/usage", ev("before")).await;
    assert_eq!(old.body["cost"], "1.250000000");

    // gpt-5 input from $1.25 to $2 per million: the preview shows both, saves nothing.
    // The test catalog: the customer is a test-mode one.
    let form = "mode=test&model=gpt-5&input_rate=2&output_rate=10&cache_write_rate=0&cache_read_rate=0.125&batch_discount=50";
    let (status, text) = server_fn(
        &app,
        &viewer,
        "admin_price_preview",
        &format!("{form}&input=1000000&output=0"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("$1.25") && text.contains("$2.00"), "{text}");
    let page = viewer
        .get(format!(
            "{}/admin/prices?{form}&input=1000000&output=0",
            app.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&text),
        "the page shows the same preview without JavaScript"
    );
    assert_eq!(
        app.post(&key, "/v1/usage", ev("still-old")).await.body["cost"],
        "1.250000000"
    );

    // A viewer may not save; an admin must give a reason; then it applies from now on.
    let (status, _) = server_fn(
        &app,
        &viewer,
        "admin_edit_price",
        &format!("{form}&reason=x"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = server_fn(&app, &admin, "admin_edit_price", &format!("{form}&reason=")).await;
    assert_eq!(status, 400);
    let (status, _) = server_fn(
        &app,
        &admin,
        "admin_edit_price",
        "mode=test&model=gpt-5&input_rate=-1&output_rate=10&cache_write_rate=0&cache_read_rate=0&batch_discount=50&reason=x",
    )
    .await;
    assert_eq!(status, 400, "a negative rate is refused");
    let (status, body) = server_fn(
        &app,
        &admin,
        "admin_edit_price",
        &format!("{form}&reason=provider+raised+prices"),
    )
    .await;
    assert!(status < 400, "{body}");
    let new = app.post(&key, "/v1/usage", ev("after")).await;
    assert_eq!(new.body["cost"], "2.000000000");
    let again = app
        .get(
            &key,
            &format!("/v1/usage/{}", old.body["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        again.body["cost"], "1.250000000",
        "recorded usage keeps its price"
    );
    let entries = app
        .db
        .store
        .audit_entries(Some("test:gpt-5"), 10)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, "edit_price");
    assert_eq!(entries[0].reason, "provider raised prices");
    assert!(entries[0]
        .before
        .as_deref()
        .unwrap()
        .starts_with("v1 input 1.250000000"));
    assert!(entries[0]
        .after
        .as_deref()
        .unwrap()
        .starts_with("v2 input 2.000000000"));
    // The events name the price version they were priced with.
    assert_ne!(old.body["price_version"], new.body["price_version"]);
    // The live price book did not move.
    let live = app.key(Mode::Live, Scope::Read).await;
    let models = app.get(&live, "/v1/models").await;
    let gpt5 = models.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "gpt-5")
        .unwrap()
        .clone();
    assert_eq!(
        (gpt5["input"].as_str(), gpt5["version"].as_i64()),
        (Some("1.250000000"), Some(1))
    );
    let history = viewer
        .get(format!("{}/admin/prices?mode=test", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        history.contains("v2") && history.contains("input 2.00 "),
        "{history}"
    );
    app.assert_ledger_clean().await;
}

/// `pairs` as a form or a query encodes them.
fn encoded(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_string()
}

/// The value of the hidden `changes` field the preview leaves for saving.
fn previewed_changes(html: &str) -> String {
    let start = html
        .find(r#"name="changes" value=""#)
        .expect("a change to save")
        + 22;
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn a_plan_is_edited_in_a_form_previewed_before_it_is_saved_and_versions_are_listed() {
    let app = spawn_app().await;
    let viewer = staff_browser(&app, "viewer@example.com", Role::Viewer).await;
    let page = |pairs: &[(&str, &str)]| {
        let req = viewer.get(format!("{}/admin/plans?{}", app.base, encoded(pairs)));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let terms = || async {
        app::core::plans::plan(&app.db.store, Mode::Live, "standard")
            .await
            .unwrap()
            .terms
    };
    let before = terms().await;
    // The editor starts from the terms in force.
    let html = page(&[]).await;
    assert!(
        html.contains(r#"name="markup_percent" value="0.00""#),
        "{html}"
    );
    assert!(html.contains(r#"name="min_topup" value="1.00""#), "{html}");

    // The form as a person fills it in: 10% markup, a tier, a daily cap, two packs, and
    // failed requests free. 10,000 input + 2,000 output tokens of claude-sonnet-4-5:
    // $0.03 + $0.03 = $0.06, and $0.066 with the markup.
    let form = [
        ("plan", "standard"),
        ("form", "1"),
        ("markup_percent", "10"),
        ("tier_from", "1,000,000"),
        ("tier_discount", "5%"),
        ("tier_from", ""),
        ("tier_discount", ""),
        ("recurring_fee", "0"),
        ("included_credits", "0.00"),
        ("grace_days", "3"),
        ("daily_spend_cap", "25"),
        ("monthly_spend_cap", ""),
        ("max_request_cost", ""),
        ("low_balance_threshold", "0"),
        ("topup_packs", "10, 25"),
        ("min_topup", "1.00"),
        ("max_topup", "10000.00"),
        ("failed_request_policy", "charge_nothing"),
        ("model", "claude-sonnet-4-5"),
        ("input", "10000"),
        ("output", "2000"),
    ];
    let html = page(&form).await;
    assert!(
        html.contains("costs $0.06 under version 1 (in force) and $0.066 with these changes"),
        "{html}"
    );
    // Only what differs is listed and saved: not the fields sent unchanged.
    for term in [
        "markup_percent",
        "tiers",
        "daily_spend_cap",
        "topup_packs",
        "failed_request_policy",
    ] {
        assert!(
            html.contains(&format!("<td><code>{term}</code></td>")),
            "{term}: {html}"
        );
    }
    for same in ["grace_days", "min_topup", "rollover", "recurring_fee"] {
        assert!(
            !html.contains(&format!("<td><code>{same}</code></td>")),
            "{same}"
        );
    }
    assert!(
        html.contains("<td>none</td><td>from 1000000 tokens: 5.00% off</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td>10.000000000, 25.000000000</td>"),
        "{html}"
    );
    assert!(html.contains("Save as version 2, in force now"), "{html}");
    let changes = previewed_changes(&html);
    assert_eq!(terms().await, before, "a preview saves nothing");

    // What is not a value is named, and the form keeps what was typed.
    for (field, value, says) in [
        (
            "markup_percent",
            "ten",
            "Markup: a percentage like 15 or 12.5.",
        ),
        ("tier_from", "many", "Tier 1: from a whole number of tokens"),
        (
            "daily_spend_cap",
            "-3",
            "Daily spend cap: an amount like 12.50, or empty",
        ),
        (
            "topup_packs",
            "10, lots",
            "Top-up packs: an amount like 12.50",
        ),
        (
            "failed_request_policy",
            "sometimes",
            "Failed requests: charge_input",
        ),
    ] {
        let mut bad: Vec<(&str, &str)> =
            form.iter().filter(|(k, _)| *k != field).copied().collect();
        bad.push((field, value));
        let html = page(&bad).await;
        assert!(html.contains(says), "{field}: {html}");
        assert!(!html.contains("Save as version"), "{field}");
    }
    // Rules over the terms as a whole are the core's: tiers must rise.
    let mut falling: Vec<(&str, &str)> = form.to_vec();
    falling.extend([("tier_from", "500"), ("tier_discount", "10")]);
    let html = page(&falling).await;
    assert!(
        html.contains("tiers must be in increasing from_tokens order"),
        "{html}"
    );
    assert!(
        html.contains(r#"value="500""#),
        "the typed row is kept: {html}"
    );

    // A viewer may preview but not save; an admin saves the previewed change.
    let body = format!(
        "mode=live&id=standard&{}",
        encoded(&[("changes", &changes), ("reason", "margin")])
    );
    let (status, _) = server_fn(&app, &viewer, "admin_edit_plan", &body).await;
    assert_eq!(status, 403);
    let admin = staff_browser(&app, "boss@example.com", Role::Admin).await;
    let (status, body) = server_fn(&app, &admin, "admin_edit_plan", &body).await;
    assert!(status < 400, "{body}");
    let after = terms().await;
    assert_eq!(after.markup_percent.to_string(), "10.00");
    assert_eq!(
        after
            .tiers
            .iter()
            .map(|t| (t.from_tokens, t.discount_percent.to_string()))
            .collect::<Vec<_>>(),
        vec![(1_000_000, "5.00".to_string())]
    );
    assert_eq!(
        after.daily_spend_cap.map(|m| m.to_string()).as_deref(),
        Some("25.000000000")
    );
    assert_eq!(
        after
            .topup_packs
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>(),
        ["10.000000000", "25.000000000"]
    );
    assert_eq!(
        serde_json::to_value(after.failed_request_policy).unwrap(),
        "charge_nothing"
    );
    assert_eq!(
        (
            after.grace_days,
            after.min_topup,
            after.rollover,
            &after.rates
        ),
        (
            before.grace_days,
            before.min_topup,
            before.rollover,
            &before.rates
        ),
        "the rest is as it was"
    );

    // The same form again changes nothing; the page lists both versions and fills the
    // editor from the new one.
    let html = page(&form).await;
    assert!(html.contains("nothing to save"), "{html}");
    let html = page(&[]).await;
    assert!(html.contains("History (2 versions)"), "{html}");
    assert!(
        html.contains(r#"name="markup_percent" value="10.00""#),
        "{html}"
    );
    assert!(
        html.contains(r#"name="tier_from" aria-label="Tier 1: from tokens" value="1000000""#),
        "{html}"
    );
    let entries = app
        .db
        .store
        .audit_entries(Some("live:standard"), 10)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].after.as_deref().unwrap().starts_with("v2 "));
}

#[tokio::test]
async fn api_keys_are_created_shown_once_and_revoked_from_the_console() {
    let app = spawn_app().await;
    let admin = staff_browser(&app, "boss@example.com", Role::Admin).await;
    let viewer = staff_browser(&app, "viewer@example.com", Role::Viewer).await;
    let (status, _) = server_fn(
        &app,
        &viewer,
        "admin_create_key",
        "mode=test&scope=admin&name=x&reason=x",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = server_fn(
        &app,
        &admin,
        "admin_create_key",
        "mode=moon&scope=admin&name=x&reason=x",
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = server_fn(
        &app,
        &admin,
        "admin_create_key",
        "mode=test&scope=read&name=backend&reason=new+service",
    )
    .await;
    assert!(status < 400, "{body}");
    let keys_page = || async {
        admin
            .get(format!("{}/admin/keys", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let first = keys_page().await;
    let at = first
        .find("data-testid=\"new-secret\">")
        .expect("the secret is shown")
        + 25;
    let secret: String = first[at..].chars().take_while(|c| *c != '<').collect();
    assert!(secret.starts_with("sk_test_"), "{secret}");
    assert!(!keys_page().await.contains(&secret), "shown once only");
    assert!(!viewer
        .get(format!("{}/admin/keys", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains(&secret));

    // The key works, then is revoked with a reason and stops working.
    let r = app
        .post(
            &secret,
            "/v1/customers",
            json!({"external_id": "made-by-console-key"}),
        )
        .await;
    assert_eq!(
        r.status, 403,
        "a read key cannot create customers: {}",
        r.body
    );
    let who = app.get(&secret, "/v1/usage?limit=1").await;
    assert_eq!(who.status, 200, "{}", who.body);
    let keys = app.db.store.api_keys().await.unwrap();
    let id = keys
        .iter()
        .find(|k| k.name == "backend")
        .unwrap()
        .id
        .clone();
    let (status, _) = server_fn(
        &app,
        &viewer,
        "admin_revoke_key",
        &format!("id={id}&reason=x"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = server_fn(
        &app,
        &admin,
        "admin_revoke_key",
        &format!("id={id}&reason=leaked"),
    )
    .await;
    assert!(status < 400, "{body}");
    assert_eq!(app.get(&secret, "/v1/usage?limit=1").await.status, 401);
    let (status, _) = server_fn(
        &app,
        &admin,
        "admin_revoke_key",
        &format!("id={id}&reason=again"),
    )
    .await;
    assert_eq!(status, 404);
    let entries = app.db.store.audit_entries(Some(&id), 10).await.unwrap();
    let actions: Vec<_> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["revoke_key", "create_key"]);
    assert!(entries
        .iter()
        .all(|e| !e.after.as_deref().unwrap_or("").contains(&secret)));
}

#[tokio::test]
async fn staff_sign_in_is_rate_limited_like_the_portals() {
    let app = spawn_app().await;
    admin::create_staff(
        &app.running.core,
        "gate@example.com",
        "a-long-password",
        Role::Admin,
    )
    .await
    .unwrap();
    let attacker = browser();
    let mut answers = Vec::new();
    for _ in 0..6 {
        let (_, body) = server_fn(
            &app,
            &attacker,
            "admin_sign_in",
            "email=gate%40example.com&password=guess-guess-guess",
        )
        .await;
        answers.push(body.to_string());
    }
    assert!(
        answers[..5]
            .iter()
            .all(|a| a.contains("Wrong email or password")),
        "{answers:?}"
    );
    assert!(answers[5].contains("Too many attempts"), "{answers:?}");
    // Past the limit even the right password is refused, until the minute has passed.
    let (status, body) = server_fn(
        &app,
        &browser(),
        "admin_sign_in",
        "email=gate%40example.com&password=a-long-password",
    )
    .await;
    assert!(
        status >= 400 && body.to_string().contains("Too many attempts"),
        "{body}"
    );
}

/// The quickest of `n` staff sign-ins with a wrong password for emails made by `email`.
async fn quickest_sign_in(app: &TestApp, email: impl Fn(usize) -> String) -> std::time::Duration {
    let mut quickest = std::time::Duration::MAX;
    for i in 0..3 {
        let body = format!("email={}&password=not-the-password", email(i));
        let started = std::time::Instant::now();
        let (_, answer) = server_fn(app, &browser(), "admin_sign_in", &body).await;
        quickest = quickest.min(started.elapsed());
        assert!(
            answer.to_string().contains("Wrong email or password"),
            "{answer}"
        );
    }
    quickest
}

#[tokio::test]
async fn sign_in_takes_as_long_for_an_unknown_email_as_for_a_wrong_password() {
    let app = spawn_app().await;
    admin::create_staff(
        &app.running.core,
        "known@example.com",
        "a-long-password",
        Role::Admin,
    )
    .await
    .unwrap();
    let known = quickest_sign_in(&app, |_| "known%40example.com".into()).await;
    let unknown = quickest_sign_in(&app, |i| format!("nobody-{i}%40example.com")).await;
    // Both run argon2 once; without the decoy an unknown email answered in a few
    // milliseconds against tens for a wrong password. The margin is wide on purpose.
    assert!(
        unknown * 2 > known,
        "unknown email {unknown:?} against wrong password {known:?}"
    );
    // The portal's sign-in shares the check (passwords::matching).
    let core = &app.running.core;
    let started = std::time::Instant::now();
    let refused = app::core::portal::sign_in(core, "nobody@example.com", "whatever").await;
    assert!(refused.is_err());
    assert!(
        started.elapsed() * 2 > known,
        "portal: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn staff_export_every_customers_usage_of_a_mode_as_csv() {
    let app = spawn_app().await;
    let test_key = app.key(Mode::Test, Scope::Admin).await;
    let live_key = app.key(Mode::Live, Scope::Admin).await;
    let mut ids = Vec::new();
    for (key, name, events) in [
        (&test_key, "exp-a", 3),
        (&test_key, "exp-b", 2),
        (&live_key, "exp-live", 1),
    ] {
        let cus = app.customer_with_credit(key, name, "10").await;
        for i in 0..events {
            let r = app
                .post(key, "/v1/usage", json!({"customer": cus, "model": "gpt-5", "input_tokens": 1000, "output_tokens": 10, "request_id": format!("{name}-{i}")}))
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        ids.push(cus);
    }
    let viewer = staff_browser(&app, "books@example.com", Role::Viewer).await;
    let get = |query: &str| {
        viewer
            .get(format!("{}/admin/usage.csv{query}", app.base))
            .send()
    };
    let r = get("?mode=test").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("time,customer_id,request_id,model,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 1 + 5, "{csv}");
    assert_eq!(csv.matches(&ids[0]).count(), 3);
    assert_eq!(csv.matches(&ids[1]).count(), 2);
    assert!(
        !csv.contains(&ids[2]),
        "a live customer in the test export: {csv}"
    );
    // Each row's cost is the charged amount, to the nano-unit.
    let first = app
        .get(&test_key, &format!("/v1/usage?customer={}", ids[0]))
        .await;
    let cost = first.body["data"][0]["cost"].as_str().unwrap().to_string();
    assert!(
        lines[1..].iter().all(|l| l.ends_with(&format!(",{cost}"))),
        "{csv}"
    );
    // Live by default; a range that holds nothing is the header alone.
    let live = get("").await.unwrap().text().await.unwrap();
    assert_eq!(live.lines().count(), 2, "{live}");
    assert!(live.contains(&ids[2]));
    let tomorrow = app.running.core.clock.now().plus_seconds(86_400).day_key();
    let empty = get(&format!("?mode=test&from={tomorrow}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(empty.lines().count(), 1, "{empty}");
    // The books: every posting of the test mode's transactions, which sum to zero.
    let ledger = viewer
        .get(format!("{}/admin/ledger.csv?mode=test", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ledger.status(), 200);
    let ledger = ledger.text().await.unwrap();
    assert_eq!(
        ledger.lines().next(),
        Some("time,transaction_id,kind,reference,account_id,account_kind,bucket,amount")
    );
    let rows: Vec<Vec<&str>> = ledger
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let nanos = |a: &str| {
        let (whole, frac) = a.trim_start_matches('-').split_once('.').unwrap();
        let n = whole.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap();
        if a.starts_with('-') {
            -n
        } else {
            n
        }
    };
    assert_eq!(rows.iter().map(|r| nanos(r[7])).sum::<i64>(), 0, "{ledger}");
    // Five usage events, each a transaction of its own; nothing of the live customer.
    let usage: std::collections::HashSet<&str> = rows
        .iter()
        .filter(|r| r[2] == "usage")
        .map(|r| r[1])
        .collect();
    assert_eq!(usage.len(), 5, "{ledger}");
    assert!(rows
        .iter()
        .all(|r| r[5] == "customer" || r[5] == "operator"));
    let live = app.db.store.customer(&ids[2]).await.unwrap().unwrap();
    assert!(!ledger.contains(&live.account_id), "{ledger}");
    let test = app.db.store.customer(&ids[0]).await.unwrap().unwrap();
    assert!(ledger.contains(&test.account_id));
    // Refused: no staff session, an unknown mode, a bad date.
    for export in ["usage", "ledger"] {
        let r = browser()
            .get(format!("{}/admin/{export}.csv", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    assert_eq!(get("?mode=moon").await.unwrap().status(), 400);
    assert_eq!(get("?from=yesterday").await.unwrap().status(), 400);
}

#[tokio::test]
async fn customer_search_narrows_by_status_plan_and_balance() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let rich = app.customer_with_credit(&key, "find-rich", "10").await;
    let poor = app.customer_with_credit(&key, "find-poor", "2").await;
    let paused = app.customer_with_credit(&key, "find-paused", "10").await;
    let pro = app.customer_with_credit(&key, "find-pro", "10").await;
    let r = app
        .post(
            &key,
            "/v1/plans",
            json!({"id": "pro", "name": "Pro", "terms": {}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app
        .post(
            &key,
            &format!("/v1/customers/{pro}/plan"),
            json!({"plan": "pro"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let boss = staff_browser(&app, "finder@example.com", Role::Admin).await;
    let (status, body) = server_fn(
        &app,
        &boss,
        "admin_suspend",
        &format!("id={paused}&suspend=true&reason=chargeback"),
    )
    .await;
    assert!(status < 400, "{body}");
    let search = |args: &'static str| {
        let boss = boss.clone();
        let app = &app;
        async move {
            let (status, body) = server_fn(
                app,
                &boss,
                "admin_search",
                &format!("q=find-&mode=test&{args}"),
            )
            .await;
            assert_eq!(status, 200, "{args}: {body}");
            let mut ids: Vec<String> = body
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<String>>()
    };
    assert_eq!(search("").await, sorted(vec![&rich, &poor, &paused, &pro]));
    assert_eq!(search("status=suspended").await, vec![paused.clone()]);
    assert_eq!(search("status=active&plan=pro").await, vec![pro.clone()]);
    assert_eq!(search("below=5").await, vec![poor.clone()]);
    let (status, body) = server_fn(&app, &boss, "admin_search", "mode=test&status=gone").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = server_fn(&app, &boss, "admin_search", "mode=test&below=lots").await;
    assert_eq!(status, 400);
}
