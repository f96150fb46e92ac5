//! Money: an exact count of nano-units (10⁻⁹ of the deployment currency) in an `i64`.
//!
//! Nothing here ever touches a float. Text is parsed and printed exactly with up to nine
//! fractional digits; arithmetic is checked, so an overflow is an error, never a wrap.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Nano-units per currency unit.
pub const NANOS_PER_UNIT: i64 = 1_000_000_000;
/// One cent (Stripe's unit for USD) in nano-units.
pub const NANOS_PER_CENT: i64 = 10_000_000;

/// An amount of money in nano-units. May be negative (a debt, a debit posting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a string or a computation is not a valid amount.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount must be a decimal string like \"12.50\"")]
    Malformed,
    #[error("amount has more than 9 fractional digits")]
    TooPrecise,
    #[error("amount is out of range")]
    Overflow,
    #[error("amount must not be negative")]
    Negative,
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_nanos(nanos: i64) -> Money {
        Money(nanos)
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    pub fn from_cents(cents: i64) -> Result<Money, MoneyError> {
        cents
            .checked_mul(NANOS_PER_CENT)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.0
            .checked_sub(other.0)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        self.0.checked_neg().map(Money).ok_or(MoneyError::Overflow)
    }

    /// Sums amounts, failing on overflow at any step.
    pub fn checked_sum<I: IntoIterator<Item = Money>>(items: I) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::ZERO, |acc, m| acc.checked_add(m))
    }

    /// Parses an exact decimal string: optional `-`, digits, optionally `.` and 1–9 digits.
    /// No exponent, no `+`, no spaces, no thousands separators.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = match body.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (body, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::Malformed);
        }
        let frac = frac.unwrap_or("");
        if body.contains('.') && frac.is_empty() {
            return Err(MoneyError::Malformed);
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::Malformed);
        }
        if frac.len() > 9 {
            return Err(MoneyError::TooPrecise);
        }
        let mut value: i128 = 0;
        for b in whole.bytes() {
            value = value * 10 + i128::from(b - b'0');
            if value > i128::from(i64::MAX) {
                return Err(MoneyError::Overflow);
            }
        }
        let mut nanos: i128 = 0;
        for (i, b) in frac.bytes().enumerate() {
            nanos += i128::from(b - b'0') * 10i128.pow(8 - i as u32);
        }
        let total = value * i128::from(NANOS_PER_UNIT) + nanos;
        let total = if negative { -total } else { total };
        i64::try_from(total)
            .map(Money)
            .map_err(|_| MoneyError::Overflow)
    }

    /// Parses an amount that must be zero or more.
    pub fn parse_non_negative(text: &str) -> Result<Money, MoneyError> {
        let m = Money::parse(text)?;
        if m.is_negative() {
            return Err(MoneyError::Negative);
        }
        Ok(m)
    }

    /// Formats for people in the deployment's currency (`currency::shown`): its sign, at
    /// least its minor unit's decimals, and as many more as are needed to show the amount
    /// without rounding up to six ("$0.003612", "$12.50", "¥1,200").
    pub fn display_money(self) -> String {
        super::currency::shown().display(self)
    }

    /// Rounded to the currency's minor unit for people ("$12.35", "<$0.01"); see
    /// [`Money::display_exact`] for the figure to show beside it.
    pub fn display_rounded(self) -> String {
        super::currency::shown().display_rounded(self)
    }

    /// Every digit, with the currency's sign ("$12.345678912").
    pub fn display_exact(self) -> String {
        super::currency::shown().display_exact(self)
    }

    /// The same amount as a form field takes it back: "1234.5" → "1234.50", no `$`, no
    /// separators, at least 2 decimals and every one that is not zero, so a form saved
    /// unchanged saves the same amount.
    pub fn display_plain(self) -> String {
        let full = self.to_string();
        let (sign, rest) = match full.strip_prefix('-') {
            Some(r) => ("-", r),
            None => ("", full.as_str()),
        };
        let (whole, frac) = rest.split_once('.').unwrap_or((rest, "000000000"));
        let mut frac = frac.trim_end_matches('0').to_string();
        while frac.len() < 2 {
            frac.push('0');
        }
        format!("{sign}{whole}.{frac}")
    }
}

/// The canonical text form: always nine fractional digits ("12.500000000").
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = i128::from(self.0);
        let sign = if v < 0 { "-" } else { "" };
        let abs = v.abs();
        let unit = i128::from(NANOS_PER_UNIT);
        write!(f, "{sign}{}.{:09}", abs / unit, abs % unit)
    }
}

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let text = String::deserialize(d)?;
        Money::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(Money::parse("0").unwrap().nanos(), 0);
        assert_eq!(Money::parse("12.5").unwrap().nanos(), 12_500_000_000);
        assert_eq!(Money::parse("0.003450000").unwrap().nanos(), 3_450_000);
        assert_eq!(Money::parse("0.000000001").unwrap().nanos(), 1);
        assert_eq!(Money::parse("-1.25").unwrap().nanos(), -1_250_000_000);
        assert_eq!(Money::parse("007").unwrap().nanos(), 7_000_000_000);
    }

    #[test]
    fn rejects_floats_exponents_garbage_and_excess_precision() {
        for bad in [
            "", "-", ".", "1.", ".5", "1e3", "1E3", "1.0e-2", "+1", " 1", "1 ", "1,000", "0x10",
            "NaN", "inf", "1.2.3", "--1", "١",
        ] {
            assert_eq!(Money::parse(bad), Err(MoneyError::Malformed), "{bad:?}");
        }
        assert_eq!(Money::parse("0.0000000001"), Err(MoneyError::TooPrecise));
        assert_eq!(Money::parse("1.1234567890"), Err(MoneyError::TooPrecise));
    }

    #[test]
    fn rejects_out_of_range() {
        assert_eq!(
            Money::parse("9223372036.854775807").unwrap().nanos(),
            i64::MAX
        );
        assert_eq!(
            Money::parse("9223372036.854775808"),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse("-9223372036.854775808").unwrap().nanos(),
            i64::MIN
        );
        assert_eq!(
            Money::parse("99999999999999999999999"),
            Err(MoneyError::Overflow)
        );
        assert_eq!(Money::parse_non_negative("-0.5"), Err(MoneyError::Negative));
    }

    #[test]
    fn formats_with_nine_digits() {
        assert_eq!(
            Money::from_nanos(12_500_000_000).to_string(),
            "12.500000000"
        );
        assert_eq!(Money::from_nanos(-1).to_string(), "-0.000000001");
        assert_eq!(
            Money::from_nanos(i64::MIN).to_string(),
            "-9223372036.854775808"
        );
        assert_eq!(Money::from_nanos(3_612_000).display_money(), "$0.003612");
        assert_eq!(Money::from_nanos(12_500_000_000).display_money(), "$12.50");
        assert_eq!(Money::from_nanos(-5_000_000_000).display_money(), "-$5.00");
        assert_eq!(
            Money::from_cents(1_000_000).unwrap().display_money(),
            "$10,000.00"
        );
        assert_eq!(
            Money::from_cents(-123_456_789).unwrap().display_money(),
            "-$1,234,567.89"
        );
        assert_eq!(
            Money::from_cents(100_000).unwrap().display_money(),
            "$1,000.00"
        );
        assert_eq!(
            Money::from_cents(1_000_000).unwrap().display_plain(),
            "10000.00"
        );
        assert_eq!(
            Money::parse("0.000000125").unwrap().display_plain(),
            "0.000000125"
        );
        assert_eq!(Money::parse("-2.5").unwrap().display_plain(), "-2.50");
    }

    #[test]
    fn arithmetic_is_checked() {
        let max = Money::from_nanos(i64::MAX);
        assert_eq!(
            max.checked_add(Money::from_nanos(1)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::from_nanos(i64::MIN).checked_sub(Money::from_nanos(1)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::from_nanos(i64::MIN).checked_neg(),
            Err(MoneyError::Overflow)
        );
        assert_eq!(Money::from_cents(i64::MAX), Err(MoneyError::Overflow));
        assert_eq!(Money::from_cents(150).unwrap().nanos(), 1_500_000_000);
        assert_eq!(
            Money::checked_sum([max, Money::from_nanos(-1), Money::from_nanos(1)]),
            Ok(max)
        );
        assert_eq!(
            Money::checked_sum([max, Money::from_nanos(1)]),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn serde_uses_decimal_strings() {
        let m: Money = serde_json::from_str("\"1.5\"").unwrap();
        assert_eq!(m.nanos(), 1_500_000_000);
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"1.500000000\"");
        assert!(serde_json::from_str::<Money>("1.5").is_err());
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(n in any::<i64>()) {
            let m = Money::from_nanos(n);
            prop_assert_eq!(Money::parse(&m.to_string()), Ok(m));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = Money::parse(&s);
        }
    }
}
