//! The customer portal. For now only the landing of a one-time sign-in link; the signed-in
//! pages arrive with the portal issue.

use leptos::prelude::*;

#[component]
pub fn PortalLogin() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"Customer portal"</h1>
            <p>
                "This sign-in link is valid. The customer portal (balance, usage and buying "
                "credits) is not available in this version of Tally yet."
            </p>
        </section>
    }
}
