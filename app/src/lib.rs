//! Tally's web application: Leptos pages and server functions, and, behind the `ssr`
//! feature, the domain core (`core`) that owns money, the ledger and the store.

#[cfg(feature = "ssr")]
pub mod charts;
#[cfg(feature = "ssr")]
pub mod core;
pub mod error;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="tally" href="/pkg/tally.css"/>
        <Title text="Tally"/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"Tally"</a>
                <span class="tagline">"prepaid credits and token metering for AI products"</span>
            </header>
            <main class="page">
                <Routes fallback=|| view! { <pages::NotFound/> }>
                    <Route path=path!("/") view=pages::home::HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/admin") view=pages::admin::AdminHome ssr=SsrMode::Async/>
                    <Route path=path!("/admin/signin") view=pages::admin::AdminSignIn/>
                    <Route path=path!("/admin/forgot") view=|| view! { <pages::reset::ForgotPassword who="staff"/> }/>
                    <Route path=path!("/admin/reset") view=|| view! { <pages::reset::ResetPassword who="staff"/> }/>
                    <Route path=path!("/admin/customers") view=pages::admin::AdminCustomers ssr=SsrMode::Async/>
                    <Route path=path!("/admin/customers/:id") view=pages::admin::AdminCustomer ssr=SsrMode::Async/>
                    <Route path=path!("/admin/plans") view=pages::admin::AdminPlans ssr=SsrMode::Async/>
                    <Route path=path!("/admin/topups") view=pages::admin::AdminTopups ssr=SsrMode::Async/>
                    <Route path=path!("/admin/subscriptions") view=pages::admin::AdminSubscriptions ssr=SsrMode::Async/>
                    <Route path=path!("/admin/prices") view=pages::admin::AdminPrices ssr=SsrMode::Async/>
                    <Route path=path!("/admin/reprice") view=pages::admin::AdminReprice ssr=SsrMode::Async/>
                    <Route path=path!("/admin/keys") view=pages::admin::AdminKeys ssr=SsrMode::Async/>
                    <Route path=path!("/admin/webhooks") view=pages::admin::AdminWebhooks ssr=SsrMode::Async/>
                    <Route path=path!("/admin/notifications") view=pages::admin::AdminNotifications ssr=SsrMode::Async/>
                    <Route path=path!("/admin/reconciliation") view=pages::admin::AdminReconciliation ssr=SsrMode::Async/>
                    <Route path=path!("/admin/proxy") view=pages::admin::AdminProxy ssr=SsrMode::Async/>
                    <Route path=path!("/portal") view=pages::portal::Overview ssr=SsrMode::Async/>
                    <Route path=path!("/portal/signin") view=pages::portal::SignIn/>
                    <Route path=path!("/portal/forgot") view=|| view! { <pages::reset::ForgotPassword who="customer"/> }/>
                    <Route path=path!("/portal/reset") view=|| view! { <pages::reset::ResetPassword who="customer"/> }/>
                    <Route path=path!("/portal/usage") view=pages::portal::Usage ssr=SsrMode::Async/>
                    <Route path=path!("/portal/usage/:id") view=pages::portal::UsageDetail ssr=SsrMode::Async/>
                    <Route path=path!("/portal/receipts/:id") view=pages::portal::Receipt ssr=SsrMode::Async/>
                    <Route path=path!("/portal/billing") view=pages::portal::Billing ssr=SsrMode::Async/>
                    <Route path=path!("/portal/keys") view=pages::portal::Keys ssr=SsrMode::Async/>
                    <Route path=path!("/checkout/simulated/:session") view=pages::checkout::SimulatedCheckout ssr=SsrMode::Async/>
                    <Route path=path!("/checkout/complete") view=pages::checkout::CheckoutComplete ssr=SsrMode::Async/>
                    <Route path=path!("/checkout/cancelled") view=pages::checkout::CheckoutCancelled/>
                </Routes>
            </main>
        </Router>
    }
}
