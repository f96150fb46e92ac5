//! Spawning the real server and talking to it.

use std::sync::Arc;

use app::core::clock::{Clock, SystemClock};
use app::core::keys::{self, Scope};
use app::core::ledger::Mode;
use app::core::testing::{fresh_store, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub running: server::Running,
    pub db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tune: impl FnOnce(&mut server::Options)) -> TestApp {
    spawn_on(fresh_store().await.expect("test database"), tune).await
}

impl TestApp {
    /// A second server on this app's database, with a store of its own: another node.
    pub async fn another_node(&self, tune: impl FnOnce(&mut server::Options)) -> TestApp {
        spawn_on(
            self.db.another_store().await.expect("the same database"),
            tune,
        )
        .await
    }
}

async fn spawn_on(db: TestDb, tune: impl FnOnce(&mut server::Options)) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut options = server::Options::for_tests(addr);
    tune(&mut options);
    let running = server::start(listener, db.store.clone(), Arc::new(SystemClock), &options)
        .await
        .unwrap();
    TestApp {
        base: format!("http://{}", running.addr),
        http: reqwest::Client::new(),
        running,
        db,
    }
}

/// A response: status, headers we care about, and the JSON body.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The contract's error envelope: (type, code, param).
    pub fn error(&self) -> (String, String, Option<String>) {
        let e = &self.body["error"];
        (
            e["type"].as_str().unwrap_or_default().to_string(),
            e["code"].as_str().unwrap_or_default().to_string(),
            e["param"].as_str().map(str::to_string),
        )
    }
}

impl TestApp {
    pub async fn key(&self, mode: Mode, scope: Scope) -> String {
        keys::create(&self.db.store, mode, scope, "test", SystemClock.now())
            .await
            .unwrap()
            .1
    }

    pub async fn call(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_with(key, method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> Reply {
        self.call(key, Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, key: &str, path: &str) -> Reply {
        self.call(key, Method::GET, path, None).await
    }

    /// The OpenAPI document this server serves.
    pub async fn openapi(&self) -> Value {
        self.http
            .get(format!("{}/v1/openapi.json", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Stores a Stripe event of a type nothing acts on and waits (10 s at most) until the
    /// inbox worker has applied it.
    pub async fn inbox_applies(&self, id: &str) {
        let store = &self.db.store;
        let now = SystemClock.now();
        store
            .insert_webhook_event(id, "customer.created", "test", "{}", "webhook", now)
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let event = store.webhook_event(id).await.unwrap().unwrap();
            if event.status == app::core::vocab::InboxStatus::Processed {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{id} never applied");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A customer with `credit` granted (admin grant), returning its id.
    pub async fn customer_with_credit(
        &self,
        admin: &str,
        external_id: &str,
        credit: &str,
    ) -> String {
        self.customer_on_plan(admin, external_id, None, credit)
            .await
    }

    /// A customer on `plan` (the default when None) with `credit` granted.
    pub async fn customer_on_plan(
        &self,
        admin: &str,
        external_id: &str,
        plan: Option<&str>,
        credit: &str,
    ) -> String {
        let mut body = serde_json::json!({"external_id": external_id});
        if let Some(plan) = plan {
            body["plan"] = plan.into();
        }
        let c = self.post(admin, "/v1/customers", body).await;
        assert_eq!(c.status, 201, "{}", c.body);
        let id = c.body["id"].as_str().unwrap().to_string();
        if credit != "0" {
            let g = self
                .post(
                    admin,
                    &format!("/v1/customers/{id}/grants"),
                    serde_json::json!({"amount": credit, "reason": "test credit"}),
                )
                .await;
            assert_eq!(g.status, 201, "{}", g.body);
        }
        id
    }

    /// Suspends a customer as staff would (the ledger's own operation).
    pub async fn suspend_by_staff(&self, customer: &str) {
        let account = self
            .db
            .store
            .customer(customer)
            .await
            .unwrap()
            .unwrap()
            .account_id;
        self.running
            .core
            .ledger
            .set_suspended(&account, true)
            .await
            .unwrap();
    }

    pub async fn assert_ledger_clean(&self) {
        let core = app::core::Core::new(self.db.store.clone(), Arc::new(SystemClock));
        let report = core.ledger.verify().await.unwrap();
        assert!(report.is_clean(), "{}", report.render());
    }
}

/// A browser: keeps cookies, does not follow redirects (so tests see them).
/// A browser: cookies kept, redirects not followed, and no request waits longer than a
/// minute (a request that hangs fails the test with its URL instead of hanging the run).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Calls a server function as a hydrated page would; returns (status, JSON body).
pub async fn server_fn(
    app: &TestApp,
    browser: &reqwest::Client,
    name: &str,
    body: &str,
) -> (u16, Value) {
    let r = browser
        .post(format!("{}/api/{name}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
