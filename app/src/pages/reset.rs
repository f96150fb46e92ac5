//! Password reset pages for the portal and the console: ask for a link by email, then
//! choose a new password with the link's token (the rules are `core::password_reset`).

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::error::AppError;

/// Whose password: `customer` (portal) or `staff` (console).
#[cfg(feature = "ssr")]
fn subject(who: &str) -> Result<crate::core::password_reset::Subject, AppError> {
    use crate::core::password_reset::Subject;
    match who {
        "customer" => Ok(Subject::Customer),
        "staff" => Ok(Subject::Staff),
        _ => Err(AppError::Invalid("unknown account kind".into())),
    }
}

/// Emails a reset link if the address has an account; answers the same either way.
#[server(prefix = "/api", endpoint = "password_forgot")]
pub async fn password_forgot(who: String, email: String) -> Result<(), AppError> {
    let subject = subject(&who)?;
    let core = expect_context::<crate::core::Core>();
    if !core.sign_in_limits.reset_request(&who, &email) {
        return Err(AppError::Invalid(
            "Too many requests; wait a minute and try again.".into(),
        ));
    }
    crate::core::password_reset::request(&core, subject, &email).await?;
    // The answer is a page, not only the action's value: a form sent before the page
    // hydrated (or without JavaScript) lands here too and shows the same confirmation.
    leptos_axum::redirect(match subject {
        crate::core::password_reset::Subject::Customer => "/portal/forgot?sent=1",
        crate::core::password_reset::Subject::Staff => "/admin/forgot?sent=1",
    });
    Ok(())
}

/// Sets the new password with a link's token and signs the person in.
#[server(prefix = "/api", endpoint = "password_reset")]
pub async fn password_reset(who: String, token: String, password: String) -> Result<(), AppError> {
    let subject = subject(&who)?;
    let core = expect_context::<crate::core::Core>();
    let id = match crate::core::password_reset::complete(&core, subject, &token, &password).await {
        Ok(id) => id,
        Err(crate::core::error::Error::Unauthenticated) => {
            return Err(AppError::Invalid(
                "That link is invalid, used or expired. Ask for a new one.".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let (session, home) = match subject {
        crate::core::password_reset::Subject::Customer => {
            (super::portal::SESSION_CUSTOMER, "/portal")
        }
        crate::core::password_reset::Subject::Staff => (super::admin::SESSION_ADMIN, "/admin"),
    };
    super::start_session(session, id).await?;
    leptos_axum::redirect(home);
    Ok(())
}

/// "Forgot your password?": asks for the address a link goes to.
#[component]
pub fn ForgotPassword(who: &'static str) -> impl IntoView {
    let action = ServerAction::<PasswordForgot>::new();
    let query = use_query_map();
    let sent =
        move || matches!(action.value().get(), Some(Ok(()))) || query.read().get("sent").is_some();
    view! {
        <section class="card narrow">
            <h1>"Reset your password"</h1>
            <ActionForm action=action>
                <input type="hidden" name="who" value=who/>
                <label>"Email" <input type="email" name="email" autocomplete="username" required/></label>
                <button type="submit" data-testid="send-reset">"Email me a link"</button>
            </ActionForm>
            <Show when=sent>
                <p class="ok" role="status" data-testid="reset-sent">
                    "If an account uses that address, a link to choose a new password is on its way. It works once, for 30 minutes."
                </p>
            </Show>
            {move || action.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
        </section>
    }
}

/// The page a reset link opens: choose a new password.
#[component]
pub fn ResetPassword(who: &'static str) -> impl IntoView {
    let action = ServerAction::<PasswordReset>::new();
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    view! {
        <section class="card narrow">
            <h1>"Choose a new password"</h1>
            <ActionForm action=action>
                <input type="hidden" name="who" value=who/>
                <input type="hidden" name="token" value=token/>
                <label>"New password (at least 10 characters)"
                    <input type="password" name="password" autocomplete="new-password" minlength="10" required/>
                </label>
                <button type="submit" data-testid="set-new-password">"Set password and sign in"</button>
            </ActionForm>
            {move || action.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
        </section>
    }
}
