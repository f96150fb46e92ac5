//! The outbox: events written with their change, handed out to endpoints and email by a
//! worker, and the deliveries' attempts with back-off.

use serde_json::{json, Value};

use super::email;
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::ids;
use crate::core::store::{
    Attempt, CustomerRow, DeliveryRow, EmailRow, EndpointRow, EventRow, Store, Tx,
};
use crate::core::vocab::{DeliveryStatus, EmailStatus, EndpointStatus, EventType, Mode};

/// How a failed delivery is retried: the wait after the 1st, 2nd, … failed attempt (the
/// Standard Webhooks schedule, about three days in all). After the last, it has failed.
pub const RETRY_SECONDS: [i64; 9] = [
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
];

/// How long one attempt may take before another worker may try it again.
const LEASE_SECONDS: i64 = 60;

/// What emails need besides the event: whether SMTP is on (otherwise they are kept as
/// `off`, to show what would have been sent) and where the portal is.
#[derive(Clone, Debug, Default)]
pub struct Mailing {
    pub enabled: bool,
    pub public_url: String,
}

/// The customer as events name them: Tally's id and the operator's own.
pub fn customer_ref(c: &CustomerRow) -> Value {
    json!({"id": c.id, "external_id": c.external_id})
}

/// Writes an event into the outbox inside the caller's transaction. With a `dedupe` key,
/// only the first event of that key is written (false for the others).
pub async fn emit(
    tx: &mut Tx,
    now: Timestamp,
    mode: Mode,
    event_type: EventType,
    customer: Option<&CustomerRow>,
    data: Value,
    dedupe: Option<String>,
) -> Result<bool> {
    let row = EventRow {
        id: ids::new_id("evt"),
        mode,
        event_type,
        customer_id: customer.map(|c| c.id.clone()),
        data: data.to_string(),
        dedupe_key: dedupe,
        dispatched: false,
        created_at: now,
    };
    let written = tx.insert_event(&row).await?;
    if written {
        tracing::debug!(event = %row.id, kind = %event_type, "outbox event");
    }
    Ok(written)
}

/// The body every delivery of an event carries: the same bytes on every attempt.
pub fn body(e: &EventRow) -> String {
    let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
    json!({
        "id": e.id,
        "type": e.event_type.as_str(),
        "timestamp": e.created_at.to_rfc3339(),
        "livemode": e.mode == Mode::Live,
        "data": data,
    })
    .to_string()
}

/// Hands out up to 100 new events: a delivery to each enabled endpoint of the event's mode
/// that wants its type, and the customer's email when the event has one. One transaction
/// per pass, so an event is handed out completely or not at all. Returns how many.
pub async fn dispatch(store: &Store, now: Timestamp, mailing: &Mailing) -> Result<usize> {
    let mut tx = store.begin().await?;
    let events = tx.undispatched_events(100).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let endpoints: Vec<EndpointRow> = tx.enabled_endpoints().await?;
    let customer_ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e.customer_id.as_deref())
        .collect();
    let customers = tx.customers(&customer_ids).await?;
    for event in &events {
        for endpoint in endpoints
            .iter()
            .filter(|ep| ep.mode == event.mode && ep.wants(event.event_type))
        {
            tx.insert_delivery(&DeliveryRow {
                id: ids::new_id("whd"),
                event_id: event.id.clone(),
                endpoint_id: endpoint.id.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: Some(now),
                last_status: None,
                last_error: None,
                created_at: now,
                delivered_at: None,
            })
            .await?;
        }
        let customer = event
            .customer_id
            .as_deref()
            .and_then(|id| customers.iter().find(|c| c.id == id));
        if let Some(customer) = customer {
            if let Some(message) = email::for_event(event, customer, mailing)? {
                queue(&mut tx, now, mailing, message).await?;
            }
        }
        tx.mark_dispatched(&event.id).await?;
    }
    tx.commit().await?;
    Ok(events.len())
}

/// Queues an email in the caller's transaction: `pending` with SMTP, `off` without.
pub async fn queue(
    tx: &mut Tx,
    now: Timestamp,
    mailing: &Mailing,
    mut m: EmailRow,
) -> Result<bool> {
    m.status = if mailing.enabled {
        EmailStatus::Pending
    } else {
        EmailStatus::Off
    };
    m.next_attempt_at = mailing.enabled.then_some(now);
    m.created_at = now;
    tx.insert_email(&m).await
}

/// One delivery attempt to make: where, with which secret, and the body.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub delivery: DeliveryRow,
    pub url: String,
    pub secret: String,
    pub body: String,
}

/// Claims up to `limit` due deliveries (each leased for a minute, so no other worker or
/// node sends it meanwhile).
pub async fn due(store: &Store, now: Timestamp, limit: i64) -> Result<Vec<Outgoing>> {
    let mut out = Vec::new();
    for d in store.due_deliveries(now, limit).await? {
        if !store
            .claim_delivery(&d.id, now, now.plus_seconds(LEASE_SECONDS))
            .await?
        {
            continue;
        }
        let (Some(endpoint), Some(event)) = (
            store.endpoint(&d.endpoint_id).await?,
            store.event(&d.event_id).await?,
        ) else {
            store
                .record_delivery(
                    &d.id,
                    &Attempt {
                        status: DeliveryStatus::Failed,
                        attempts: d.attempts,
                        next_attempt_at: None,
                        last_status: None,
                        last_error: Some("the endpoint was deleted".into()),
                        done_at: None,
                    },
                )
                .await?;
            continue;
        };
        if endpoint.status == EndpointStatus::Disabled {
            continue;
        }
        out.push(Outgoing {
            delivery: d,
            url: endpoint.url,
            secret: endpoint.secret,
            body: body(&event),
        });
    }
    Ok(out)
}

/// How an attempt ended: the endpoint's HTTP status, or why there was none.
pub type Outcome = std::result::Result<u16, String>;

/// Records an attempt: delivered on a 2xx; otherwise the next attempt by the schedule, or,
/// past its end (or at once on 410 Gone), failed, and then the endpoint is disabled and the
/// staff are told.
pub async fn finish(
    store: &Store,
    now: Timestamp,
    mailing: &Mailing,
    o: &Outgoing,
    outcome: Outcome,
) -> Result<()> {
    let attempts = o.delivery.attempts + 1;
    let (last_status, last_error) = match &outcome {
        Ok(status) => (Some(i64::from(*status)), None),
        Err(e) => (None, Some(e.clone())),
    };
    let delivered = matches!(outcome, Ok(s) if (200..300).contains(&s));
    // 410 Gone: the receiver says the endpoint is no more (Standard Webhooks: disable it).
    let gone = matches!(outcome, Ok(410));
    let retry = RETRY_SECONDS
        .get(attempts as usize - 1)
        .copied()
        .filter(|_| !gone);
    let attempt = match (delivered, retry) {
        (true, _) => Attempt {
            status: DeliveryStatus::Delivered,
            attempts,
            next_attempt_at: None,
            last_status,
            last_error: None,
            done_at: Some(now),
        },
        (false, Some(wait)) => Attempt {
            status: DeliveryStatus::Pending,
            attempts,
            next_attempt_at: Some(now.plus_seconds(wait)),
            last_status,
            last_error: last_error.or_else(|| last_status.map(|s| format!("HTTP {s}"))),
            done_at: None,
        },
        (false, None) => Attempt {
            status: DeliveryStatus::Failed,
            attempts,
            next_attempt_at: None,
            last_status,
            last_error: last_error.or_else(|| last_status.map(|s| format!("HTTP {s}"))),
            done_at: None,
        },
    };
    store.record_delivery(&o.delivery.id, &attempt).await?;
    if attempt.status == DeliveryStatus::Failed {
        let why = if gone {
            "it answered 410 Gone"
        } else {
            "every attempt to deliver an event to it failed for three days"
        };
        super::endpoints::disable_after_failures(store, now, mailing, &o.delivery.endpoint_id, why)
            .await?;
    }
    Ok(())
}

/// Sends a delivery again at once (the console), whatever it ended as.
pub async fn redeliver_in(tx: &mut Tx, now: Timestamp, delivery_id: &str) -> Result<()> {
    if !tx.redeliver(delivery_id, now).await? {
        return Err(crate::core::error::Error::NotFound("delivery"));
    }
    Ok(())
}

/// How a failed email is retried: after 1, 5, 30 minutes, 2 and 6 hours; then failed.
pub const EMAIL_RETRY_SECONDS: [i64; 5] = [60, 300, 1800, 7200, 21600];

/// Claims up to `limit` emails due for sending.
pub async fn due_emails(store: &Store, now: Timestamp, limit: i64) -> Result<Vec<EmailRow>> {
    let mut out = Vec::new();
    for e in store.due_emails(now, limit).await? {
        if store
            .claim_email(&e.id, now, now.plus_seconds(LEASE_SECONDS))
            .await?
        {
            out.push(e);
        }
    }
    Ok(out)
}

/// Records a sending attempt: sent, or retried later, or failed for good (a permanent
/// refusal by the server, or the schedule's end).
pub async fn email_sent(
    store: &Store,
    now: Timestamp,
    e: &EmailRow,
    outcome: std::result::Result<(), (String, bool)>,
) -> Result<()> {
    let attempts = e.attempts + 1;
    let attempt = match outcome {
        Ok(()) => Attempt {
            status: EmailStatus::Sent,
            attempts,
            next_attempt_at: None,
            last_status: None,
            last_error: None,
            done_at: Some(now),
        },
        Err((why, permanent)) => {
            let retry = (!permanent)
                .then(|| EMAIL_RETRY_SECONDS.get(attempts as usize - 1).copied())
                .flatten();
            Attempt {
                status: if retry.is_some() {
                    EmailStatus::Pending
                } else {
                    EmailStatus::Failed
                },
                attempts,
                next_attempt_at: retry.map(|w| now.plus_seconds(w)),
                last_status: None,
                last_error: Some(why),
                done_at: None,
            }
        }
    };
    store.record_email(&e.id, &attempt).await
}

/// The reminder on the day a past-due subscription's grace ends: queued once per grace
/// for each customer whose access ends within a day.
pub async fn remind_grace_ending(
    store: &Store,
    now: Timestamp,
    mailing: &Mailing,
) -> Result<usize> {
    let mut queued = 0;
    for c in store
        .customers_with_grace_ending(now, now.plus_seconds(86_400))
        .await?
    {
        let Some(end) = c.grace_ends_at else {
            continue;
        };
        if !email::wanted(&c, crate::core::vocab::EmailKind::GraceEnding) {
            continue;
        }
        let mut row = email::grace_ending(&c, end, mailing).to_row(
            &c,
            crate::core::vocab::EmailKind::GraceEnding,
            None,
        );
        row.dedupe_key = Some(format!("grace_ending:{}:{}", c.id, end.micros()));
        let mut tx = store.begin().await?;
        if queue(&mut tx, now, mailing, row).await? {
            queued += 1;
        }
        tx.commit().await?;
    }
    Ok(queued)
}
