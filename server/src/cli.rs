//! The one-shot commands: `migrate`, `verify`, `demo`.

use std::process::ExitCode;
use std::sync::Arc;

use app::core::clock::{Clock, SystemClock, Timestamp};
use app::core::error::Result;
use app::core::ledger::{Credit, Mode};
use app::core::money::Money;
use app::core::store::LedgerTable;
use app::core::Core;

use crate::config::KeysCommand;
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

/// `tally backup`: the copy, then its ledger verified from the copy itself.
pub async fn backup(url: &str, destination: &std::path::Path) -> Result<ExitCode> {
    let store = open_store(url).await?;
    let started = std::time::Instant::now();
    store.backup_sqlite(destination).await?;
    store.close().await;
    let bytes = std::fs::metadata(destination).map_or(0, |m| m.len());
    eprintln!(
        "copied to {} ({bytes} bytes) in {:.1} s; verifying the copy",
        destination.display(),
        started.elapsed().as_secs_f64()
    );
    let copy = open_store(&format!("sqlite://{}", destination.display())).await?;
    let report = Core::new(copy.clone(), Arc::new(SystemClock))
        .ledger
        .verify()
        .await?;
    copy.close().await;
    if report.is_clean() {
        println!("backup {}: ledger verified clean", destination.display());
        Ok(ExitCode::SUCCESS)
    } else {
        print!("{}", report.render());
        println!(
            "backup {}: its ledger does NOT verify",
            destination.display()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// A day (`2026-11-01`, midnight UTC) or an RFC 3339 instant.
fn instant(param: &'static str, text: &str) -> Result<app::core::clock::Timestamp> {
    use app::core::clock::Timestamp;
    Timestamp::parse_rfc3339(text)
        .or_else(|| Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z")))
        .ok_or_else(|| {
            app::core::error::Error::invalid(
                param,
                format!("{text:?} is not a date (2026-11-01) or an RFC 3339 time"),
            )
        })
}

/// `tally reprice`: the what-if report, with progress on stderr.
pub async fn reprice(url: &str, cfg: &crate::config::RepriceConfig) -> Result<ExitCode> {
    use app::core::reprice::{self, RepriceRequest};
    let req = RepriceRequest {
        mode: Mode::parse(&cfg.mode).unwrap_or(Mode::Live),
        customer: cfg.customer.clone(),
        plan: cfg.plan.clone(),
        plan_version: cfg.version,
        prices_at: cfg
            .prices_at
            .as_deref()
            .map(|t| instant("prices-at", t))
            .transpose()?,
        from: instant("from", &cfg.from)?,
        to: instant("to", &cfg.to)?,
    };
    let store = open_store(url).await?;
    let core = Core::new(store.clone(), Arc::new(SystemClock));
    let report = reprice::reprice(&core, &req, |done, total| {
        eprintln!("re-rated {done} of {total} events");
    })
    .await?;
    print!("{}", report.render());
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Seeds a picture worth looking at: three customers with 60 days of usage behind them
/// (busy weekdays, quiet weekends, several models, some cache, a failed request now and
/// then, a few requests through holds), a top-up and a welcome grant each, a second
/// top-up half-way for one, and one refunded request. Everything goes through the same
/// core functions the API uses; the days are the events' `occurred_at`. Does nothing on a
/// database that has customers. Prints its progress, one line per customer.
pub async fn demo(url: &str) -> Result<ExitCode> {
    use app::core::audit::{Actor, Role, Staff};
    use app::core::customers::{self, NewCustomer};
    use app::core::keys::{self, Scope};
    use app::core::metering::{self, CaptureInput, HoldFor, RefundRequest, UsageInput};
    use app::core::money::NANOS_PER_UNIT;
    use app::core::pricing::{Outcome, Tokens};

    /// Days of history the demo writes.
    const DAYS: i64 = 60;
    const DAY_SECONDS: i64 = 86_400;

    let store = open_store(url).await?;
    if store.count(LedgerTable::Accounts).await? > 12 {
        println!("the database already has data; demo not seeded");
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let core = Core::new(store.clone(), clock.clone());
    let now = clock.now();
    let today = now.micros().div_euclid(DAY_SECONDS * 1_000_000);
    // (model, weight): the mix a product on these models tends to show.
    let models = [
        ("claude-sonnet-4-5", 5),
        ("claude-haiku-4-5", 3),
        ("gpt-5", 2),
        ("gpt-5-mini", 2),
    ];
    let people = [
        ("ada", "ada@example.com", "Ada's Assistant", 6u64),
        ("babbage", "charles@example.com", "Babbage Bots", 3),
        ("curie", "marie@example.com", "Curie Chat", 10),
    ];
    let dollars = |n: i64| Money::from_nanos(n * NANOS_PER_UNIT);
    let mut first = None;
    for (i, (external_id, email, name, per_weekday)) in people.iter().enumerate() {
        let c = customers::create(
            &core,
            Mode::Test,
            &NewCustomer {
                external_id: (*external_id).into(),
                email: Some((*email).into()),
                name: Some((*name).into()),
                plan: None,
            },
        )
        .await?;
        core.ledger
            .credit(&Credit::topup(
                c.account_id.clone(),
                dollars(50 * (i as i64 + 1)),
                format!("demo:topup:{}", c.id),
            ))
            .await?;
        customers::grant(
            &core,
            Mode::Test,
            &c.id,
            &customers::GrantRequest {
                amount: dollars(5),
                reason: "welcome credits".into(),
                expires_at: Some(now.plus_seconds(30 * DAY_SECONDS)),
                actor: "demo".into(),
                reference: Some(format!("demo:promo:{}", c.id)),
            },
        )
        .await?;
        // A small deterministic generator (xorshift), one stream per customer, so every
        // demo database looks the same.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below.max(1)
        };
        let weight: u64 = models.iter().map(|(_, w)| w).sum();
        let mut n = 0u64;
        let mut refundable = None;
        for day in (today - DAYS + 1)..=today {
            // 1970-01-01 was a Thursday: 0 is Monday here.
            let weekday = (day + 3).rem_euclid(7);
            let base = if weekday < 5 {
                *per_weekday
            } else {
                per_weekday / 3
            };
            // Usage grows a little over the two months.
            let growth = (day - (today - DAYS)) as u64 * base / (2 * DAYS as u64);
            let requests = base + growth + next(base / 2 + 2);
            for _ in 0..requests {
                n += 1;
                let mut pick = next(weight);
                let model = models
                    .iter()
                    .find(|(_, w)| {
                        let hit = pick < *w;
                        pick = pick.saturating_sub(*w);
                        hit
                    })
                    .map_or(models[0].0, |(m, _)| *m);
                let input = 400 + next(6_000);
                let tokens = Tokens {
                    input,
                    output: 80 + next(1_200),
                    cache_write: if next(6) == 0 { 1_500 + next(3_000) } else { 0 },
                    cache_read: if next(3) == 0 { 2_000 + next(8_000) } else { 0 },
                    cache_write_1h: 0,
                };
                // Working hours, UTC.
                let at = Timestamp::from_micros(
                    (day * DAY_SECONDS + 8 * 3_600 + next(10 * 3_600) as i64) * 1_000_000,
                )
                .min(now);
                let request_id = format!("demo_req_{n}");
                if day == today && n.is_multiple_of(3) {
                    // Through a hold, as the proxy and careful callers do (a capture is
                    // recorded now, so only today's requests take this way).
                    let auth = metering::authorize(
                        &core,
                        Mode::Test,
                        &c.id,
                        &HoldFor::Request {
                            model: model.into(),
                            tokens: Tokens {
                                output: 4_096,
                                ..tokens
                            },
                            batch: false,
                        },
                    )
                    .await?;
                    metering::capture(
                        &core,
                        Mode::Test,
                        &auth.row.id,
                        &CaptureInput {
                            model: None,
                            tokens,
                            outcome: Outcome::Succeeded,
                            request_id: Some(request_id),
                            metadata: None,
                            batch: None,
                            proxied: None,
                        },
                    )
                    .await?;
                } else {
                    let recorded = metering::record_usage(
                        &core,
                        Mode::Test,
                        &UsageInput {
                            customer: c.id.clone(),
                            model: model.into(),
                            tokens,
                            batch: n.is_multiple_of(13),
                            outcome: if n.is_multiple_of(29) {
                                Outcome::Failed
                            } else {
                                Outcome::Succeeded
                            },
                            request_id,
                            occurred_at: Some(at),
                            metadata: None,
                        },
                    )
                    .await?;
                    if refundable.is_none() && day > today - 10 && recorded.event.cost.is_positive()
                    {
                        refundable = Some(recorded.event.id.clone());
                    }
                }
            }
            if i == 2 && day == today - DAYS / 2 {
                core.ledger
                    .credit(&Credit::topup(
                        c.account_id.clone(),
                        dollars(100),
                        format!("demo:topup2:{}", c.id),
                    ))
                    .await?;
            }
        }
        if let (0, Some(event)) = (i, refundable) {
            metering::refund(
                &core,
                Mode::Test,
                &event,
                &RefundRequest {
                    amount: None,
                    reason: "a reply cut off mid-answer".into(),
                    actor: Actor::Staff(Staff {
                        id: "stf_demo".into(),
                        email: "demo@example.com".into(),
                        role: Role::Admin,
                    }),
                },
            )
            .await?;
        }
        println!(
            "seeded customer {name} ({}): {n} requests over {DAYS} days ({}/{})",
            c.id,
            i + 1,
            people.len()
        );
        if i == 0 {
            first = Some(c.id.clone());
        }
    }
    if let Some(ada) = first {
        let (_, customer_key) = app::core::customer_keys::create(
            &core,
            Mode::Test,
            &ada,
            &app::core::customer_keys::NewKey {
                name: Some("demo notebook".into()),
                ..Default::default()
            },
        )
        .await?;
        let sent = demo_proxied(&store, &ada, &customer_key).await?;
        println!("sent {sent} of today's requests through the metering proxy for Ada, under two keys and three conversations");
        let addr = std::env::var("TALLY_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
        println!(
            "\nThe metering proxy, with Ada's customer key (test mode: the simulated provider \
             answers unless ANTHROPIC_API_KEY is set). Paste into Python (pip install anthropic):\n\n\
             import anthropic\n\
             client = anthropic.Anthropic(base_url=\"http://{addr}/proxy/anthropic\", api_key=\"{customer_key}\")\n\
             reply = client.messages.create(model=\"claude-sonnet-4-5\", max_tokens=256,\n\
             \x20   messages=[{{\"role\": \"user\", \"content\": \"Hello through Tally\"}}])\n\
             print(reply.content[0].text, reply.usage)\n"
        );
    }
    let (_, secret) = keys::create(&store, Mode::Test, Scope::Usage, "demo", clock.now()).await?;
    println!("a test-mode API key with scope usage, for trying /v1:");
    println!("{secret}");
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Today's requests from two of Ada's apps through the metering proxy, the way an operator's
/// users send them: a server in this process, test mode's simulated provider, the real path
/// (hold, forward, capture), under the key "demo notebook" and a second key with a
/// monthly limit, in three conversations over both providers' shapes. Proxied requests are charged
/// as they happen, so unlike the rest of the demo they are all today's. Returns how many
/// were sent.
async fn demo_proxied(store: &app::core::store::Store, ada: &str, notebook: &str) -> Result<usize> {
    use app::core::customer_keys::{self, LimitPeriod, NewKey};
    use app::core::error::Error;
    use serde_json::json;
    let running = crate::start_on_loopback(store, |_| {})
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    let (_, backend) = customer_keys::create(
        &running.core,
        Mode::Test,
        ada,
        &NewKey {
            name: Some("demo backend".into()),
            spend_limit: Some(Money::from_nanos(20 * app::core::money::NANOS_PER_UNIT)),
            limit_period: Some(LimitPeriod::Month),
            expires_at: None,
        },
    )
    .await?;
    let http = reqwest::Client::new();
    let proxy = format!("http://{}/proxy", running.addr);
    let questions = [
        (notebook, "onboarding-chat", "How do I invite my team?"),
        (
            notebook,
            "onboarding-chat",
            "And how do roles work once they have joined?",
        ),
        (
            notebook,
            "onboarding-chat",
            "Summarise what we said, please, in three short bullet points.",
        ),
        (
            &backend,
            "ticket-4411",
            "Classify this support ticket: the export button does nothing.",
        ),
        (
            &backend,
            "ticket-4411",
            "Draft a friendly reply to the customer.",
        ),
        (
            &backend,
            "nightly-digest",
            "Write tonight's digest of the 14 new sign-ups and 3 cancellations.",
        ),
        (&backend, "nightly-digest", "Shorter, and in a warmer tone."),
    ];
    let mut sent = 0;
    for (i, (key, conversation, question)) in questions.iter().enumerate() {
        // The backend's digest goes to OpenAI's chat completions, everything else to
        // Anthropic's messages.
        let request = if *conversation == "nightly-digest" {
            http.post(format!("{proxy}/openai/v1/chat/completions"))
                .bearer_auth(key)
                .json(&json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": question}]}))
        } else {
            http.post(format!("{proxy}/anthropic/v1/messages"))
                .header("x-api-key", *key)
                .header("anthropic-version", "2023-06-01")
                .json(
                    &json!({"model": "claude-haiku-4-5", "max_tokens": 200 + 100 * i,
                    "messages": [{"role": "user", "content": question}]}),
                )
        };
        let answer = request
            .header("tally-conversation", *conversation)
            .send()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        if !answer.status().is_success() {
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            return Err(Error::internal(format!(
                "the demo's proxied request answered {status}: {body}"
            )));
        }
        // The charge is made once the whole answer is read.
        answer
            .bytes()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        sent += 1;
    }
    running
        .stop()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    Ok(sent)
}

pub async fn keys(url: &str, cmd: &KeysCommand) -> Result<ExitCode> {
    use app::core::keys::{self, Scope};
    let store = open_store(url).await?;
    let now = SystemClock.now();
    match cmd {
        KeysCommand::Create { mode, scope, name } => {
            let mode = Mode::parse(mode)
                .ok_or_else(|| app::core::error::Error::invalid("mode", "test or live"))?;
            let scope = Scope::parse(scope)
                .ok_or_else(|| app::core::error::Error::invalid("scope", "read, usage or admin"))?;
            let (key, secret) = keys::create(&store, mode, scope, name, now).await?;
            println!(
                "created {} ({} mode, scope {}); the secret is shown only now:",
                key.id,
                mode.as_str(),
                scope.as_str()
            );
            println!("{secret}");
        }
        KeysCommand::Revoke { id } => {
            keys::revoke(&store, id, now).await?;
            println!("revoked {id}");
        }
        KeysCommand::List => {
            for k in store.api_keys().await? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}  {}  {:<5}  {:<7}  {}",
                    k.id, k.mode, k.scope, state, k.name
                );
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn reconcile(url: &str, stripe: &crate::config::StripeConfig) -> Result<ExitCode> {
    use app::core::payments::{reconcile, Payments};
    let store = open_store(url).await?;
    let public =
        std::env::var("TALLY_PUBLIC_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let core = Core::with_payments(
        store.clone(),
        Arc::new(SystemClock),
        Payments::new(stripe.payments_config(&public))?,
    );
    let report = reconcile::run(&core).await?;
    print!("{}", report.render());
    store.close().await;
    Ok(if report.unexplained.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn replay_webhook(url: &str, id: &str) -> Result<ExitCode> {
    let store = open_store(url).await?;
    let core = Core::new(store.clone(), Arc::new(SystemClock));
    app::core::payments::webhooks::replay(&core, id).await?;
    println!("queued {id} again; the server's worker applies it within seconds");
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn admin(url: &str, cmd: &crate::config::AdminCommand) -> Result<ExitCode> {
    use app::core::admin::{self, Role};
    let crate::config::AdminCommand::Create { email, role } = cmd;
    let role = Role::parse(role)
        .ok_or_else(|| app::core::error::Error::invalid("role", "admin or viewer"))?;
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| app::core::error::Error::invalid("password", e.to_string()))?;
    let password = password.trim_end_matches(['\n', '\r']);
    let store = open_store(url).await?;
    let core = Core::new(store.clone(), Arc::new(SystemClock));
    let id = admin::create_staff(&core, email, password, role).await?;
    println!(
        "staff account {id} ({email}, {}) is ready; sign in at /admin/signin",
        role.as_str()
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `tally reconcile-provider`: the providers' usage reports against what Tally charged.
pub async fn reconcile_provider(
    url: &str,
    cfg: &crate::config::ReconcileProviderConfig,
) -> Result<ExitCode> {
    let day = |text: &Option<String>, default: Timestamp| -> Result<Timestamp> {
        match text {
            None => Ok(default),
            Some(d) => Timestamp::parse_rfc3339(&format!("{d}T00:00:00Z")).ok_or_else(|| {
                app::core::error::Error::invalid("day", format!("{d}: expected YYYY-MM-DD"))
            }),
        }
    };
    let today = SystemClock.now().day_start();
    let from = day(&cfg.from, today.plus_seconds(-86_400))?;
    let to = day(&cfg.to, today.plus_seconds(86_400))?;
    let config = cfg.proxy.config("http://127.0.0.1");
    if config.anthropic.admin_key.is_none() && config.openai.admin_key.is_none() {
        println!("no ANTHROPIC_ADMIN_KEY or OPENAI_ADMIN_KEY: nothing to reconcile");
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_store(url).await?;
    let core = Core::new(store.clone(), Arc::new(SystemClock));
    let mut failed = false;
    for (provider, rows) in crate::proxy::reconcile::run(&core, &config, from, to).await {
        match rows {
            Err(e) => {
                failed = true;
                println!("{}: {e}", provider.as_str());
            }
            Ok(rows) => {
                println!("{}: {} model-days", provider.as_str(), rows.len());
                for r in rows {
                    println!(
                        "  {} {:<28} input {:>12} vs {:>12}  output {:>12} vs {:>12}  cache write {:>10} vs {:>10}  cache read {:>10} vs {:>10}",
                        r.day, r.model, r.tally_input, r.provider_input, r.tally_output, r.provider_output,
                        r.tally_cache_write, r.provider_cache_write, r.tally_cache_read, r.provider_cache_read
                    );
                }
            }
        }
    }
    store.close().await;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
