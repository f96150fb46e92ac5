//! Password reset by an emailed one-time link, for customers (portal) and staff (console).
//!
//! Asking always answers the same, whether or not the address is known, so the form
//! cannot be used to learn who has an account. A link carries a random token; only its
//! hash is stored, it works once and for [`LINK_MINUTES`], and using it sets the new
//! password in the same transaction that spends the link. The email is queued in the
//! transaction that stores the link (the outbox), so there is no link without its email.

use super::error::{Error, Result};
use super::keys;
use super::ledger::Mode;
use super::notify::{email, outbox};
use super::portal::MIN_PASSWORD_CHARS;
use super::vocab::EmailKind;
use super::Core;

/// How long a reset link works.
pub const LINK_MINUTES: i64 = 30;

/// Whose password a link resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Customer,
    Staff,
}

impl Subject {
    fn as_str(self) -> &'static str {
        match self {
            Subject::Customer => "customer",
            Subject::Staff => "staff",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Subject::Customer => "/portal/reset",
            Subject::Staff => "/admin/reset",
        }
    }
}

/// Emails a reset link to each account of `subject` with this address (a customer may
/// have one in each mode). Answers the same whether or not there is one.
pub async fn request(core: &Core, subject: Subject, address: &str) -> Result<()> {
    let address = address.trim();
    if address.is_empty() || address.len() > 320 || !address.contains('@') {
        return Err(Error::invalid("email", "an email address is needed"));
    }
    let accounts: Vec<(String, Mode, String)> = match subject {
        Subject::Customer => core
            .store
            .customers_by_email(address)
            .await?
            .into_iter()
            .map(|c| (c.id, c.mode, c.name.unwrap_or_default()))
            .collect(),
        Subject::Staff => core
            .store
            .admin_by_email(&address.to_lowercase())
            .await?
            .map(|a| (a.id, Mode::Live, String::new()))
            .into_iter()
            .collect(),
    };
    let now = core.clock.now();
    for (id, mode, name) in accounts {
        let token = keys::random_token()?;
        let link = format!(
            "{}{}?token={token}",
            core.mailing.public_url,
            subject.path()
        );
        let greeting = if name.trim().is_empty() {
            "Hello,".to_string()
        } else {
            format!("Hello {name},")
        };
        let words = email::password_reset(&greeting, &link, LINK_MINUTES);
        let mut tx = core.store.begin().await?;
        tx.insert_password_reset(
            &keys::hash_secret(&token),
            subject.as_str(),
            &id,
            now.plus_seconds(LINK_MINUTES * 60),
            now,
        )
        .await?;
        let customer = (subject == Subject::Customer).then_some(id.as_str());
        let row = words.email(mode, customer, EmailKind::PasswordReset, address);
        outbox::queue(&mut tx, now, &core.mailing, row).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Uses a link: sets the new password and answers whose it is (to sign them in);
/// `Unauthenticated` for a link that is unknown, used or expired.
pub async fn complete(
    core: &Core,
    subject: Subject,
    token: &str,
    password: &str,
) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 1024 {
        return Err(Error::invalid(
            "password",
            format!("a password has at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if token.is_empty() || token.len() > 128 {
        return Err(Error::Unauthenticated);
    }
    let hash = super::passwords::hash(password).await?;
    let mut tx = core.store.begin().await?;
    let id = tx
        .take_password_reset(
            &keys::hash_secret(token),
            subject.as_str(),
            core.clock.now(),
        )
        .await?
        .ok_or(Error::Unauthenticated)?;
    match subject {
        Subject::Customer => tx.set_customer_password(&id, &hash).await?,
        Subject::Staff => tx.set_staff_password(&id, &hash).await?,
    }
    tx.commit().await?;
    Ok(id)
}
