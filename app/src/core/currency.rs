//! The deployment's currency (`TALLY_CURRENCY`, ISO 4217): its minor unit, which Stripe
//! amounts are counted in (cents for USD, whole yen for JPY), and how people see amounts.
//! Money itself stays in nano-units of the currency's main unit whatever it is.

use std::sync::RwLock;

use super::error::{Error, Result};
use super::money::{Money, NANOS_PER_UNIT};

/// Stripe's zero-decimal currencies: amounts are sent in whole units.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];
/// Stripe's three-decimal currencies.
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Currency {
    /// Lowercase ISO 4217 code, as Stripe and the API write it.
    code: String,
    /// Digits of the minor unit: 2 for USD, 0 for JPY, 3 for KWD.
    exponent: u32,
}

impl Default for Currency {
    fn default() -> Self {
        Currency {
            code: "usd".into(),
            exponent: 2,
        }
    }
}

impl Currency {
    /// A three-letter ISO 4217 code, any case.
    pub fn parse(code: &str) -> Result<Currency> {
        let code = code.trim().to_ascii_lowercase();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(Error::invalid(
                "currency",
                format!("{code:?} is not a three-letter ISO 4217 currency code"),
            ));
        }
        let exponent = if ZERO_DECIMAL.contains(&code.as_str()) {
            0
        } else if THREE_DECIMAL.contains(&code.as_str()) {
            3
        } else {
            2
        };
        Ok(Currency { code, exponent })
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn exponent(&self) -> u32 {
        self.exponent
    }

    /// Nano-units in one minor unit (10,000,000 for a cent, 10⁹ for a yen).
    pub fn nanos_per_minor(&self) -> i64 {
        NANOS_PER_UNIT / 10_i64.pow(self.exponent)
    }

    /// The amount in minor units, if it is a whole number of them.
    pub fn to_minor(&self, m: Money) -> Option<i64> {
        let per = self.nanos_per_minor();
        (m.nanos() % per == 0).then(|| m.nanos() / per)
    }

    pub fn from_minor(&self, minor: i64) -> Result<Money> {
        minor
            .checked_mul(self.nanos_per_minor())
            .map(Money::from_nanos)
            .ok_or_else(|| Error::invalid("amount", "the amount is out of range"))
    }

    /// The sign people know, or the code ("CHF 12.50").
    pub fn symbol(&self) -> String {
        match self.code.as_str() {
            "usd" => "$".into(),
            "eur" => "€".into(),
            "gbp" => "£".into(),
            "jpy" => "¥".into(),
            "cny" => "CN¥".into(),
            "krw" => "₩".into(),
            "inr" => "₹".into(),
            "cad" => "CA$".into(),
            "aud" => "A$".into(),
            "brl" => "R$".into(),
            other => format!("{} ", other.to_ascii_uppercase()),
        }
    }

    /// For people: the sign, thousands separators, at least the minor unit's decimals and
    /// as many more as the amount needs, up to six ("$0.003612", "$12.50", "¥1,200").
    pub fn display(&self, m: Money) -> String {
        self.display_places(m, 6)
    }

    /// Every digit the amount has, for the title or the detail beside a rounded figure
    /// ("$12.345678912").
    pub fn display_exact(&self, m: Money) -> String {
        self.display_places(m, 9)
    }

    /// Rounded to the currency's minor unit for people, half away from zero ("$12.35",
    /// "¥1,200"); an amount that is not zero but rounds to it says so ("<$0.01").
    pub fn display_rounded(&self, m: Money) -> String {
        let unit = 10i64.pow(9 - self.exponent.min(9));
        let n = m.nanos();
        let rounded = (n.unsigned_abs() + unit.unsigned_abs() / 2) / unit.unsigned_abs()
            * unit.unsigned_abs();
        let rounded = i64::try_from(rounded).unwrap_or(i64::MAX);
        if n != 0 && rounded == 0 {
            let sign = if n < 0 { "-" } else { "" };
            return format!("{sign}<{}", self.display(Money::from_nanos(unit)));
        }
        self.display(Money::from_nanos(if n < 0 { -rounded } else { rounded }))
    }

    fn display_places(&self, m: Money, places: usize) -> String {
        let full = m.to_string();
        let (sign, rest) = match full.strip_prefix('-') {
            Some(r) => ("-", r),
            None => ("", full.as_str()),
        };
        let (whole, frac) = rest.split_once('.').unwrap_or((rest, ""));
        let mut frac = frac.trim_end_matches('0').to_string();
        frac.truncate(places);
        while frac.len() < self.exponent as usize {
            frac.push('0');
        }
        let mut grouped = String::new();
        for (i, ch) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        let symbol = self.symbol();
        if frac.is_empty() {
            format!("{sign}{symbol}{grouped}")
        } else {
            format!("{sign}{symbol}{grouped}.{frac}")
        }
    }
}

/// The currency pages show amounts in: the deployment's, set once by `tally serve`.
static SHOWN: RwLock<Option<Currency>> = RwLock::new(None);

/// Sets the currency amounts are shown in (at start-up).
pub fn show_in(c: &Currency) {
    if let Ok(mut shown) = SHOWN.write() {
        *shown = Some(c.clone());
    }
}

/// The currency amounts are shown in.
pub fn shown() -> Currency {
    SHOWN
        .read()
        .ok()
        .and_then(|c| c.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn minor_units_follow_the_currency() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(usd.to_minor(m("12.34")), Some(1234));
        assert_eq!(usd.to_minor(m("12.345")), None);
        let jpy = Currency::parse("jpy").unwrap();
        assert_eq!(jpy.to_minor(m("1200")), Some(1200));
        assert_eq!(jpy.to_minor(m("1200.5")), None);
        assert_eq!(jpy.from_minor(500).unwrap(), m("500"));
        let kwd = Currency::parse("kwd").unwrap();
        assert_eq!(kwd.to_minor(m("1.234")), Some(1234));
        assert!(Currency::parse("dollars").is_err());
        assert!(Currency::parse("u5d").is_err());
    }

    #[test]
    fn amounts_are_shown_with_the_currency_sign() {
        let usd = Currency::default();
        assert_eq!(usd.display(m("1234.5")), "$1,234.50");
        assert_eq!(usd.display(m("0.003612")), "$0.003612");
        assert_eq!(usd.display(m("-2")), "-$2.00");
        let jpy = Currency::parse("jpy").unwrap();
        assert_eq!(jpy.display(m("1200")), "¥1,200");
        assert_eq!(jpy.display(m("0.5")), "¥0.5");
        let eur = Currency::parse("eur").unwrap();
        assert_eq!(eur.display(m("3")), "€3.00");
        let sek = Currency::parse("sek").unwrap();
        assert_eq!(sek.display(m("3")), "SEK 3.00");
    }

    #[test]
    fn amounts_are_rounded_for_people_with_every_digit_beside() {
        let usd = Currency::default();
        assert_eq!(usd.display_rounded(m("245.936825198")), "$245.94");
        assert_eq!(
            usd.display_rounded(m("12.345")),
            "$12.35",
            "half away from zero"
        );
        assert_eq!(usd.display_rounded(m("-12.345")), "-$12.35");
        assert_eq!(usd.display_rounded(m("1234567.994")), "$1,234,567.99");
        assert_eq!(usd.display_rounded(m("0.004")), "<$0.01");
        assert_eq!(usd.display_rounded(m("-0.004")), "-<$0.01");
        assert_eq!(usd.display_rounded(m("0")), "$0.00");
        assert_eq!(usd.display_exact(m("245.936825198")), "$245.936825198");
        assert_eq!(usd.display_exact(m("3")), "$3.00");
        let jpy = Currency::parse("jpy").unwrap();
        assert_eq!(jpy.display_rounded(m("1200.5")), "¥1,201");
        assert_eq!(jpy.display_rounded(m("0.2")), "<¥1");
    }
}
