//! The properties the fuzz targets check (`fuzz/`, run with `cargo fuzz`), kept here so
//! the regression test (`app/tests/fuzz_regressions.rs`) replays saved inputs through the
//! very same code on stable Rust. Each function takes arbitrary bytes and panics only when
//! a property is broken.

use super::error::Error;
use super::money::{Money, NANOS_PER_UNIT};
use super::payments::webhooks;
use super::pricing::{
    self, FailedRequestPolicy, ModelPrice, Outcome, Percent, PlanTerms, Rates, Tier, Tokens,
    MAX_TOKENS,
};

/// Reads fixed-size numbers from the input, zero-padded at its end.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u64(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        let n = self.0.len().min(8);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u64::from_le_bytes(buf)
    }

    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn rest(&self) -> &[u8] {
        self.0
    }
}

/// The money parser: whatever it accepts prints back to the same amount; arithmetic is
/// checked, never wrapping or panicking.
pub fn money(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Money::parse(text) {
        let shown = m.to_string();
        assert_eq!(
            Money::parse(&shown).ok(),
            Some(m),
            "{text:?} printed as {shown}"
        );
        let usd = m.display_money();
        assert!(usd.contains('$'), "{usd}");
        for r in [m.checked_add(m), m.checked_sub(m), m.checked_neg()] {
            let _ = r;
        }
        if let Ok(n) = Money::parse_non_negative(text) {
            assert_eq!(n, m);
            assert!(!n.is_negative());
        }
    } else {
        assert!(Money::parse_non_negative(text).is_err());
    }
    if let Some(p) = Percent::parse(text) {
        assert_eq!(Percent::parse(&p.to_string()), Some(p));
    }
}

/// Pricing arithmetic: any tokens, rates and plan factors give either a price whose line
/// items add up to the cost, or a clear `Invalid` error, never a panic or an internal
/// error; with neutral factors each line is `rate × tokens / 10⁶` rounded half up.
pub fn pricing(data: &[u8]) {
    let mut d = Input(data);
    // Rates up to $1,000 per million tokens; counts up to 2^41 (over the 2^40 limit).
    let mut rate = || Money::from_nanos((d.u64() % (1_000 * NANOS_PER_UNIT as u64)) as i64);
    let rates = Rates {
        input: rate(),
        output: rate(),
        cache_write: rate(),
        cache_read: rate(),
        cache_write_1h: None,
    };
    let mut tokens = Tokens {
        input: d.u64() % (MAX_TOKENS * 2),
        output: d.u64() % (MAX_TOKENS * 2),
        cache_write: d.u64() % (MAX_TOKENS * 2),
        cache_read: d.u64() % (MAX_TOKENS * 2),
        cache_write_1h: 0,
    };
    // A third of the cache writes for one hour (no input byte read: saved inputs replay).
    tokens.cache_write_1h = tokens.cache_write / 3;
    let markup = Percent((d.u64() % 100_000) as i64);
    let tier_discount = Percent((d.u64() % 10_001) as i64);
    let batch_discount = u32::from(d.u8() % 101);
    let outcome =
        [Outcome::Succeeded, Outcome::Failed, Outcome::Cancelled][usize::from(d.u8() % 3)];
    let policy = [
        FailedRequestPolicy::ChargeInput,
        FailedRequestPolicy::ChargeAll,
        FailedRequestPolicy::ChargeNothing,
    ][usize::from(d.u8() % 3)];
    let batch = d.u8() % 2 == 1;
    let period_tokens = d.u64();
    let tier_from = d.u64();
    let model = ModelPrice::proposed("m", "p", rates, batch_discount);
    let terms = PlanTerms {
        markup_percent: markup,
        tiers: vec![Tier {
            from_tokens: tier_from,
            discount_percent: tier_discount,
        }],
        failed_request_policy: policy,
        ..PlanTerms::default()
    };
    match pricing::price(&model, &terms, &tokens, outcome, batch, period_tokens) {
        Ok(p) => {
            let sum = Money::checked_sum(p.line_items.iter().map(|l| l.amount)).unwrap();
            assert_eq!(sum, p.cost);
            assert!(!p.cost.is_negative());
            assert!(p.line_items.iter().all(|l| !l.amount.is_negative()));
        }
        Err(Error::Invalid { .. }) => {}
        Err(other) => panic!("pricing failed with {other:?}"),
    }
    // Neutral factors: the exact formula.
    let neutral = PlanTerms::default();
    if let Ok(p) = pricing::price(&model, &neutral, &tokens, Outcome::Succeeded, false, 0) {
        for l in &p.line_items {
            let r = match l.kind.as_str() {
                "input" => model.rates.input,
                "output" => model.rates.output,
                "cache_write" => model.rates.cache_write,
                "cache_write_1h" => model.rates.cache_write_1h_rate(),
                _ => model.rates.cache_read,
            };
            let exact = (i128::from(r.nanos()) * i128::from(l.tokens) + 500_000) / 1_000_000;
            assert_eq!(i128::from(l.amount.nanos()), exact, "{l:?}");
        }
    }
}

/// Webhook verification and parsing. Unsigned or wrongly signed input never passes;
/// correctly signed input passes exactly when it is an event (JSON with an id and a
/// type) and its timestamp is within the 300 s tolerance, and is refused as a bad body,
/// never as a bad signature, otherwise.
pub fn webhook(data: &[u8]) {
    let mut d = Input(data);
    let signed = d.u8() % 2 == 1;
    let skew = i64::from(d.u8()) * 3 - 384; // -384 … +381 seconds
    let rest = String::from_utf8_lossy(d.rest()).into_owned();
    let (secret, rest) = rest.split_once('\n').unwrap_or(("whsec_fuzz", &rest));
    let (signature, payload) = rest.split_once('\n').unwrap_or(("", rest));
    let now = 1_800_000_000;
    if !signed {
        assert!(webhooks::verify(payload, signature, secret, now).is_err());
        return;
    }
    let header = stripe_webhook::Webhook::generate_test_header(payload, secret, Some(now + skew));
    let result = webhooks::verify(payload, &header, secret, now);
    let event: Option<serde_json::Value> = serde_json::from_str(payload).ok();
    let ok_field = |k: &str| {
        event
            .as_ref()
            .and_then(|e| e[k].as_str())
            .is_some_and(|s| !s.is_empty() && s.len() <= 255)
    };
    if skew.abs() > 300 {
        assert!(result.is_err(), "a stale signature passed");
        return;
    }
    match result {
        Ok(delivery) => {
            assert!(ok_field("id") && ok_field("type"));
            assert_eq!(
                Some(delivery.id.as_str()),
                event.as_ref().and_then(|e| e["id"].as_str())
            );
        }
        Err(Error::Invalid { param, .. }) => {
            assert_eq!(
                param.as_deref(),
                Some("body"),
                "a good signature was refused"
            );
            assert!(!(ok_field("id") && ok_field("type")));
        }
        Err(other) => panic!("verify failed with {other:?}"),
    }
}
