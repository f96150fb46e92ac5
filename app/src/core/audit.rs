//! Who acts and how it is recorded: staff roles, the actor an audit entry names, the
//! entry itself and the reason every audited change needs. Below the modules that audit
//! their changes (customers, plans, metering, the console), so none of them imports the
//! console to do it.

use super::clock::Timestamp;
use super::error::{Error, Result};
use super::ids;
use super::store::AuditRow;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }
}

/// A signed-in member of staff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staff {
    pub id: String,
    pub email: String,
    pub role: Role,
}

impl Staff {
    /// Fails with `Forbidden` unless this member of staff has `needed` (admin > viewer).
    pub fn require(&self, needed: Role) -> Result<()> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this needs the {} role",
                needed.as_str()
            )))
        }
    }

    pub fn actor(&self) -> String {
        format!("staff:{}", self.email)
    }
}

/// Who made a change, as the audit log names them: a member of staff in the console or an
/// API key through `/v1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    Staff(Staff),
    ApiKey(String),
}

impl Actor {
    pub fn name(&self) -> String {
        match self {
            Actor::Staff(s) => s.actor(),
            Actor::ApiKey(id) => format!("api_key:{id}"),
        }
    }
}

/// An audit entry; the caller inserts it in the same transaction as the change.
pub fn audit_entry(
    actor: &Actor,
    action: &str,
    target: &str,
    reason: &str,
    before: Option<String>,
    after: Option<String>,
    now: Timestamp,
) -> AuditRow {
    AuditRow {
        id: ids::new_id("aud"),
        actor: actor.name(),
        action: action.to_string(),
        target: target.to_string(),
        reason: reason.to_string(),
        before,
        after,
        created_at: now,
    }
}

pub fn reason_of(reason: &str) -> Result<String> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 500 {
        return Err(Error::invalid(
            "reason",
            "a reason (1-500 characters) is required",
        ));
    }
    Ok(r.to_string())
}
