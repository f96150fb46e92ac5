//! Emails to customers: which event gets one, and its words, in plain text and HTML.
//! Rendered when queued, so the console shows exactly what was (or would have been) sent.
//! Nothing in an email names anyone but its recipient.

use serde_json::Value;

use super::outbox::Mailing;
use crate::core::clock::Timestamp;
use crate::core::currency;
use crate::core::error::Result;
use crate::core::ids;
use crate::core::money::Money;
use crate::core::store::{CustomerRow, EmailRow, EventRow};
use crate::core::vocab::{EmailKind, EmailStatus, EventType, Mode};

/// The email an event sends its customer, if any.
pub fn kind_of(event: EventType) -> Option<EmailKind> {
    match event {
        EventType::BalanceLow => Some(EmailKind::BalanceLow),
        EventType::BalanceDepleted => Some(EmailKind::BalanceDepleted),
        EventType::BudgetReached => Some(EmailKind::BudgetReached),
        EventType::TopupSucceeded => Some(EmailKind::Receipt),
        EventType::AutoTopupFailed => Some(EmailKind::AutoTopupFailed),
        EventType::SubscriptionPastDue => Some(EmailKind::RenewalFailed),
        _ => None,
    }
}

/// Whether the customer gets emails of this kind: an address, and not turned off.
pub fn wanted(c: &CustomerRow, kind: EmailKind) -> bool {
    let has_address = c.email.as_deref().is_some_and(|e| !e.trim().is_empty());
    has_address && !(kind.optional() && c.email_opt_out.contains(&kind))
}

/// HTML-escapes text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An email's words: a subject, paragraphs, and a link to act on.
pub struct Words {
    pub subject: String,
    pub paragraphs: Vec<String>,
    pub link: Option<(String, String)>,
    pub footer: Option<String>,
}

impl Words {
    pub fn text(&self) -> String {
        let mut t = String::new();
        for p in &self.paragraphs {
            t.push_str(p);
            t.push_str("\n\n");
        }
        if let Some((label, url)) = &self.link {
            t.push_str(&format!("{label}: {url}\n\n"));
        }
        if let Some(f) = &self.footer {
            t.push_str(&format!("--\n{f}\n"));
        }
        t
    }

    pub fn html(&self) -> String {
        let mut h = String::from(
            "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">",
        );
        for p in &self.paragraphs {
            h.push_str(&format!("<p>{}</p>", escape(p)));
        }
        if let Some((label, url)) = &self.link {
            h.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>",
                escape(url),
                escape(label)
            ));
        }
        if let Some(f) = &self.footer {
            h.push_str(&format!(
                "<p style=\"color:#666;font-size:smaller\">{}</p>",
                escape(f)
            ));
        }
        h.push_str("</body></html>");
        h
    }

    /// The queued row for a customer (status and times are set by `outbox::queue`).
    pub fn to_row(&self, c: &CustomerRow, kind: EmailKind, event_id: Option<&str>) -> EmailRow {
        let mut row = self.email(
            c.mode,
            Some(&c.id),
            kind,
            c.email.as_deref().unwrap_or_default(),
        );
        row.event_id = event_id.map(str::to_string);
        row.dedupe_key = event_id.map(|e| format!("event:{e}"));
        row
    }

    /// The queued row for any recipient (a customer, or a staff member when `customer` is
    /// None); status and times are set by `outbox::queue`.
    pub fn email(&self, mode: Mode, customer: Option<&str>, kind: EmailKind, to: &str) -> EmailRow {
        EmailRow {
            id: ids::new_id("eml"),
            mode,
            customer_id: customer.map(str::to_string),
            kind,
            to_address: to.to_string(),
            subject: self.subject.clone(),
            text_body: self.text(),
            html_body: self.html(),
            event_id: None,
            dedupe_key: None,
            status: EmailStatus::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            created_at: Timestamp::from_micros(0),
            sent_at: None,
        }
    }
}

fn money_of(data: &Value, field: &str) -> String {
    let shown = currency::shown();
    data.get(field)
        .and_then(Value::as_str)
        .and_then(|s| Money::parse(s).ok())
        .map(|m| shown.display(m))
        .unwrap_or_else(|| "-".into())
}

fn greeting(c: &CustomerRow) -> String {
    match c.name.as_deref().filter(|n| !n.trim().is_empty()) {
        Some(name) => format!("Hello {name},"),
        None => "Hello,".into(),
    }
}

/// The email an event sends its customer, when it has one and they want it.
pub fn for_event(event: &EventRow, c: &CustomerRow, mailing: &Mailing) -> Result<Option<EmailRow>> {
    let Some(kind) = kind_of(event.event_type) else {
        return Ok(None);
    };
    if !wanted(c, kind) {
        return Ok(None);
    }
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let billing = format!("{}/portal/billing", mailing.public_url);
    let optional_footer = Some(format!(
        "You can choose which of these emails you get on your billing page: {billing}"
    ));
    let words = match kind {
        EmailKind::BalanceLow => Words {
            subject: "Your balance is running low".into(),
            paragraphs: vec![
                greeting(c),
                format!(
                    "Your balance is {}, under your alert threshold of {}.",
                    money_of(&data, "available"),
                    money_of(&data, "low_balance_threshold")
                ),
                "Buy credits or turn on auto top-up so your requests keep working.".into(),
            ],
            link: Some(("Buy credits".into(), billing.clone())),
            footer: optional_footer,
        },
        EmailKind::BalanceDepleted => Words {
            subject: "Your balance is used up".into(),
            paragraphs: vec![
                greeting(c),
                format!(
                    "Your balance is {}: new requests are refused until you add credits.",
                    money_of(&data, "available")
                ),
            ],
            link: Some(("Buy credits".into(), billing.clone())),
            footer: optional_footer,
        },
        EmailKind::BudgetReached => Words {
            subject: "You reached your monthly budget".into(),
            paragraphs: vec![
                greeting(c),
                format!(
                    "You have spent {} this month, reaching the budget of {} you set.",
                    money_of(&data, "spent"),
                    money_of(&data, "budget")
                ),
                if data.get("hard_stop").and_then(Value::as_bool) == Some(true) {
                    "New requests are refused until next month or until you raise the budget."
                        .into()
                } else {
                    "This is an alert only: your requests keep working.".into()
                },
            ],
            link: Some(("Budget settings".into(), billing.clone())),
            footer: optional_footer,
        },
        EmailKind::Receipt => Words {
            subject: format!("Receipt: {} of credits", money_of(&data, "amount")),
            paragraphs: vec![
                greeting(c),
                format!(
                    "Thank you: {} of credits were added to your balance.",
                    money_of(&data, "amount")
                ),
                format!(
                    "Top-up {}.",
                    data.get("topup").and_then(Value::as_str).unwrap_or("-")
                ),
            ],
            link: Some((
                "Your receipt".into(),
                format!(
                    "{}/portal/receipts/{}",
                    mailing.public_url,
                    data.get("topup").and_then(Value::as_str).unwrap_or("")
                ),
            )),
            footer: optional_footer,
        },
        EmailKind::AutoTopupFailed => Words {
            subject: "Your automatic top-up failed".into(),
            paragraphs: vec![
                greeting(c),
                format!(
                    "We could not charge {} to your saved card: {}",
                    money_of(&data, "amount"),
                    data.get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("the payment failed")
                ),
                "Auto top-up is paused until you save its settings again or buy credits.".into(),
            ],
            link: Some(("Update your payment".into(), billing.clone())),
            footer: None,
        },
        EmailKind::RenewalFailed => Words {
            subject: "Your subscription renewal failed".into(),
            paragraphs: vec![
                greeting(c),
                "The payment for your subscription's renewal failed.".into(),
                match data.get("grace_ends_at").and_then(Value::as_str) {
                    Some(end) => format!(
                        "Your access continues until {end}; after that, requests are refused \
                         until the invoice is paid."
                    ),
                    None => "Requests are refused until the invoice is paid.".into(),
                },
            ],
            link: Some(("Update your card and pay".into(), billing.clone())),
            footer: None,
        },
        EmailKind::GraceEnding | EmailKind::PasswordReset | EmailKind::EndpointDisabled => {
            return Ok(None)
        }
    };
    Ok(Some(words.to_row(c, kind, Some(&event.id))))
}

/// The reminder on the day a past-due subscription's grace ends.
pub fn grace_ending(c: &CustomerRow, grace_ends_at: Timestamp, mailing: &Mailing) -> Words {
    Words {
        subject: "Your access ends today".into(),
        paragraphs: vec![
            greeting(c),
            format!(
                "Your subscription's renewal is still unpaid. Your access ends at {}; after \
                 that, requests are refused until the invoice is paid.",
                grace_ends_at.to_rfc3339()
            ),
        ],
        link: Some((
            "Update your card and pay".into(),
            format!("{}/portal/billing", mailing.public_url),
        )),
        footer: None,
    }
}

/// A password reset link.
pub fn password_reset(greeting_line: &str, link: &str, minutes: i64) -> Words {
    Words {
        subject: "Reset your password".into(),
        paragraphs: vec![
            greeting_line.to_string(),
            format!(
                "Someone asked to reset the password of this account. The link below works \
                 once, for {minutes} minutes. If it was not you, ignore this email: nothing \
                 changes."
            ),
        ],
        link: Some(("Choose a new password".into(), link.to_string())),
        footer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let w = Words {
            subject: "s".into(),
            paragraphs: vec!["<b>".into()],
            link: Some(("go".into(), "http://x/?a=1&b=2".into())),
            footer: None,
        };
        assert!(w.html().contains("<p>&lt;b&gt;</p>"));
        assert!(w.html().contains("href=\"http://x/?a=1&amp;b=2\""));
        assert!(w.text().contains("go: http://x/?a=1&b=2"));
    }
}
