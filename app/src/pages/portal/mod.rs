//! The customer portal: sign-in, overview (balance, spend, charts), usage (every request,
//! filters, CSV, a plain-words price explanation), billing (the plan and its subscription,
//! buy credits, history, settings), receipts and API keys. Every server function finds the
//! customer in the session, never in its arguments, so one customer can never ask for
//! another's data.
//!
//! This file holds what the pages share (the session, sign-in, the navigation, failures,
//! times in the reader's zone); each page is its own file.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::error::AppError;

pub mod billing;
pub mod keys;
pub mod overview;
pub mod plan;
pub mod receipts;
pub mod usage;

pub use billing::Billing;
pub use keys::Keys;
pub use overview::Overview;
pub use receipts::Receipt;
#[cfg(feature = "ssr")]
pub use usage::usage_filter;
pub use usage::{Usage, UsageDetail, UsageQuery};

/// The session key of the signed-in customer.
pub const SESSION_CUSTOMER: &str = "customer";

/// The signed-in customer's id, or `Forbidden`.
#[cfg(feature = "ssr")]
pub async fn session_customer() -> Result<String, AppError> {
    let session: tower_sessions::Session = leptos_axum::extract()
        .await
        .map_err(|_| AppError::Forbidden)?;
    session
        .get::<String>(SESSION_CUSTOMER)
        .await
        .map_err(|_| AppError::Unavailable)?
        .ok_or(AppError::Forbidden)
}

/// An amount as a person types it: "$1,250.00" → "1250.00" (the exact parser does the rest).
#[cfg(feature = "ssr")]
pub(crate) fn typed_amount(text: &str) -> String {
    text.trim().trim_start_matches('$').replace(',', "")
}

#[cfg(feature = "ssr")]
pub(crate) fn core() -> crate::core::Core {
    expect_context::<crate::core::Core>()
}

// ---- sign-in ----

#[server(prefix = "/api", endpoint = "portal_sign_in")]
pub async fn portal_sign_in(email: String, password: String) -> Result<(), AppError> {
    super::password_attempt("customer", &email)?;
    let customer = match crate::core::portal::sign_in(&core(), &email, &password).await {
        Ok(c) => c,
        Err(crate::core::error::Error::Unauthenticated) => {
            return Err(AppError::Invalid("Wrong email or password.".into()))
        }
        Err(e) => return Err(e.into()),
    };
    super::start_session(SESSION_CUSTOMER, customer).await?;
    leptos_axum::redirect("/portal");
    Ok(())
}

#[component]
pub fn SignIn() -> impl IntoView {
    let action = ServerAction::<PortalSignIn>::new();
    let query = use_query_map();
    let link_error = move || query.read().get("error").is_some();
    view! {
        <section class="card narrow">
            <h1>"Sign in to your billing portal"</h1>
            <Show when=link_error>
                <p class="error" role="alert">"That sign-in link is invalid, used or expired. Ask for a new one."</p>
            </Show>
            <ActionForm action=action>
                <label>"Email" <input type="email" name="email" autocomplete="username" required/></label>
                <label>"Password" <input type="password" name="password" autocomplete="current-password" required/></label>
                <button type="submit" data-testid="sign-in">"Sign in"</button>
            </ActionForm>
            {move || action.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            <p><a href="/portal/forgot">"Forgot your password?"</a></p>
            <p class="muted">"You can also sign in with a one-time link from the app you use."</p>
        </section>
    }
}

/// Shown instead of a page when nobody is signed in.
#[component]
fn NeedSignIn() -> impl IntoView {
    view! {
        <section class="card narrow">
            <h1>"Please sign in"</h1>
            <p><a href="/portal/signin">"Sign in"</a> " to see your balance and usage."</p>
        </section>
    }
}

#[component]
pub(crate) fn PortalNav() -> impl IntoView {
    view! {
        <nav class="portal-nav" aria-label="Portal">
            <A href="/portal" exact=true>"Overview"</A>
            <A href="/portal/usage">"Usage"</A>
            <A href="/portal/billing">"Billing"</A>
            <A href="/portal/keys">"API keys"</A>
            <form method="post" action="/portal/signout" class="inline">
                <button type="submit" class="link" data-testid="sign-out">"Sign out"</button>
            </form>
        </nav>
    }
}

pub(crate) fn failure_view(e: AppError) -> AnyView {
    match e {
        AppError::Forbidden => view! { <NeedSignIn/> }.into_any(),
        other => view! { <p class="error" role="alert">{other.to_string()}</p> }.into_any(),
    }
}

/// A moment in the reader's time zone. The server renders it in UTC (what a page without
/// JavaScript shows, labelled so); once hydrated, the browser rewrites it in its own zone.
#[component]
pub fn LocalTime(#[prop(into)] iso: String) -> impl IntoView {
    let utc = {
        let t: String = iso.replace('T', " ").chars().take(16).collect();
        format!("{t} UTC")
    };
    let (text, set_text) = signal(utc);
    #[cfg(feature = "hydrate")]
    {
        let iso = iso.clone();
        Effect::new(move |_| {
            let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(&iso));
            if !date.get_time().is_nan() {
                let local = date.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED);
                set_text.set(String::from(local));
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = set_text;
    view! { <time datetime=iso>{text}</time> }
}

/// An amount as people read it (rounded to the currency's minor unit) and every digit of
/// it, for the hover and for anyone who needs the exact figure.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shown {
    pub rounded: String,
    pub exact: String,
}

#[cfg(feature = "ssr")]
impl From<crate::core::money::Money> for Shown {
    fn from(m: crate::core::money::Money) -> Shown {
        Shown {
            rounded: m.display_rounded(),
            exact: m.display_exact(),
        }
    }
}

/// A rounded amount whose exact figure is its title (shown on hover) and is read out to
/// assistive technology when it differs ("$245.94, exactly $245.936825198").
#[component]
pub fn Amount(shown: Shown) -> impl IntoView {
    let exact = (shown.exact != shown.rounded).then(|| shown.exact.clone());
    let title = exact.clone().map(|e| format!("exactly {e}"));
    let spoken =
        exact.map(|e| view! { <span class="visually-hidden">{format!(", exactly {e}")}</span> });
    view! {
        <span class="amount" title=title>
            {shown.rounded}
            {spoken}
        </span>
    }
}
