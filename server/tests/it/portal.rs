//! The customer portal through the real server: one-time links, sessions, access control
//! in every server function, cross-site refusal, CSV export, password sign-in.

use app::core::clock::{Clock, SystemClock};
use app::core::keys::Scope;
use app::core::ledger::Mode;
use serde_json::json;

use crate::helpers::{browser, server_fn, spawn_app, TestApp};

async fn customer_with_usage(
    app: &TestApp,
    admin: &str,
    external_id: &str,
    events: usize,
) -> String {
    let c = app
        .post(admin, "/v1/customers", json!({"external_id": external_id, "email": format!("{external_id}@example.com"), "name": external_id}))
        .await;
    let cus = c.body["id"].as_str().unwrap().to_string();
    app.post(
        admin,
        &format!("/v1/customers/{cus}/grants"),
        json!({"amount": "20", "reason": "test"}),
    )
    .await;
    for i in 0..events {
        let model = if i % 2 == 0 {
            "gpt-5"
        } else {
            "claude-sonnet-4-5"
        };
        let r = app
            .post(admin, "/v1/usage", json!({"customer": cus, "model": model, "input_tokens": 1204, "output_tokens": 350, "request_id": format!("{external_id}-{i}")}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    cus
}

/// Signs a browser in through a one-time link; returns the session cookie value.
pub(crate) async fn sign_in_by_link(
    app: &TestApp,
    admin: &str,
    browser: &reqwest::Client,
    cus: &str,
) -> String {
    let s = app
        .post(
            admin,
            &format!("/v1/customers/{cus}/portal_sessions"),
            json!({}),
        )
        .await;
    let url = s.body["url"].as_str().unwrap();
    let r = browser.get(url).send().await.unwrap();
    assert_eq!(r.status(), 303, "a valid link redirects into the portal");
    assert_eq!(r.headers()["location"], "/portal");
    session_cookie(&r).expect("a session cookie is set")
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("tally_session="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn a_one_time_link_signs_in_once_and_shows_only_that_customers_data() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let a = customer_with_usage(&app, &admin, "alice", 3).await;
    let b = customer_with_usage(&app, &admin, "bob", 2).await;

    let alice = browser();
    let s = app
        .post(
            &admin,
            &format!("/v1/customers/{a}/portal_sessions"),
            json!({}),
        )
        .await;
    let url = s.body["url"].as_str().unwrap().to_string();
    let first = alice.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 303);
    // The link is one-time.
    let again = browser().get(&url).send().await.unwrap();
    assert_eq!(again.headers()["location"], "/portal/signin?error=link");

    let page = alice
        .get(format!("{}/portal", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Leptos marks text-node boundaries with comments; read the text as a browser would.
    let page = page.replace("<!>", "");
    assert!(page.contains("Hello, alice"), "{page}");
    assert!(
        page.contains("<svg"),
        "the spend chart is drawn on the server"
    );

    let (status, usage) = server_fn(&app, &alice, "portal_usage", "").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["rows"].as_array().unwrap().len(), 3);

    // Bob's event, asked for with Alice's session: nothing.
    let bob_events = app.get(&admin, &format!("/v1/usage?customer={b}")).await;
    let bob_event = bob_events.body["data"][0]["id"].as_str().unwrap();
    let (status, body) = server_fn(
        &app,
        &alice,
        "portal_usage_detail",
        &format!("id={bob_event}"),
    )
    .await;
    assert!(status >= 400, "{body}");
    assert!(!body.to_string().contains("bob-"), "{body}");
    let page = alice
        .get(format!("{}/portal/usage/{bob_event}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("bob-0") && !page.contains("bob-1"), "{page}");

    // Alice's own event is explained in plain words.
    let alice_events = app
        .get(&admin, &format!("/v1/usage?customer={a}&model=gpt-5"))
        .await;
    let mine = alice_events.body["data"][0]["id"].as_str().unwrap();
    let (status, detail) =
        server_fn(&app, &alice, "portal_usage_detail", &format!("id={mine}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        detail["lines"][0],
        "1,204 input tokens at $1.25 per million = $0.001505"
    );
    assert_eq!(
        detail["lines"][1],
        "350 output tokens at $10.00 per million = $0.0035"
    );
    assert_eq!(detail["plan_version"], "standard v1");

    // Nobody signed in: every server function refuses.
    for (name, args) in [
        ("portal_overview", ""),
        ("portal_usage", ""),
        ("portal_billing", ""),
    ] {
        let (status, _) = server_fn(&app, &browser(), name, args).await;
        assert!(status >= 400, "{name} without a session");
    }
    let anonymous = browser()
        .get(format!("{}/portal", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(anonymous.contains("Please sign in"));
    assert!(!anonymous.contains("alice"));
}

#[tokio::test]
async fn sessions_rotate_at_sign_in_and_die_at_sign_out() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let a = customer_with_usage(&app, &admin, "carol", 1).await;
    let browser = browser();
    let first = sign_in_by_link(&app, &admin, &browser, &a).await;
    let second = sign_in_by_link(&app, &admin, &browser, &a).await;
    assert_ne!(first, second, "signing in issues a new session id");

    let r = browser
        .post(format!("{}/portal/signout", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // The old cookie, replayed by someone who kept it, is worthless.
    let thief = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = thief
        .post(format!("{}/api/portal_overview", app.base))
        .header("cookie", &second)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(r.status().as_u16() >= 400);
    let cookie_flags = {
        let s = app
            .post(
                &admin,
                &format!("/v1/customers/{a}/portal_sessions"),
                json!({}),
            )
            .await;
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(s.body["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        r.headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    assert!(cookie_flags.contains("HttpOnly"), "{cookie_flags}");
    assert!(cookie_flags.contains("SameSite=Lax"), "{cookie_flags}");
}

#[tokio::test]
async fn the_sweep_purges_expired_sessions_and_keeps_live_ones() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let a = customer_with_usage(&app, &admin, "dora", 1).await;
    let browser = browser();
    sign_in_by_link(&app, &admin, &browser, &a).await;
    // A session that expired an hour ago, as one left by a browser never seen again.
    let store = &app.db.store;
    let an_hour_ago = SystemClock.now().plus_seconds(-3_600);
    assert!(store
        .session_create("expired-session", "{}", an_hour_ago.micros())
        .await
        .unwrap());
    // Creating it again succeeds only once the row is gone (the sweep runs every 200 ms
    // in tests).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !store
        .session_create("expired-session", "{}", an_hour_ago.micros())
        .await
        .unwrap()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired session was never purged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = browser
        .post(format!("{}/api/portal_overview", app.base))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the live session survives the sweep");
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let a = customer_with_usage(&app, &admin, "dave", 0).await;
    let browser = browser();
    sign_in_by_link(&app, &admin, &browser, &a).await;
    let r = browser
        .post(format!("{}/api/portal_set_threshold", app.base))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("threshold=1000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let same = browser
        .post(format!("{}/api/portal_set_threshold", app.base))
        .header("origin", app.base.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body("threshold=7.5")
        .send()
        .await
        .unwrap();
    assert!(
        same.status().is_success() || same.status().is_redirection(),
        "{}",
        same.status()
    );
    let bal = app.get(&admin, &format!("/v1/customers/{a}/balance")).await;
    assert_eq!(bal.body["low_balance_threshold"], "7.500000000");
}

#[tokio::test]
async fn csv_export_streams_the_filtered_rows() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let a = customer_with_usage(&app, &admin, "erin", 5).await;
    let browser = browser();
    sign_in_by_link(&app, &admin, &browser, &a).await;
    let csv = browser
        .get(format!(
            "{}/portal/usage.csv?model=claude-sonnet-4-5",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("time,request_id,model"));
    assert_eq!(lines.len(), 1 + 2, "{text}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains(",claude-sonnet-4-5,succeeded,1204,350,0,0,0.008862000")),
        "{text}"
    );
    let anonymous = reqwest::get(format!("{}/portal/usage.csv", app.base))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
}

#[tokio::test]
async fn password_sign_in_works_and_is_rate_limited() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let a = customer_with_usage(&app, &admin, "frank", 0).await;
    let browser = browser();
    sign_in_by_link(&app, &admin, &browser, &a).await;
    let (status, body) = server_fn(&app, &browser, "portal_set_password", "password=short").await;
    assert!(status >= 400, "{body}");
    let (status, _) = server_fn(
        &app,
        &browser,
        "portal_set_password",
        "password=correct+horse+battery",
    )
    .await;
    assert!(status < 400);

    let fresh = self::browser();
    let (status, body) = server_fn(
        &app,
        &fresh,
        "portal_sign_in",
        "email=frank%40example.com&password=wrong-password",
    )
    .await;
    assert!(
        status >= 400 && body.to_string().contains("Wrong email or password"),
        "{body}"
    );
    let (status, _) = server_fn(
        &app,
        &fresh,
        "portal_sign_in",
        "email=frank%40example.com&password=correct+horse+battery",
    )
    .await;
    assert!(status < 400);
    let (status, overview) = server_fn(&app, &fresh, "portal_overview", "").await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["name"], "frank");

    let attacker = self::browser();
    let mut limited = false;
    for _ in 0..8 {
        let (_, body) = server_fn(
            &app,
            &attacker,
            "portal_sign_in",
            "email=frank%40example.com&password=guess-guess-guess",
        )
        .await;
        if body.to_string().contains("Too many attempts") {
            limited = true;
            break;
        }
    }
    assert!(limited, "sign-in attempts are rate limited");
}

#[tokio::test]
async fn receipts_are_the_customers_own_and_times_are_marked_for_the_browser() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let a = app.customer_with_credit(&admin, "receipt-a", "0").await;
    let b = app.customer_with_credit(&admin, "receipt-b", "0").await;
    let s = app
        .post(
            &admin,
            &format!("/v1/customers/{a}/checkout_sessions"),
            json!({"amount": "12.34"}),
        )
        .await;
    assert_eq!(s.status, 201, "{}", s.body);
    app::core::payments::simulate_payment(&app.running.core, s.body["id"].as_str().unwrap())
        .await
        .unwrap();
    let mut paid = None;
    for _ in 0..100 {
        paid = app
            .db
            .store
            .topups_of(&a, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.status.as_str() == "paid");
        if paid.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let topup = paid.expect("the top-up is paid").id;

    let alice = browser();
    sign_in_by_link(&app, &admin, &alice, &a).await;
    let billing = alice
        .get(format!("{}/portal/billing", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        billing.contains(&format!("/portal/receipts/{topup}")),
        "{billing}"
    );
    assert!(
        billing.contains("<time datetime=\""),
        "times carry their instant for the browser"
    );
    assert!(
        billing.contains("between $1.00 and $10,000.00"),
        "{billing}"
    );
    let (status, receipt) = server_fn(&app, &alice, "portal_receipt", &format!("id={topup}")).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["amount"], "$12.34");
    assert_eq!(receipt["method"], "simulated payment (test mode)");
    let page = alice
        .get(format!("{}/portal/receipts/{topup}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Receipt number") && page.contains("$12.34"),
        "{page}"
    );

    // Another customer learns nothing about it.
    let bob = browser();
    sign_in_by_link(&app, &admin, &bob, &b).await;
    let (status, body) = server_fn(&app, &bob, "portal_receipt", &format!("id={topup}")).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.to_string().contains("12.34"));
    let (status, _) = server_fn(&app, &alice, "portal_receipt", "id=top_unknown").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_plan_sets_the_smallest_and_largest_top_up() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let bad = app
        .post(&admin, "/v1/plans", json!({"id": "upside-down", "name": "x", "terms": {"min_topup": "50", "max_topup": "5"}}))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let bad = app
        .post(&admin, "/v1/plans", json!({"id": "odd-pack", "name": "x", "terms": {"min_topup": "5", "max_topup": "50", "topup_packs": ["100"]}}))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let plan = app
        .post(
            &admin,
            "/v1/plans",
            json!({"id": "small", "name": "Small", "terms": {"min_topup": "5", "max_topup": "50"}}),
        )
        .await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    let cus = app.customer_with_credit(&admin, "small-buyer", "0").await;
    let r = app
        .post(
            &admin,
            &format!("/v1/customers/{cus}/plan"),
            json!({"plan": "small"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    for (amount, status) in [("4.99", 400), ("50.01", 400), ("5.00", 201), ("50", 201)] {
        let r = app
            .post(
                &admin,
                &format!("/v1/customers/{cus}/checkout_sessions"),
                json!({"amount": amount}),
            )
            .await;
        assert_eq!(r.status, status, "{amount}: {}", r.body);
        if status == 400 {
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("between $5.00 and $50.00"),
                "{}",
                r.body
            );
        }
    }
}

#[tokio::test]
async fn the_overview_looks_back_7_30_or_90_days_with_the_figures_on_hover_and_in_a_table() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let cus = customer_with_usage(&app, &admin, "ranges", 1).await;
    // One more request 40 days ago: inside 90 days, outside 30.
    let now = SystemClock.now();
    let old = now.plus_seconds(-40 * 86_400);
    let r = app
        .post(&admin, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": "ranges-old", "occurred_at": old.to_rfc3339()}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let alice = browser();
    sign_in_by_link(&app, &admin, &alice, &cus).await;

    let overview = |days: &'static str| {
        let alice = alice.clone();
        let base = app.base.clone();
        async move {
            let r = alice
                .get(format!("{base}/portal{days}"))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.text().await.unwrap().replace("<!>", ""),
            )
        }
    };
    let (status, month) = overview("").await;
    assert_eq!(status, 200);
    assert!(month.contains("Spend, last 30 days, by model"), "{month}");
    // Each day of the chart has its figures in a title (a hover needs no JavaScript).
    assert_eq!(month.matches("class=\"hover-day\"").count(), 30 + 30);
    let today = now.day_key();
    let md = &today[5..];
    assert!(month.contains(&format!("<title>{md}: ")), "{month}");
    // The same figures as a table, today's only (the old request is 40 days back).
    assert!(month.contains(&format!("<td>{today}</td>")), "{month}");
    assert!(!month.contains(&format!("<td>{}</td>", old.day_key())));
    // Money is rounded for people with every digit beside it.
    assert!(month.contains("title=\"exactly $"), "{month}");

    let (_, quarter) = overview("?days=90").await;
    assert!(quarter.contains("Spend, last 90 days, by model"));
    assert_eq!(quarter.matches("class=\"hover-day\"").count(), 90 + 90);
    assert!(
        quarter.contains(&format!("<td>{}</td>", old.day_key())),
        "{quarter}"
    );
    // The old request cost $3.00 (1,000,000 input tokens of claude-sonnet-4-5).
    assert!(quarter.contains("claude-sonnet-4-5 $3.00"), "{quarter}");
    assert!(
        quarter.contains("aria-current=\"page\" data-testid=\"range-90\"")
            || quarter.contains("data-testid=\"range-90\" aria-current=\"page\""),
        "{quarter}"
    );

    let (_, week) = overview("?days=7").await;
    assert_eq!(week.matches("class=\"hover-day\"").count(), 7 + 7);
    let (status, body) = server_fn(&app, &alice, "portal_overview", "days=12").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("7, 30 or 90"), "{body}");
}

#[tokio::test]
async fn billing_shows_usage_a_line_a_day_and_payments_apart() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let cus = customer_with_usage(&app, &admin, "days", 3).await;
    let old = SystemClock.now().plus_seconds(-3 * 86_400);
    for i in 0..2 {
        let r = app
            .post(&admin, "/v1/usage", json!({"customer": cus, "model": "gpt-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": format!("days-old-{i}"), "occurred_at": old.to_rfc3339()}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let alice = browser();
    sign_in_by_link(&app, &admin, &alice, &cus).await;
    let (status, billing) = server_fn(&app, &alice, "portal_billing", "").await;
    assert_eq!(status, 200, "{billing}");
    let days = billing["usage_days"].as_array().unwrap();
    assert_eq!(days.len(), 2, "{billing}");
    assert_eq!(days[0]["day"], SystemClock.now().day_key());
    assert_eq!(days[0]["requests"], "3");
    assert_eq!(days[1]["day"], old.day_key());
    assert_eq!(days[1]["requests"], "2");
    // Two requests of 1,000,000 gpt-5 input tokens: $1.25 each.
    assert_eq!(days[1]["spend"]["rounded"], "$2.50");
    // Payments and credits only: the grant, no usage line.
    let kinds: Vec<&str> = billing["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["grant"], "{billing}");
}

#[tokio::test]
async fn the_keys_page_charts_spend_by_key_and_bars_each_conversation() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    // One request through /v1, without a key.
    let cus = customer_with_usage(&app, &admin, "keyed", 1).await;
    let alice = browser();
    sign_in_by_link(&app, &admin, &alice, &cus).await;
    let keys_page = || async {
        let r = alice.get(format!("{}/portal/keys", app.base)).send();
        r.await.unwrap().text().await.unwrap()
    };
    // No key yet: no chart, and the empty conversations say how to get some.
    let (status, page) = server_fn(&app, &alice, "portal_keys", "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page["spend_chart"].is_null(), "{page}");
    let html = keys_page().await;
    assert!(html.contains("data-testid=\"no-conversations\""), "{html}");

    let mut secrets = Vec::new();
    for name in ["laptop", "server"] {
        let r = app
            .post(
                &admin,
                &format!("/v1/customers/{cus}/keys"),
                json!({"name": name}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        secrets.push(r.body["secret"].as_str().unwrap().to_string());
    }
    // The simulated provider answers the same request with the same usage, so the laptop's
    // two calls cost exactly twice the server's one, and so does their conversation.
    for (secret, conversation) in [
        (&secrets[0], "long-chat"),
        (&secrets[0], "long-chat"),
        (&secrets[1], "short-chat"),
    ] {
        let r = app
            .http
            .post(format!("{}/proxy/anthropic/v1/messages", app.base))
            .header("x-api-key", secret)
            .header("anthropic-version", "2023-06-01")
            .header("tally-conversation", conversation)
            .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
                "messages": [{"role": "user", "content": "the same question"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    let since = SystemClock.now().plus_seconds(-86_400);
    let by_key = app::core::portal::api_keys(&app.running.core, &cus)
        .await
        .unwrap()
        .daily_by_key;
    let spent = |prefix: &str| -> i64 {
        by_key
            .iter()
            .filter(|d| d.series.starts_with(prefix))
            .map(|d| d.cost.nanos())
            .sum()
    };
    assert!(spent("server …").is_positive(), "{by_key:?}");
    assert_eq!(spent("laptop …"), 2 * spent("server …"), "{by_key:?}");
    assert!(spent("without a key").is_positive(), "{by_key:?}");
    // Every request is in exactly one series: the series add up to the day's usage.
    let usage: i64 = app
        .db
        .store
        .daily_usage(&cus, since)
        .await
        .unwrap()
        .iter()
        .map(|d| d.cost.nanos())
        .sum();
    assert_eq!(by_key.iter().map(|d| d.cost.nanos()).sum::<i64>(), usage);

    let (status, page) = server_fn(&app, &alice, "portal_keys", "").await;
    assert_eq!(status, 200, "{page}");
    let chart = page["spend_chart"].as_str().unwrap();
    assert!(chart.contains("Spend by day, stacked by key"), "{chart}");
    for series in ["laptop …", "server …", "without a key"] {
        assert!(chart.contains(series), "{series} in {chart}");
    }
    let shares: Vec<(&str, u64)> = page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["conversation"].as_str().unwrap(),
                c["share"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shares.len(), 2, "{page}");
    assert!(shares.contains(&("long-chat", 100)), "{shares:?}");
    assert!(shares.contains(&("short-chat", 50)), "{shares:?}");

    // Without JavaScript, the page carries the chart and the bars.
    let html = keys_page().await;
    assert!(html.contains("data-testid=\"key-spend-chart\""), "{html}");
    assert!(html.contains("width: 100%"), "{html}");
    assert!(html.contains("width: 50%"), "{html}");
    assert!(!html.contains("data-testid=\"no-conversations\""));
}
