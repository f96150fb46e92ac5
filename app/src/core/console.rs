//! What the admin console's pages show: one read per view, returning the rows and figures
//! that view needs, so the pages never reach into the store. The callers (the console's
//! server functions) check the staff member's role first; the audited actions are in
//! `admin`.

use super::error::{Error, Result};
use super::ledger::Mode;
use super::money::Money;
use super::plans::{self, Plan, PriceVersion};
use super::pricing::ModelPrice;
use super::store::{
    ApiKeyRow, AuditRow, AutoTopupRow, CustomerFilters, CustomerRow, DriftRow, GrantRow,
    LedgerTable, OperatorFigures, PlanVersionRow, ProxyRequestRow, ReconciliationRow,
    SubscriptionRow, TopupRow, TransactionRow, UsageEventRow, UsageFilter, WebhookEventRow,
};
use super::subscriptions;
use super::vocab::SubscriptionStatus;
use super::Core;

/// How many of the month's biggest spenders the overview names per mode.
const TOP_SPENDERS: i64 = 5;
/// Customers a search lists at most.
const SEARCH_LIMIT: i64 = 100;
/// Top-ups, subscriptions and webhook events a console list shows at most.
const LIST_LIMIT: i64 = 200;

/// The size of the ledger, for the landing page (a signed-in staff member's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSize {
    /// The kind of database: `sqlite` or `postgres`.
    pub database: &'static str,
    pub accounts: i64,
    pub transactions: i64,
    pub postings: i64,
}

/// Counts every row of the ledger's tables: a full scan, so for staff only.
pub async fn ledger_size(core: &Core) -> Result<LedgerSize> {
    let s = &core.store;
    Ok(LedgerSize {
        database: s.dialect().name(),
        accounts: s.count(LedgerTable::Accounts).await?,
        transactions: s.count(LedgerTable::Transactions).await?,
        postings: s.count(LedgerTable::Postings).await?,
    })
}

/// One mode on the console's overview: credits sold, consumed and owed, and who spends most.
#[derive(Clone, Debug)]
pub struct ModeOverview {
    pub mode: Mode,
    pub figures: OperatorFigures,
    /// This month's biggest spenders, highest first, with what each spent.
    pub top: Vec<(CustomerRow, Money)>,
}

/// Live mode, then test mode.
pub async fn overview(core: &Core) -> Result<Vec<ModeOverview>> {
    let period = core.clock.now().month_key();
    let mut out = Vec::new();
    for mode in [Mode::Live, Mode::Test] {
        let figures = core.store.operator_figures(mode.as_str()).await?;
        let top = core
            .store
            .top_spenders(mode.as_str(), &period, TOP_SPENDERS)
            .await?;
        out.push(ModeOverview { mode, figures, top });
    }
    Ok(out)
}

/// Customers of a mode whose email, name or external id contains `q` (any, when empty),
/// narrowed by `filters`.
pub async fn search_customers(
    core: &Core,
    mode: Mode,
    q: &str,
    filters: &CustomerFilters,
) -> Result<Vec<CustomerRow>> {
    core.store
        .search_customers(mode.as_str(), q, filters, SEARCH_LIMIT)
        .await
}

/// Everything the console's customer page shows, newest first where it is a list.
#[derive(Clone, Debug)]
pub struct CustomerDetail {
    pub customer: CustomerRow,
    pub grants: Vec<GrantRow>,
    /// The latest 50 ledger transactions of the customer's account.
    pub transactions: Vec<TransactionRow>,
    /// The latest 20 usage events, each with what was refunded of it.
    pub usage: Vec<UsageEventRow>,
    /// The latest 20 top-ups.
    pub topups: Vec<TopupRow>,
    pub auto_topup: Option<AutoTopupRow>,
    /// The latest 50 audit entries about the customer.
    pub audit: Vec<AuditRow>,
    /// The plans of the customer's mode, any of which they can be moved to.
    pub plans: Vec<Plan>,
}

/// One customer of either mode, by id; `NotFound` if there is none.
pub async fn customer_detail(core: &Core, id: &str) -> Result<CustomerDetail> {
    let customer = core
        .store
        .customer(id)
        .await?
        .ok_or(Error::NotFound("customer"))?;
    let grants = core.store.grants_of(&customer.account_id).await?;
    let transactions = core
        .store
        .list_transactions(&customer.account_id, None, None, 50)
        .await?;
    let usage = core
        .store
        .list_usage(&UsageFilter {
            mode: customer.mode.to_string(),
            customer_id: Some(customer.id.clone()),
            conversation: None,
            limit: 20,
            ..Default::default()
        })
        .await?;
    let topups = core.store.topups_of(&customer.id, 20).await?;
    let auto_topup = core.store.auto_topup(&customer.id).await?;
    let audit = core
        .store
        .audit_entries(Some(customer.id.as_str()), 50)
        .await?;
    let plans = plans::plans(&core.store, customer.mode).await?;
    Ok(CustomerDetail {
        customer,
        grants,
        transactions,
        usage,
        topups,
        auto_topup,
        audit,
        plans,
    })
}

/// A plan of the catalog with every version it has had, newest first.
#[derive(Clone, Debug)]
pub struct PlanHistory {
    pub plan: Plan,
    pub versions: Vec<PlanVersionRow>,
}

/// A mode's plans, each with its history.
pub async fn plans(core: &Core, mode: Mode) -> Result<Vec<PlanHistory>> {
    let mut out = Vec::new();
    for plan in plans::plans(&core.store, mode).await? {
        let versions = core.store.plan_versions(mode.as_str(), &plan.id).await?;
        out.push(PlanHistory { plan, versions });
    }
    Ok(out)
}

/// A mode's price book: each model at its version in force.
/// A page of the ledger export: one mode's postings in `[from, to)`, after `after`.
pub async fn posting_lines(
    core: &Core,
    mode: Mode,
    from: Option<crate::core::clock::Timestamp>,
    to: Option<crate::core::clock::Timestamp>,
    after: i64,
    limit: i64,
) -> Result<Vec<crate::core::store::PostingLine>> {
    core.store.posting_lines(mode, from, to, after, limit).await
}

pub async fn price_book(core: &Core, mode: Mode) -> Result<Vec<ModelPrice>> {
    plans::models(&core.store, mode).await
}

/// Every version of a mode's price book, newest first, with who made it and why.
pub async fn price_history(core: &Core, mode: Mode) -> Result<Vec<PriceVersion>> {
    plans::price_history(&core.store, mode, None).await
}

/// The operator's API keys of both modes, revoked ones included, newest first.
pub async fn api_keys(core: &Core) -> Result<Vec<ApiKeyRow>> {
    core.store.api_keys().await
}

/// The latest top-ups of both modes together, newest first, of one status if given.
pub async fn topups(core: &Core, status: Option<&str>) -> Result<Vec<TopupRow>> {
    let mut rows = Vec::new();
    for mode in [Mode::Live, Mode::Test] {
        rows.extend(core.store.topups(mode.as_str(), status, LIST_LIMIT).await?);
    }
    rows.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    rows.truncate(LIST_LIMIT as usize);
    Ok(rows)
}

/// The latest subscriptions of both modes together, newest first, of one status if given.
pub async fn subscriptions(
    core: &Core,
    status: Option<SubscriptionStatus>,
) -> Result<Vec<SubscriptionRow>> {
    let mut rows = Vec::new();
    for mode in [Mode::Live, Mode::Test] {
        rows.extend(subscriptions::list(core, mode, status, LIST_LIMIT).await?);
    }
    rows.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    rows.truncate(LIST_LIMIT as usize);
    Ok(rows)
}

/// The webhook inbox, of one status if given.
pub async fn webhook_events(
    core: &Core,
    status: Option<super::vocab::InboxStatus>,
) -> Result<Vec<WebhookEventRow>> {
    core.store.webhook_events(status, LIST_LIMIT).await
}

/// The latest 20 payment reconciliation runs with their reports.
pub async fn reconciliations(core: &Core) -> Result<Vec<ReconciliationRow>> {
    core.store.reconciliations(20).await
}

/// What the console's proxy page shows.
#[derive(Clone, Debug)]
pub struct ProxyActivity {
    /// The latest 100 proxied requests, newest first.
    pub requests: Vec<ProxyRequestRow>,
    /// Each provider's latest reconciliation run, per model and day.
    pub drift: Vec<DriftRow>,
}

/// The latest proxied requests and the providers' latest reconciliation against them.
pub async fn proxy_activity(core: &Core) -> Result<ProxyActivity> {
    Ok(ProxyActivity {
        requests: core.store.recent_proxy_requests(100).await?,
        drift: core.store.latest_drift().await?,
    })
}

/// The console's Notifications page: whether email is on, the endpoints, the newest
/// events with their deliveries, the newest emails.
#[derive(Clone, Debug)]
pub struct Notifications {
    pub email_on: bool,
    pub endpoints: Vec<super::store::EndpointRow>,
    pub events: Vec<(super::store::EventRow, Vec<super::store::DeliveryRow>)>,
    pub emails: Vec<super::store::EmailRow>,
}

/// Events and emails the Notifications page lists.
const OUTBOX_LIMIT: i64 = 50;

pub async fn notifications(core: &Core) -> Result<Notifications> {
    let endpoints = core.store.endpoints(None).await?;
    let mut events = Vec::new();
    for e in core.store.events(None, None, None, OUTBOX_LIMIT).await? {
        let deliveries = core.store.deliveries_of_event(&e.id).await?;
        events.push((e, deliveries));
    }
    let mut emails = core.store.emails(None, OUTBOX_LIMIT).await?;
    for m in &mut emails {
        if m.kind == super::vocab::EmailKind::PasswordReset {
            m.text_body = hide_token(&m.text_body);
            m.html_body = hide_token(&m.html_body);
        }
    }
    Ok(Notifications {
        email_on: core.mailing.enabled,
        endpoints,
        events,
        emails,
    })
}

/// A reset link's token is the recipient's alone: staff see that a link was sent, not it.
fn hide_token(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("token=") {
        out.push_str(&rest[..at + "token=".len()]);
        out.push_str("(hidden)");
        rest = rest[at + "token=".len()..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}
