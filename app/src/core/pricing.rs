//! Pricing: pure functions from (model rates, plan terms, tokens, outcome) to line items.
//!
//! A line item costs `rate_per_million × tokens / 1_000_000`, times the plan's markup, the
//! tier's discount and the batch discount, all as one exact fraction in 128-bit integers,
//! rounded once, half up, to a nano-unit. A request's cost is the sum of its line items.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::clock::Timestamp;
use super::error::{Error, Result};
use super::money::{Money, NANOS_PER_CENT, NANOS_PER_UNIT};

/// Tokens are counted below 2⁴⁰ per class per event (the API's limit).
pub const MAX_TOKENS: u64 = 1 << 40;

/// Prices per million tokens, in nano-units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rates {
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^[0-9]{1,7}(\\.[0-9]{1,9})?$"))]
    pub input: Money,
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^[0-9]{1,7}(\\.[0-9]{1,9})?$"))]
    pub output: Money,
    /// A cache write (Anthropic's five-minute cache; OpenAI's cache writes).
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^[0-9]{1,7}(\\.[0-9]{1,9})?$"))]
    pub cache_write: Money,
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^[0-9]{1,7}(\\.[0-9]{1,9})?$"))]
    pub cache_read: Money,
    /// A write to Anthropic's one-hour cache; when absent, twice the input rate (Anthropic's
    /// published price for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<String>, pattern = "^[0-9]{1,7}(\\.[0-9]{1,9})?$"))]
    pub cache_write_1h: Option<Money>,
}

/// The highest rate per million tokens a price book or plan may set: $9,999,999.999999999
/// (about 15,000 times the dearest model's today). It keeps every price the API shows
/// representable: a million tokens at this rate with the largest markup (1000 %) is about
/// 1.1 × 10^17 nano-units, far inside `i64`.
pub const MAX_RATE: Money = Money::from_nanos(9_999_999_999_999_999);

impl Rates {
    /// Every rate between zero and [`MAX_RATE`] (the one-hour cache write's too, when set).
    pub fn check(&self, param: &str) -> Result<()> {
        let all = [
            Some(self.input),
            Some(self.output),
            Some(self.cache_write),
            Some(self.cache_read),
            self.cache_write_1h,
        ];
        if all
            .into_iter()
            .flatten()
            .any(|r| r.is_negative() || r > MAX_RATE)
        {
            return Err(Error::invalid(
                param,
                format!("{param}: a rate per million tokens is 0 to 9999999.999999999"),
            ));
        }
        Ok(())
    }

    /// The one-hour cache write rate in force.
    pub fn cache_write_1h_rate(&self) -> Money {
        self.cache_write_1h
            .unwrap_or_else(|| Money::from_nanos(self.input.nanos().saturating_mul(2)))
    }
}

/// A model of the price book.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPrice {
    pub id: String,
    pub provider: String,
    pub rates: Rates,
    pub batch_discount_percent: u32,
    /// The price-book version these rates are (empty for a proposal not yet saved).
    pub version_id: String,
    pub version: i64,
    /// When this version took effect.
    pub since: Timestamp,
}

impl ModelPrice {
    /// Rates not (yet) in the price book: a proposal, or a test's fixture.
    pub fn proposed(id: &str, provider: &str, rates: Rates, batch_discount_percent: u32) -> Self {
        ModelPrice {
            id: id.to_string(),
            provider: provider.to_string(),
            rates,
            batch_discount_percent,
            version_id: String::new(),
            version: 0,
            since: Timestamp::from_micros(0),
        }
    }
}

/// The four disjoint token classes of one request, as Anthropic reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_write: u64,
    pub cache_read: u64,
    /// Of `cache_write`, the tokens written to Anthropic's one-hour cache (the rest were
    /// written for five minutes): priced at the one-hour write rate.
    #[serde(default)]
    pub cache_write_1h: u64,
}

impl Tokens {
    pub fn total(&self) -> u64 {
        self.input + self.output + self.cache_write + self.cache_read
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "succeeded" => Some(Outcome::Succeeded),
            "failed" => Some(Outcome::Failed),
            "cancelled" => Some(Outcome::Cancelled),
            _ => None,
        }
    }
}

/// What a failed request is charged for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailedRequestPolicy {
    /// Input and cache tokens, not output (the default).
    #[default]
    ChargeInput,
    ChargeAll,
    ChargeNothing,
}

/// A graduated tier: from `from_tokens` used in the billing period on, events are priced
/// with `discount_percent` off. The tier is the one the period's usage is in when the event
/// arrives, so it is known at every event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tier {
    #[cfg_attr(feature = "ssr", schema(maximum = 1_099_511_627_775_u64))]
    pub from_tokens: u64,
    /// At most 100, up to two decimals.
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^(100(\\.00?)?|[0-9]{1,2}(\\.[0-9]{1,2})?)$"))]
    pub discount_percent: Percent,
}

/// A percentage with up to two decimals, kept as basis points ("12.5" = 1250).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(pub i64);

impl Percent {
    pub fn parse(s: &str) -> Option<Percent> {
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty()
            || whole.len() > 6
            || frac.len() > 2
            || (s.contains('.') && frac.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: i64 = whole.parse().ok()?;
        let mut frac_bp: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        if frac.len() == 1 {
            frac_bp *= 10;
        }
        Some(Percent(whole * 100 + frac_bp))
    }

    pub fn basis_points(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Percent, D::Error> {
        let s = String::deserialize(d)?;
        Percent::parse(&s).ok_or_else(|| {
            serde::de::Error::custom("a percentage like \"15\" or \"12.5\" (at most 2 decimals)")
        })
    }
}

fn default_hold_lifetime() -> u32 {
    600
}

/// The terms of one plan version. Stored as JSON; every field has a default so `{}` is
/// the standard plan (list prices).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanTerms {
    /// Added to list prices (ignored for models the plan sets its own rates for).
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^(1000(\\.00?)?|[0-9]{1,3}(\\.[0-9]{1,2})?)$"))]
    pub markup_percent: Percent,
    /// The plan's own rates per model, replacing list prices.
    #[serde(default)]
    pub rates: BTreeMap<String, Rates>,
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Credits granted for each monthly period: when the period's invoice is paid on a
    /// plan with a recurring fee, at the start of each calendar month otherwise.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^[0-9]{1,9}(\\.[0-9]{1,9})?$"))]
    pub included_credits: Money,
    /// The monthly fee of a subscription plan, charged by Stripe Billing; zero: the plan
    /// is not sold as a subscription.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^[0-9]{1,6}(\\.[0-9]{1,2}0{0,7})?$"))]
    pub recurring_fee: Money,
    /// Whether a period's included credits outlive the period (otherwise they expire at
    /// its end).
    #[serde(default)]
    pub rollover: bool,
    /// Days of access after a failed renewal before the customer is refused.
    #[serde(default = "default_grace_days")]
    #[cfg_attr(feature = "ssr", schema(maximum = 60))]
    pub grace_days: u32,
    /// The models the plan may use; None: every priced model.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(min_items = 1, max_items = 500))]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<String>, pattern = "^[0-9]{1,9}(\\.[0-9]{1,9})?$"))]
    pub daily_spend_cap: Option<Money>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<String>, pattern = "^[0-9]{1,9}(\\.[0-9]{1,9})?$"))]
    pub monthly_spend_cap: Option<Money>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^[0-9]{1,9}(\\.[0-9]{1,9})?$"))]
    pub low_balance_threshold: Money,
    #[serde(default = "default_hold_lifetime")]
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 604_800))]
    pub hold_lifetime_seconds: u32,
    #[serde(default)]
    pub failed_request_policy: FailedRequestPolicy,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<String>))]
    pub topup_packs: Vec<Money>,
    /// The smallest and the largest top-up a customer may buy (whole cents).
    #[serde(default = "default_min_topup")]
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^[0-9]{1,6}(\\.[0-9]{1,2}0{0,7})?$"))]
    pub min_topup: Money,
    #[serde(default = "default_max_topup")]
    #[cfg_attr(feature = "ssr", schema(value_type = String, pattern = "^[0-9]{1,6}(\\.[0-9]{1,2}0{0,7})?$"))]
    pub max_topup: Money,
    /// The metering proxy refuses a request whose worst-case cost is above this (400,
    /// naming the estimate): the guard against runaway context. None: no guard.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<String>, pattern = "^[0-9]{1,9}(\\.[0-9]{1,9})?$"))]
    pub max_request_cost: Option<Money>,
    /// The output tokens the proxy holds for when a request names no limit (OpenAI's
    /// `max_completion_tokens` / `max_output_tokens` are optional).
    #[serde(default = "default_max_output_tokens")]
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 1_000_000))]
    pub default_max_output_tokens: u32,
    /// `spend.spike` is sent when a customer's spend today passes this percentage of
    /// their average daily spend over the seven days before (300: three times). None: no
    /// spike alerts.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(minimum = 101, maximum = 100_000))]
    pub spend_spike_percent: Option<u32>,
}

fn default_grace_days() -> u32 {
    3
}

fn default_max_output_tokens() -> u32 {
    4096
}

/// $1.00: Stripe's card minimum is $0.50; below a dollar the fee eats the payment.
fn default_min_topup() -> Money {
    Money::from_nanos(NANOS_PER_UNIT)
}

/// $10,000.00.
fn default_max_topup() -> Money {
    Money::from_nanos(10_000 * NANOS_PER_UNIT)
}

/// Stripe's largest amount for a USD charge, $999,999.99.
pub const STRIPE_MAX_CENTS: i64 = 99_999_999;

impl Default for PlanTerms {
    fn default() -> Self {
        PlanTerms {
            markup_percent: Percent(0),
            rates: BTreeMap::new(),
            tiers: Vec::new(),
            included_credits: Money::ZERO,
            recurring_fee: Money::ZERO,
            rollover: false,
            grace_days: default_grace_days(),
            allowed_models: None,
            daily_spend_cap: None,
            monthly_spend_cap: None,
            low_balance_threshold: Money::ZERO,
            hold_lifetime_seconds: default_hold_lifetime(),
            failed_request_policy: FailedRequestPolicy::ChargeInput,
            topup_packs: Vec::new(),
            min_topup: default_min_topup(),
            max_topup: default_max_topup(),
            max_request_cost: None,
            default_max_output_tokens: default_max_output_tokens(),
            spend_spike_percent: None,
        }
    }
}

impl PlanTerms {
    /// Whether the plan may use `model` (`allowed_models`; None allows every model).
    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }

    /// A plan with a recurring fee is sold as a subscription; its included credits come
    /// with each paid invoice instead of each calendar month.
    pub fn is_subscription(&self) -> bool {
        self.recurring_fee.is_positive()
    }

    /// Checks ranges a JSON type cannot express.
    pub fn validate(&self) -> Result<()> {
        let non_negative = |m: Money, param: &str| {
            if m.is_negative() {
                Err(Error::invalid(
                    param,
                    format!("{param} must not be negative"),
                ))
            } else {
                Ok(())
            }
        };
        if self.markup_percent.0 > 100_000 {
            return Err(Error::invalid(
                "markup_percent",
                "markup_percent is at most 1000",
            ));
        }
        for (model, r) in &self.rates {
            r.check(&format!("rates.{model}"))?;
        }
        let mut last = None;
        for t in &self.tiers {
            if t.discount_percent.0 > 10_000 {
                return Err(Error::invalid(
                    "tiers",
                    "a tier's discount_percent is at most 100",
                ));
            }
            if last.is_some_and(|l| t.from_tokens <= l) {
                return Err(Error::invalid(
                    "tiers",
                    "tiers must be in increasing from_tokens order",
                ));
            }
            last = Some(t.from_tokens);
        }
        non_negative(self.included_credits, "included_credits")?;
        non_negative(self.recurring_fee, "recurring_fee")?;
        if self.recurring_fee.nanos() % NANOS_PER_CENT != 0
            || self.recurring_fee.nanos() / NANOS_PER_CENT > STRIPE_MAX_CENTS
        {
            return Err(Error::invalid(
                "recurring_fee",
                "recurring_fee is whole cents, at most 999999.99",
            ));
        }
        if self.grace_days > 60 {
            return Err(Error::invalid("grace_days", "grace_days is at most 60"));
        }
        if let Some(models) = &self.allowed_models {
            if models.is_empty()
                || models.len() > 500
                || models
                    .iter()
                    .any(|m| m.is_empty() || m.chars().count() > 200)
            {
                return Err(Error::invalid(
                    "allowed_models",
                    "allowed_models is null (every model) or 1-500 model ids",
                ));
            }
        }
        non_negative(self.low_balance_threshold, "low_balance_threshold")?;
        if self
            .spend_spike_percent
            .is_some_and(|p| !(101..=100_000).contains(&p))
        {
            return Err(Error::invalid(
                "spend_spike_percent",
                "spend_spike_percent is 101-100000 (300: three times the daily average)",
            ));
        }
        for cap in [self.daily_spend_cap, self.monthly_spend_cap]
            .into_iter()
            .flatten()
        {
            non_negative(cap, "spend_cap")?;
        }
        let cents =
            |m: Money| (m.nanos() % NANOS_PER_CENT == 0).then_some(m.nanos() / NANOS_PER_CENT);
        match (cents(self.min_topup), cents(self.max_topup)) {
            (Some(min), Some(max)) if 50 <= min && min <= max && max <= STRIPE_MAX_CENTS => {}
            _ => {
                return Err(Error::invalid(
                    "min_topup",
                    "min_topup and max_topup are whole cents, at least 0.50, min ≤ max, at most 999999.99",
                ))
            }
        }
        for pack in &self.topup_packs {
            if *pack < self.min_topup || *pack > self.max_topup || cents(*pack).is_none() {
                return Err(Error::invalid(
                    "topup_packs",
                    "top-up packs are whole cents between min_topup and max_topup",
                ));
            }
        }
        if self.hold_lifetime_seconds == 0 || self.hold_lifetime_seconds > 86_400 * 7 {
            return Err(Error::invalid(
                "hold_lifetime_seconds",
                "hold_lifetime_seconds must be between 1 and 604800",
            ));
        }
        if self.max_request_cost.is_some_and(|m| !m.is_positive()) {
            return Err(Error::invalid(
                "max_request_cost",
                "max_request_cost must be positive (leave it out for no guard)",
            ));
        }
        if self.default_max_output_tokens == 0 || self.default_max_output_tokens > 1_000_000 {
            return Err(Error::invalid(
                "default_max_output_tokens",
                "default_max_output_tokens must be between 1 and 1000000",
            ));
        }
        Ok(())
    }

    /// The index of the tier for a period that has used `period_tokens` so far.
    pub fn tier_for(&self, period_tokens: u64) -> Option<usize> {
        self.tiers
            .iter()
            .rposition(|t| t.from_tokens <= period_tokens)
    }

    /// Rates this plan charges for `model`, before tier and batch discounts.
    pub fn rates_for(&self, model: &ModelPrice) -> (Rates, Percent) {
        match self.rates.get(&model.id) {
            Some(own) => (*own, Percent(0)),
            None => (model.rates, self.markup_percent),
        }
    }
}

/// One priced token class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// `input`, `output`, `cache_write` (five minutes), `cache_write_1h` or `cache_read`.
    pub kind: String,
    pub tokens: u64,
    /// The effective rate per million tokens after markup and discounts (rounded to a
    /// nano-unit for display; the amount is computed from the exact rate).
    pub rate_per_million: Money,
    pub amount: Money,
    /// What turned the list rate into `rate_per_million`: the price book's rate, the plan's
    /// markup (zero when the plan sets its own rate, which is then the list rate here), the
    /// volume tier's discount and the batch discount. Events priced before these were kept
    /// read them as absent.
    #[serde(default)]
    pub list_rate_per_million: Option<Money>,
    #[serde(default)]
    pub markup_percent: Option<Percent>,
    #[serde(default)]
    pub tier_discount_percent: Option<Percent>,
    #[serde(default)]
    pub batch_discount_percent: Option<Percent>,
    /// Where the tier this event was priced in starts (absent: no tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_from_tokens: Option<u64>,
}

/// A priced request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priced {
    pub line_items: Vec<LineItem>,
    pub cost: Money,
    pub tier: Option<usize>,
}

/// `value × num / den`, rounded half up; all inputs non-negative.
fn round_half_up(value: i128, num: i128, den: i128) -> Result<i64> {
    let scaled = value
        .checked_mul(num)
        .ok_or_else(|| Error::invalid("tokens", "the cost is out of range"))?;
    let rounded = (scaled + den / 2) / den;
    i64::try_from(rounded).map_err(|_| Error::invalid("tokens", "the cost is out of range"))
}

/// The cost of one line item: `rate × tokens / 10⁶ × multiplier`, rounded once.
pub fn line_amount(rate_per_million: Money, tokens: u64, num: i128, den: i128) -> Result<Money> {
    let rate = i128::from(rate_per_million.nanos());
    if rate < 0 {
        return Err(Error::internal("negative rate"));
    }
    let value = rate
        .checked_mul(i128::from(tokens))
        .ok_or_else(|| Error::invalid("tokens", "the cost is out of range"))?;
    round_half_up(value, num, den * 1_000_000).map(Money::from_nanos)
}

/// Prices one request under a plan, at the tier the period's usage is in.
pub fn price(
    model: &ModelPrice,
    terms: &PlanTerms,
    tokens: &Tokens,
    outcome: Outcome,
    batch: bool,
    period_tokens: u64,
) -> Result<Priced> {
    for (param, t) in [
        ("input_tokens", tokens.input),
        ("output_tokens", tokens.output),
        ("cache_creation_input_tokens", tokens.cache_write),
        ("cache_read_input_tokens", tokens.cache_read),
    ] {
        if t >= MAX_TOKENS {
            return Err(Error::invalid(param, format!("{param} must be below 2^40")));
        }
    }
    if tokens.cache_write_1h > tokens.cache_write {
        return Err(Error::invalid(
            "cache_creation_1h_input_tokens",
            "cache_creation_1h_input_tokens is part of cache_creation_input_tokens and cannot exceed it",
        ));
    }
    let (rates, markup) = terms.rates_for(model);
    let tier = terms.tier_for(period_tokens);
    let tier_discount = tier.map(|i| terms.tiers[i].discount_percent.0).unwrap_or(0);
    let batch_discount = if batch {
        i128::from(model.batch_discount_percent)
    } else {
        0
    };
    // One fraction for markup, tier and batch: (1 + m)(1 - t)(1 - b).
    let num =
        i128::from(10_000 + markup.0) * i128::from(10_000 - tier_discount) * (100 - batch_discount);
    let den: i128 = 10_000 * 10_000 * 100;

    let (charge_input, charge_output) = match (outcome, terms.failed_request_policy) {
        (Outcome::Failed, FailedRequestPolicy::ChargeInput) => (true, false),
        (Outcome::Failed, FailedRequestPolicy::ChargeNothing) => (false, false),
        // Cancelled streams pay for what was generated; success pays for everything.
        _ => (true, true),
    };
    let classes = [
        ("input", tokens.input, rates.input, charge_input),
        ("output", tokens.output, rates.output, charge_output),
        (
            "cache_write",
            tokens.cache_write - tokens.cache_write_1h,
            rates.cache_write,
            charge_input,
        ),
        (
            "cache_write_1h",
            tokens.cache_write_1h,
            rates.cache_write_1h_rate(),
            charge_input,
        ),
        (
            "cache_read",
            tokens.cache_read,
            rates.cache_read,
            charge_input,
        ),
    ];
    let mut line_items = Vec::new();
    let mut cost = Money::ZERO;
    for (kind, count, rate, charged) in classes {
        if count == 0 {
            continue;
        }
        let effective = Money::from_nanos(round_half_up(i128::from(rate.nanos()), num, den)?);
        let amount = if charged {
            line_amount(rate, count, num, den)?
        } else {
            Money::ZERO
        };
        cost = cost.checked_add(amount)?;
        line_items.push(LineItem {
            kind: kind.to_string(),
            tokens: count,
            rate_per_million: if charged { effective } else { Money::ZERO },
            amount,
            list_rate_per_million: Some(rate),
            markup_percent: Some(markup),
            tier_discount_percent: Some(Percent(tier_discount)),
            batch_discount_percent: Some(Percent(i64::try_from(batch_discount).unwrap_or(0) * 100)),
            tier_from_tokens: tier.map(|i| terms.tiers[i].from_tokens),
        });
    }
    Ok(Priced {
        line_items,
        cost,
        tier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sonnet() -> ModelPrice {
        ModelPrice::proposed(
            "claude-sonnet-4-5",
            "anthropic",
            Rates {
                input: Money::parse("3").unwrap(),
                output: Money::parse("15").unwrap(),
                cache_write: Money::parse("3.75").unwrap(),
                cache_read: Money::parse("0.30").unwrap(),
                cache_write_1h: None,
            },
            50,
        )
    }

    fn toks(input: u64, output: u64, cache_write: u64, cache_read: u64) -> Tokens {
        Tokens {
            input,
            output,
            cache_write,
            cache_read,
            cache_write_1h: 0,
        }
    }

    #[test]
    fn list_price_of_a_request() {
        let p = price(
            &sonnet(),
            &PlanTerms::default(),
            &toks(1_204, 350, 0, 0),
            Outcome::Succeeded,
            false,
            0,
        )
        .unwrap();
        // 1,204 × $3 / 10⁶ = $0.003612; 350 × $15 / 10⁶ = $0.00525.
        assert_eq!(p.line_items[0].amount, Money::parse("0.003612").unwrap());
        assert_eq!(p.line_items[1].amount, Money::parse("0.00525").unwrap());
        assert_eq!(p.cost, Money::parse("0.008862").unwrap());
        assert_eq!(p.line_items[0].rate_per_million, Money::parse("3").unwrap());
    }

    #[test]
    fn rounds_once_half_up_per_line_item() {
        let m = ModelPrice {
            rates: Rates {
                input: Money::from_nanos(1),
                ..Rates::default()
            },
            ..sonnet()
        };
        let amount = |t| {
            price(
                &m,
                &PlanTerms::default(),
                &toks(t, 0, 0, 0),
                Outcome::Succeeded,
                false,
                0,
            )
            .unwrap()
            .cost
            .nanos()
        };
        assert_eq!(amount(499_999), 0);
        assert_eq!(amount(500_000), 1); // exactly half: up
        assert_eq!(amount(1_499_999), 1);
        assert_eq!(amount(1_500_000), 2);
    }

    #[test]
    fn one_hour_cache_writes_have_their_own_rate() {
        let tokens = Tokens {
            cache_write: 1_000_000,
            cache_write_1h: 400_000,
            ..Tokens::default()
        };
        let p = price(
            &sonnet(),
            &PlanTerms::default(),
            &tokens,
            Outcome::Succeeded,
            false,
            0,
        )
        .unwrap();
        let amount = |k: &str| p.line_items.iter().find(|l| l.kind == k).unwrap().amount;
        // 600k five-minute writes at $3.75, 400k one-hour writes at twice the input ($6).
        assert_eq!(amount("cache_write"), Money::parse("2.25").unwrap());
        assert_eq!(amount("cache_write_1h"), Money::parse("2.4").unwrap());
        let mut own = sonnet();
        own.rates.cache_write_1h = Some(Money::parse("5").unwrap());
        let p = price(
            &own,
            &PlanTerms::default(),
            &tokens,
            Outcome::Succeeded,
            false,
            0,
        )
        .unwrap();
        assert_eq!(p.cost, Money::parse("4.25").unwrap());
        let too_many = Tokens {
            cache_write_1h: 2_000_000,
            ..tokens
        };
        assert!(price(
            &sonnet(),
            &PlanTerms::default(),
            &too_many,
            Outcome::Succeeded,
            false,
            0
        )
        .is_err());
    }

    #[test]
    fn failed_requests_pay_input_not_output_by_default() {
        let p = price(
            &sonnet(),
            &PlanTerms::default(),
            &toks(1_000_000, 1_000_000, 0, 1_000_000),
            Outcome::Failed,
            false,
            0,
        )
        .unwrap();
        assert_eq!(p.cost, Money::parse("3.3").unwrap());
        let all = PlanTerms {
            failed_request_policy: FailedRequestPolicy::ChargeAll,
            ..PlanTerms::default()
        };
        let p = price(
            &sonnet(),
            &all,
            &toks(1_000_000, 1_000_000, 0, 0),
            Outcome::Failed,
            false,
            0,
        )
        .unwrap();
        assert_eq!(p.cost, Money::parse("18").unwrap());
        let p = price(
            &sonnet(),
            &PlanTerms::default(),
            &toks(0, 1_000_000, 0, 0),
            Outcome::Cancelled,
            false,
            0,
        )
        .unwrap();
        assert_eq!(p.cost, Money::parse("15").unwrap());
    }

    #[test]
    fn markup_tiers_and_batch_combine_into_one_rounding() {
        let terms = PlanTerms {
            markup_percent: Percent::parse("20").unwrap(),
            tiers: vec![
                Tier {
                    from_tokens: 0,
                    discount_percent: Percent(0),
                },
                Tier {
                    from_tokens: 1_000_000,
                    discount_percent: Percent::parse("10").unwrap(),
                },
            ],
            ..PlanTerms::default()
        };
        let t = toks(1_000_000, 0, 0, 0);
        assert_eq!(
            price(&sonnet(), &terms, &t, Outcome::Succeeded, false, 0)
                .unwrap()
                .cost,
            Money::parse("3.6").unwrap()
        );
        let p = price(&sonnet(), &terms, &t, Outcome::Succeeded, true, 5_000_000).unwrap();
        assert_eq!(p.tier, Some(1));
        // 3 × 1.2 × 0.9 × 0.5 = 1.62
        assert_eq!(p.cost, Money::parse("1.62").unwrap());
    }

    #[test]
    fn own_rates_replace_list_prices() {
        let mut terms = PlanTerms {
            markup_percent: Percent::parse("50").unwrap(),
            ..PlanTerms::default()
        };
        terms.rates.insert(
            "claude-sonnet-4-5".into(),
            Rates {
                input: Money::parse("1").unwrap(),
                ..Rates::default()
            },
        );
        let p = price(
            &sonnet(),
            &terms,
            &toks(2_000_000, 0, 0, 0),
            Outcome::Succeeded,
            false,
            0,
        )
        .unwrap();
        assert_eq!(p.cost, Money::parse("2").unwrap());
    }

    #[test]
    fn percent_parsing() {
        assert_eq!(Percent::parse("12.5"), Some(Percent(1250)));
        assert_eq!(Percent::parse("0"), Some(Percent(0)));
        assert_eq!(Percent::parse("1.25"), Some(Percent(125)));
        for bad in ["", "-1", "1.234", "1e2", "abc", "1.", ".5"] {
            assert_eq!(Percent::parse(bad), None, "{bad}");
        }
        assert_eq!(Percent(1250).to_string(), "12.50");
    }

    #[test]
    fn token_limits_are_errors_not_overflow() {
        let r = price(
            &sonnet(),
            &PlanTerms::default(),
            &toks(MAX_TOKENS, 0, 0, 0),
            Outcome::Succeeded,
            false,
            0,
        );
        assert!(matches!(r, Err(Error::Invalid { .. })));
    }

    proptest! {
        #[test]
        fn cost_is_the_sum_of_exactly_rounded_line_items(
            i in 0u64..MAX_TOKENS, o in 0u64..MAX_TOKENS, w in 0u64..MAX_TOKENS, r in 0u64..MAX_TOKENS,
            markup in 0i64..50_000, batch in any::<bool>(),
        ) {
            let terms = PlanTerms { markup_percent: Percent(markup), ..PlanTerms::default() };
            let p = price(&sonnet(), &terms, &toks(i, o, w, r), Outcome::Succeeded, batch, 0).unwrap();
            let sum = p.line_items.iter().map(|l| l.amount.nanos()).sum::<i64>();
            prop_assert_eq!(sum, p.cost.nanos());
            for l in &p.line_items {
                let rate = match l.kind.as_str() {
                    "input" => 3_000_000_000i128, "output" => 15_000_000_000, "cache_write" => 3_750_000_000, _ => 300_000_000,
                };
                let exact_num = rate * i128::from(l.tokens) * i128::from(10_000 + markup) * if batch { 50 } else { 100 };
                let exact_den = 1_000_000i128 * 10_000 * 100;
                let a = i128::from(l.amount.nanos());
                // Half up: a - 1/2 <= exact < a + 1/2.
                prop_assert!(2 * a * exact_den - exact_den <= 2 * exact_num);
                prop_assert!(2 * exact_num < 2 * a * exact_den + exact_den);
            }
        }

        #[test]
        fn more_tokens_never_cost_less(a in 0u64..1_000_000_000, b in 0u64..1_000_000_000) {
            let (lo, hi) = (a.min(b), a.max(b));
            let c = |t| price(&sonnet(), &PlanTerms::default(), &toks(t, t, t, t), Outcome::Succeeded, false, 0).unwrap().cost;
            prop_assert!(c(lo) <= c(hi));
        }
    }
}
