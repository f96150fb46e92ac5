//! The admin console: the operator's figures, customers (search, detail, grants,
//! corrections, suspension, plan), plans, prices, what-if re-rating, API keys, top-ups,
//! subscriptions, the webhook inbox with replay, reconciliation and the proxy. Every server
//! function checks the staff member's role itself; every action is audited. Actions that
//! stay on their page do not redirect: without JavaScript the server sends the browser back
//! to the page, with it the page's data reloads when the action is done.
//!
//! This file holds what the pages share (staff sign-in and roles, the navigation, the
//! catalog's mode, failures); each page is its own file.

// Server functions take one argument per form field, so forms and functions share names
// (the price preview has eight); the macro's generated client code needs the allowance too.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::error::AppError;

pub mod customers;
pub mod keys;
pub mod notifications;
pub mod overview;
pub mod plans;
pub mod prices;
pub mod proxy;
pub mod reconciliation;
pub mod reprice;
pub mod subscriptions;
pub mod topups;
pub mod webhooks;

pub use customers::{AdminCustomer, AdminCustomers};
pub use keys::AdminKeys;
pub use notifications::AdminNotifications;
pub use overview::AdminHome;
pub use plans::AdminPlans;
pub use prices::AdminPrices;
pub use proxy::AdminProxy;
pub use reconciliation::AdminReconciliation;
pub use reprice::AdminReprice;
pub use subscriptions::AdminSubscriptions;
pub use topups::AdminTopups;
pub use webhooks::AdminWebhooks;

pub const SESSION_ADMIN: &str = "admin";

#[cfg(feature = "ssr")]
pub(crate) fn core() -> crate::core::Core {
    expect_context::<crate::core::Core>()
}

/// The signed-in staff member, if they have `needed`; `Forbidden` otherwise (customers
/// included: a customer session carries no staff id).
#[cfg(feature = "ssr")]
pub async fn require_staff(
    needed: crate::core::admin::Role,
) -> Result<crate::core::admin::Staff, AppError> {
    let session: tower_sessions::Session = leptos_axum::extract()
        .await
        .map_err(|_| AppError::Forbidden)?;
    let id = session
        .get::<String>(SESSION_ADMIN)
        .await
        .map_err(|_| AppError::Unavailable)?
        .ok_or(AppError::Forbidden)?;
    let staff = crate::core::admin::staff(&core(), &id)
        .await
        .map_err(|_| AppError::Forbidden)?;
    staff.require(needed)?;
    Ok(staff)
}

#[server(prefix = "/api", endpoint = "admin_sign_in")]
pub async fn admin_sign_in(email: String, password: String) -> Result<(), AppError> {
    super::password_attempt("staff", &email)?;
    let id = match crate::core::admin::sign_in(&core(), &email, &password).await {
        Ok(id) => id,
        Err(crate::core::error::Error::Unauthenticated) => {
            return Err(AppError::Invalid("Wrong email or password.".into()))
        }
        Err(e) => return Err(e.into()),
    };
    super::start_session(SESSION_ADMIN, id).await?;
    leptos_axum::redirect("/admin");
    Ok(())
}

#[component]
pub fn AdminSignIn() -> impl IntoView {
    let action = ServerAction::<AdminSignIn>::new();
    view! {
        <section class="card narrow">
            <h1>"Admin sign-in"</h1>
            <ActionForm action=action>
                <label>"Email" <input type="email" name="email" autocomplete="username" required/></label>
                <label>"Password" <input type="password" name="password" autocomplete="current-password" required/></label>
                <button type="submit" data-testid="admin-sign-in">"Sign in"</button>
            </ActionForm>
            {move || action.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            <p><a href="/admin/forgot">"Forgot your password?"</a></p>
        </section>
    }
}

#[component]
pub(crate) fn AdminNav() -> impl IntoView {
    view! {
        <nav class="portal-nav" aria-label="Admin">
            <A href="/admin" exact=true>"Overview"</A>
            <A href="/admin/customers">"Customers"</A>
            <A href="/admin/plans">"Plans"</A>
            <A href="/admin/prices">"Prices"</A>
            <A href="/admin/reprice">"What if"</A>
            <A href="/admin/keys">"API keys"</A>
            <A href="/admin/topups">"Top-ups"</A>
            <A href="/admin/subscriptions">"Subscriptions"</A>
            <A href="/admin/webhooks">"Webhooks"</A>
            <A href="/admin/notifications">"Notifications"</A>
            <A href="/admin/reconciliation">"Reconciliation"</A>
            <A href="/admin/proxy">"Proxy"</A>
            <form method="post" action="/portal/signout" class="inline">
                <button type="submit" class="link">"Sign out"</button>
            </form>
        </nav>
    }
}

/// The catalog (plans and prices) a console page shows: each mode has its own; live unless
/// the page asks for test.
#[cfg(feature = "ssr")]
fn catalog_mode(mode: Option<&str>) -> Result<crate::core::ledger::Mode, AppError> {
    match mode.unwrap_or("live") {
        "" | "live" => Ok(crate::core::ledger::Mode::Live),
        "test" => Ok(crate::core::ledger::Mode::Test),
        _ => Err(AppError::Invalid("The mode is test or live.".into())),
    }
}

/// Links between the live and the test catalog of a console page.
#[component]
fn CatalogModes(page: &'static str) -> impl IntoView {
    let query = use_query_map();
    let current = move || query.read().get("mode").unwrap_or_else(|| "live".into());
    view! {
        <p class="modes" data-testid="catalog-modes">
            "Catalog: "
            {["live", "test"].into_iter().map(|m| view! {
                <a href=format!("{page}?mode={m}") aria-current=move || (current() == m).then_some("page")
                    data-testid=format!("catalog-{m}")>{format!("{m} mode")}</a>
                " "
            }).collect_view()}
        </p>
    }
}

pub(crate) fn failure(e: AppError) -> AnyView {
    match e {
        AppError::Forbidden => view! {
            <section class="card narrow">
                <h1>"Staff only"</h1>
                <p><a href="/admin/signin">"Sign in"</a> " with a staff account that may see this."</p>
            </section>
        }
        .into_any(),
        other => view! { <p class="error" role="alert">{other.to_string()}</p> }.into_any(),
    }
}

/// Tokens from a form field: digits with optional separators; empty means `default`.
#[cfg(feature = "ssr")]
fn tokens_field(text: Option<&str>, default: u64, what: &str) -> Result<u64, AppError> {
    let t: String = text
        .unwrap_or("")
        .chars()
        .filter(|c| !matches!(c, ',' | '_' | ' '))
        .collect();
    if t.is_empty() {
        return Ok(default);
    }
    t.parse()
        .map_err(|_| AppError::Invalid(format!("{what} must be a whole number of tokens")))
}

#[cfg(feature = "ssr")]
fn sample_tokens(
    input: Option<&str>,
    output: Option<&str>,
) -> Result<crate::core::pricing::Tokens, AppError> {
    Ok(crate::core::pricing::Tokens {
        input: tokens_field(input, 10_000, "input tokens")?,
        output: tokens_field(output, 2_000, "output tokens")?,
        cache_write: 0,
        cache_read: 0,
        cache_write_1h: 0,
    })
}
