//! The JSON objects of the contract, built from core rows. Field names here are the
//! contract: add, never rename.

use app::core::currency::Currency;
use app::core::customers;
use app::core::error::Result;
use app::core::metering::{self, Authorization, Recorded};
use app::core::money::Money;
use app::core::plans::Plan;
use app::core::pricing::{LineItem, ModelPrice, Percent, PlanTerms};
use app::core::store::{CustomerRow, TransactionRow, UsageEventRow};
use app::core::vocab::{HoldStatus, Kind, Standing};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct CustomerView {
    /// Always `customer`.
    #[schema(value_type = String, example = "customer")]
    pub object: &'static str,
    pub id: String,
    pub external_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub plan: String,
    /// `active`, `low`, `depleted` or `suspended`.
    pub status: String,
    /// Available balance.
    #[schema(value_type = String, example = "12.500000000")]
    pub balance: Money,
    pub created_at: String,
}

impl CustomerView {
    pub fn new(c: &CustomerRow, plan: &Plan) -> CustomerView {
        let threshold = customers::low_balance_threshold(c, plan);
        CustomerView {
            object: "customer",
            id: c.id.clone(),
            external_id: c.external_id.clone(),
            email: c.email.clone(),
            name: c.name.clone(),
            plan: c.plan_id.clone(),
            status: customers::balance_status(c, threshold).into(),
            balance: c.available,
            created_at: c.created_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    /// Always `balance`.
    #[schema(value_type = String, example = "balance")]
    pub object: &'static str,
    #[schema(value_type = String, example = "12.500000000")]
    pub available: Money,
    #[schema(value_type = String, example = "0.060000000")]
    pub held: Money,
    pub currency: String,
    pub status: String,
    #[schema(value_type = String, example = "1.000000000")]
    pub low_balance_threshold: Money,
}

impl BalanceView {
    pub fn new(c: &CustomerRow, plan: &Plan, currency: &Currency) -> BalanceView {
        let threshold = customers::low_balance_threshold(c, plan);
        BalanceView {
            object: "balance",
            available: c.available,
            held: c.held,
            currency: currency.code().into(),
            status: customers::balance_status(c, threshold).into(),
            low_balance_threshold: threshold,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EntitlementView {
    /// Always `entitlement`.
    #[schema(value_type = String, example = "entitlement")]
    pub object: &'static str,
    pub entitled: bool,
    /// `ok`, `insufficient_credits`, `suspended` or `cap_reached`.
    #[schema(value_type = String)]
    pub reason: Standing,
    #[schema(value_type = String)]
    pub available: Money,
}

#[derive(Serialize, ToSchema)]
pub struct GrantView {
    /// Always `grant`.
    #[schema(value_type = String, example = "grant")]
    pub object: &'static str,
    pub id: String,
    pub customer: String,
    #[schema(value_type = String)]
    pub amount: Money,
    pub reason: Option<String>,
    pub expires_at: Option<String>,
    pub transaction: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct PortalSessionView {
    /// Always `portal_session`.
    #[schema(value_type = String, example = "portal_session")]
    pub object: &'static str,
    pub url: String,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct TransactionView {
    /// Always `transaction`.
    #[schema(value_type = String, example = "transaction")]
    pub object: &'static str,
    pub id: String,
    /// `topup`, `usage`, `grant`, `refund`, `dispute`, `expiry`, `adjustment`, `hold`, `release`.
    #[schema(value_type = String)]
    pub kind: Kind,
    /// The change to the customer's balance; for `hold` and `release`, the amount moved
    /// between available and held.
    #[schema(value_type = String)]
    pub amount: Money,
    pub reference: String,
    pub reason: Option<String>,
    pub created_at: String,
}

impl From<&TransactionRow> for TransactionView {
    fn from(t: &TransactionRow) -> TransactionView {
        TransactionView {
            object: "transaction",
            id: t.id.clone(),
            kind: t.kind,
            amount: t.amount,
            reference: t.reference.clone(),
            reason: t.reason.clone(),
            created_at: t.created_at.to_rfc3339(),
        }
    }
}

#[derive(Clone, Serialize, ToSchema)]
pub struct LineItemView {
    /// `input`, `output`, `cache_write` (five minutes), `cache_write_1h` or `cache_read`.
    pub kind: String,
    pub tokens: u64,
    #[schema(value_type = String, example = "3.000000000")]
    pub rate_per_million: Money,
    #[schema(value_type = String, example = "0.003612000")]
    pub amount: Money,
    /// The price book's rate (or the plan's own rate for the model) before markup and
    /// discounts; null on events priced before it was recorded.
    #[schema(value_type = Option<String>, example = "3.000000000")]
    pub list_rate_per_million: Option<Money>,
    #[schema(value_type = Option<String>, example = "20.00")]
    pub markup_percent: Option<Percent>,
    #[schema(value_type = Option<String>, example = "10.00")]
    pub tier_discount_percent: Option<Percent>,
    #[schema(value_type = Option<String>, example = "0.00")]
    pub batch_discount_percent: Option<Percent>,
}

impl From<&LineItem> for LineItemView {
    fn from(l: &LineItem) -> LineItemView {
        LineItemView {
            kind: l.kind.clone(),
            tokens: l.tokens,
            rate_per_million: l.rate_per_million,
            amount: l.amount,
            list_rate_per_million: l.list_rate_per_million,
            markup_percent: l.markup_percent,
            tier_discount_percent: l.tier_discount_percent,
            batch_discount_percent: l.batch_discount_percent,
        }
    }
}

/// The volume tier an event was priced in.
#[derive(Clone, Serialize, ToSchema)]
pub struct TierView {
    pub from_tokens: u64,
    #[schema(value_type = String, example = "10.00")]
    pub discount_percent: Percent,
}

#[derive(Clone, Serialize, ToSchema)]
pub struct UsageEventView {
    /// Always `usage_event`.
    #[schema(value_type = String, example = "usage_event")]
    pub object: &'static str,
    pub id: String,
    pub customer: String,
    pub model: String,
    pub request_id: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: String,
    pub batch: bool,
    pub occurred_at: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    /// Of `cache_creation_input_tokens`, those written to Anthropic's one-hour cache.
    pub cache_creation_1h_input_tokens: u64,
    #[schema(value_type = String, example = "0.008862000")]
    pub cost: Money,
    pub line_items: Vec<LineItemView>,
    /// The id of the plan version the event was priced with.
    pub plan_version: String,
    /// The id of the price-book version of the model it was priced with.
    pub price_version: Option<String>,
    /// The tier the customer's period was in when the event was priced (null: none).
    pub tier: Option<TierView>,
    pub authorization: Option<String>,
    /// Captured after its authorization expired: charged from available all the same.
    pub authorization_expired: bool,
    /// What a refund gave back of `cost` (`"0.000000000"` when none).
    #[schema(value_type = String, example = "0.000000000")]
    pub refunded_amount: Money,
    pub refund_reason: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: String,
    /// The customer's available balance right after this event (write responses only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub balance: Option<Money>,
    /// Whether the customer may go on (write responses only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entitled: Option<bool>,
}

impl UsageEventView {
    pub fn new(e: &UsageEventRow) -> Result<UsageEventView> {
        let items = metering::line_items(e)?;
        let tier = items.first().and_then(|l| {
            Some(TierView {
                from_tokens: l.tier_from_tokens?,
                discount_percent: l.tier_discount_percent.unwrap_or_default(),
            })
        });
        Ok(UsageEventView {
            object: "usage_event",
            id: e.id.clone(),
            customer: e.customer_id.clone(),
            model: e.model.clone(),
            request_id: e.request_id.clone(),
            outcome: e.outcome.as_str().to_string(),
            batch: e.batch,
            occurred_at: e.occurred_at.to_rfc3339(),
            input_tokens: e.input_tokens,
            output_tokens: e.output_tokens,
            cache_creation_input_tokens: e.cache_creation_input_tokens,
            cache_read_input_tokens: e.cache_read_input_tokens,
            cache_creation_1h_input_tokens: items
                .iter()
                .filter(|l| l.kind == "cache_write_1h")
                .map(|l| l.tokens)
                .sum(),
            cost: e.cost,
            line_items: items.iter().map(LineItemView::from).collect(),
            plan_version: e.plan_version_id.clone(),
            price_version: e.price_version_id.clone(),
            tier,
            authorization: e.authorization_id.clone(),
            authorization_expired: e.authorization_expired,
            refunded_amount: e.refunded_amount,
            refund_reason: e.refund_reason.clone(),
            metadata: e
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok()),
            created_at: e.created_at.to_rfc3339(),
            balance: None,
            entitled: None,
        })
    }

    pub fn recorded(r: &Recorded) -> Result<UsageEventView> {
        let mut v = UsageEventView::new(&r.event)?;
        v.balance = Some(r.balance);
        v.entitled = Some(r.entitled);
        Ok(v)
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuthorizationView {
    /// Always `authorization`.
    #[schema(value_type = String, example = "authorization")]
    pub object: &'static str,
    pub id: String,
    pub customer: String,
    #[schema(value_type = String)]
    pub amount: Money,
    /// `pending`, `captured`, `released` or `expired`.
    #[schema(value_type = String)]
    pub status: HoldStatus,
    pub expires_at: String,
    pub model: Option<String>,
    #[schema(value_type = Option<String>)]
    pub captured_amount: Option<Money>,
    pub created_at: String,
}

impl From<&Authorization> for AuthorizationView {
    fn from(a: &Authorization) -> AuthorizationView {
        AuthorizationView {
            object: "authorization",
            id: a.row.id.clone(),
            customer: a.row.customer_id.clone(),
            amount: a.hold.amount,
            status: a.hold.status,
            expires_at: a.hold.expires_at.to_rfc3339(),
            model: a.row.model.clone(),
            captured_amount: a.hold.captured_amount,
            created_at: a.row.created_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ModelView {
    /// Always `model`.
    #[schema(value_type = String, example = "model")]
    pub object: &'static str,
    pub id: String,
    pub provider: String,
    /// Per million tokens.
    #[schema(value_type = String, example = "3.000000000")]
    pub input: Money,
    #[schema(value_type = String, example = "15.000000000")]
    pub output: Money,
    #[schema(value_type = String, example = "3.750000000")]
    pub cache_write: Money,
    #[schema(value_type = String, example = "0.300000000")]
    pub cache_read: Money,
    /// A write to Anthropic's one-hour cache (twice `input` unless set).
    #[schema(value_type = String, example = "6.000000000")]
    pub cache_write_1h: Money,
    pub batch_discount_percent: u32,
    /// The price-book version in force (each edit is a new one) and its id.
    pub version: i64,
    pub price_version: String,
}

impl From<&ModelPrice> for ModelView {
    fn from(m: &ModelPrice) -> ModelView {
        ModelView {
            object: "model",
            id: m.id.clone(),
            provider: m.provider.clone(),
            input: m.rates.input,
            output: m.rates.output,
            cache_write: m.rates.cache_write,
            cache_read: m.rates.cache_read,
            cache_write_1h: m.rates.cache_write_1h_rate(),
            batch_discount_percent: m.batch_discount_percent,
            version: m.version,
            price_version: m.version_id.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PlanView {
    /// Always `plan`.
    #[schema(value_type = String, example = "plan")]
    pub object: &'static str,
    pub id: String,
    pub name: String,
    pub version: i64,
    pub version_id: String,
    /// The plan's terms in force.
    pub terms: PlanTerms,
    pub created_at: String,
    pub version_created_at: String,
}

impl From<&Plan> for PlanView {
    fn from(p: &Plan) -> PlanView {
        PlanView {
            object: "plan",
            id: p.id.clone(),
            name: p.name.clone(),
            version: p.version,
            version_id: p.version_id.clone(),
            terms: p.terms.clone(),
            created_at: p.created_at.to_rfc3339(),
            version_created_at: p.version_created_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EstimateView {
    /// Always `estimate`.
    #[schema(value_type = String, example = "estimate")]
    pub object: &'static str,
    #[schema(value_type = String)]
    pub cost: Money,
    #[schema(value_type = String)]
    pub available: Money,
    pub fits: bool,
}

/// `{"data": [...], "has_more": bool}`.
#[derive(Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    /// Always `list`.
    #[schema(value_type = String, example = "list")]
    pub object: &'static str,
    pub data: Vec<T>,
    pub has_more: bool,
}

impl<T: ToSchema> List<T> {
    /// Builds a page from up to `limit + 1` rows, newest first; or, when the page ends
    /// before a cursor (`ending_before`), from rows oldest first, turned round.
    pub fn page_of(mut data: Vec<T>, limit: i64, ending_before: bool) -> List<T> {
        let has_more = data.len() as i64 > limit;
        data.truncate(limit as usize);
        if ending_before {
            data.reverse();
        }
        List {
            object: "list",
            data,
            has_more,
        }
    }

    /// Builds a page from up to `limit + 1` rows, newest first.
    pub fn page(data: Vec<T>, limit: i64) -> List<T> {
        List::page_of(data, limit, false)
    }
}

#[derive(Serialize, ToSchema)]
pub struct DataList<T: ToSchema> {
    /// Always `list`.
    #[schema(value_type = String, example = "list")]
    pub object: &'static str,
    pub data: Vec<T>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchItemView {
    pub request_id: Option<String>,
    /// `created`, `duplicate` or `error`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<UsageEventView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
}

/// Every error answer: `{"error": {...}}` (the schema only; `ApiError` writes it).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

/// What went wrong: `type` is the class a client branches on, `code` the precise reason,
/// `param` the field at fault when there is one.
#[derive(Serialize, ToSchema)]
pub struct ErrorObject {
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// Machine-readable, e.g. `invalid`, `resource_missing`, `insufficient_credits`,
    /// `idempotency_key_reused`.
    pub code: String,
    /// For people; may change.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    Conflict,
    InsufficientCredits,
    RateLimited,
    Unavailable,
    Internal,
}

#[derive(Serialize, ToSchema)]
pub struct CheckoutSessionView {
    /// Always `checkout.session`.
    #[schema(value_type = String, example = "checkout.session")]
    pub object: &'static str,
    /// The Checkout Session id (`cs_…`).
    pub id: String,
    /// Where to send the customer: Stripe Checkout, or the simulated checkout page.
    pub url: String,
    #[schema(value_type = String)]
    pub amount: Money,
    pub status: String,
    /// The pending top-up this session pays for.
    pub topup: String,
}
