//! The pages of the portal and the admin console.

pub mod admin;
pub mod checkout;
pub mod home;
pub mod portal;
pub mod reset;

use leptos::prelude::*;

/// Counts one password attempt for `email` as `who` (customer or staff) against the
/// running core's [`crate::core::limits::SignInLimits`].
#[cfg(feature = "ssr")]
pub fn password_attempt(who: &str, email: &str) -> Result<(), crate::error::AppError> {
    let core = leptos::prelude::expect_context::<crate::core::Core>();
    if core.sign_in_limits.password_attempt(who, email) {
        Ok(())
    } else {
        Err(crate::error::AppError::Invalid(
            "Too many attempts; wait a minute and try again.".into(),
        ))
    }
}

/// Signs a browser in: a new session id (no fixation), then `key = value` in it.
#[cfg(feature = "ssr")]
pub async fn start_session(key: &str, value: String) -> Result<(), crate::error::AppError> {
    use crate::error::AppError;
    let session: tower_sessions::Session = leptos_axum::extract()
        .await
        .map_err(|_| AppError::Unavailable)?;
    session
        .cycle_id()
        .await
        .map_err(|_| AppError::Unavailable)?;
    session
        .insert(key, value)
        .await
        .map_err(|_| AppError::Unavailable)
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum_status_not_found());
        }
    }
    view! {
        <section class="card">
            <h1>"Page not found"</h1>
            <p><a href="/">"Back to the overview"</a></p>
        </section>
    }
}

#[cfg(feature = "ssr")]
fn axum_status_not_found() -> http::StatusCode {
    http::StatusCode::NOT_FOUND
}
