//! The operator's webhook endpoints: created with a URL and the event types it wants,
//! answered once with its signing secret; disabled when deliveries to it fail for the
//! whole retry window, and the staff emailed.

use super::outbox::{queue, Mailing};
use super::sign;
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::ids;
use crate::core::store::{EndpointRow, Store, Tx};
use crate::core::vocab::{EmailKind, EndpointStatus, EventType, Mode};
use crate::core::Core;

/// What a new endpoint needs.
#[derive(Clone, Debug)]
pub struct NewEndpoint {
    pub url: String,
    /// Event types; `*` for every one.
    pub events: Vec<String>,
}

fn check(new: &NewEndpoint) -> Result<()> {
    let url = new.url.trim();
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            "url",
            "url must be an http:// or https:// address of at most 2048 characters",
        ));
    }
    if new.events.is_empty() || new.events.len() > 64 {
        return Err(Error::invalid(
            "events",
            "events must list 1-64 event types",
        ));
    }
    for e in &new.events {
        if e != "*" && EventType::parse(e).is_none() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(Error::invalid(
                "events",
                format!("unknown event type {e:?}; known: * or {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Creates an endpoint; the row carries its secret (shown once).
pub async fn create(core: &Core, mode: Mode, new: &NewEndpoint) -> Result<EndpointRow> {
    let mut tx = core.store.begin().await?;
    let row = create_in(&mut tx, core.clock.now(), mode, new).await?;
    tx.commit().await?;
    Ok(row)
}

/// [`create`] inside the caller's transaction (the console's, with its audit entry).
pub async fn create_in(
    tx: &mut Tx,
    now: Timestamp,
    mode: Mode,
    new: &NewEndpoint,
) -> Result<EndpointRow> {
    check(new)?;
    let mut events = new.events.clone();
    events.sort();
    events.dedup();
    let row = EndpointRow {
        id: ids::new_id("we"),
        mode,
        url: new.url.trim().to_string(),
        events,
        secret: sign::new_secret()?,
        status: EndpointStatus::Enabled,
        disabled_reason: None,
        created_at: now,
    };
    tx.insert_endpoint(&row).await?;
    Ok(row)
}

/// An endpoint of `mode` (another mode's is not found).
pub async fn get(core: &Core, mode: Mode, id: &str) -> Result<EndpointRow> {
    match core.store.endpoint(id).await? {
        Some(e) if e.mode == mode => Ok(e),
        _ => Err(Error::NotFound("webhook endpoint")),
    }
}

pub async fn list(core: &Core, mode: Mode) -> Result<Vec<EndpointRow>> {
    core.store.endpoints(Some(mode)).await
}

pub async fn delete(core: &Core, mode: Mode, id: &str) -> Result<EndpointRow> {
    let e = get(core, mode, id).await?;
    let mut tx = core.store.begin().await?;
    delete_in(&mut tx, core.clock.now(), id).await?;
    tx.commit().await?;
    Ok(e)
}

/// Deletes an endpoint in the caller's transaction; what was pending to it fails.
pub async fn delete_in(tx: &mut Tx, now: Timestamp, id: &str) -> Result<()> {
    tx.fail_pending_deliveries(id, "the endpoint was deleted")
        .await?;
    if !tx.delete_endpoint(id, now).await? {
        return Err(Error::NotFound("webhook endpoint"));
    }
    Ok(())
}

/// Enables an endpoint again (the console, after the operator fixed it).
pub async fn enable_in(tx: &mut Tx, id: &str) -> Result<()> {
    if !tx
        .set_endpoint_status(id, EndpointStatus::Enabled, None)
        .await?
    {
        return Err(Error::NotFound("webhook endpoint"));
    }
    Ok(())
}

/// A delivery to the endpoint failed for the whole retry window (or the endpoint answered
/// 410 Gone): the endpoint is disabled,
/// what was still pending to it fails, and each admin is emailed (or, without SMTP, the
/// email is kept for the console). The console shows why.
pub async fn disable_after_failures(
    store: &Store,
    now: Timestamp,
    mailing: &Mailing,
    endpoint_id: &str,
    why: &str,
) -> Result<()> {
    let Some(endpoint) = store.endpoint(endpoint_id).await? else {
        return Ok(());
    };
    if endpoint.status == EndpointStatus::Disabled {
        return Ok(());
    }
    let reason = format!("disabled on {}: {why}", now.to_rfc3339());
    let mut tx = store.begin().await?;
    tx.set_endpoint_status(endpoint_id, EndpointStatus::Disabled, Some(&reason))
        .await?;
    tx.fail_pending_deliveries(endpoint_id, "the endpoint was disabled")
        .await?;
    for to in tx.staff_emails().await? {
        let text = format!(
            "Tally disabled the {} webhook endpoint {} ({}): {why}.\n\nFix the receiver, \
             then enable it again and redeliver the failed events from the console's \
             Notifications page.\n",
            endpoint.mode, endpoint.id, endpoint.url
        );
        let words = super::email::Words {
            subject: format!("Webhook endpoint {} disabled", endpoint.id),
            paragraphs: vec![text],
            link: None,
            footer: None,
        };
        let mut row = words.email(endpoint.mode, None, EmailKind::EndpointDisabled, &to);
        row.dedupe_key = Some(format!(
            "endpoint_disabled:{}:{to}:{}",
            endpoint.id,
            now.micros()
        ));
        queue(&mut tx, now, mailing, row).await?;
    }
    tx.commit().await?;
    tracing::warn!(endpoint = %endpoint.id, url = %endpoint.url, "webhook endpoint disabled after three days of failures");
    Ok(())
}
