//! Signatures of operator webhooks, as the Standard Webhooks specification has them: an
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` with the endpoint's secret
//! (`whsec_` + base64 of its bytes), sent as `webhook-signature: v1,<base64>`. The id stays
//! the same on every retry; the timestamp is each attempt's, so every attempt is signed
//! again. Receivers accept a timestamp within [`TOLERANCE_SECONDS`] of their clock.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::core::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";
pub const TOLERANCE_SECONDS: i64 = 300;

/// A new endpoint secret: 32 random bytes.
pub fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("random: {e}")))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

fn key(secret: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|e| Error::internal(format!("a webhook secret that is not base64: {e}")))
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Result<HmacSha256> {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key)
        .map_err(|e| Error::internal(format!("webhook key: {e}")))?;
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    Ok(m)
}

/// The `webhook-signature` header's value for one attempt.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let tag = mac(&key(secret)?, id, timestamp, body)?
        .finalize()
        .into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

/// What a receiver checks: the timestamp is recent and one of the (space-separated)
/// signatures matches, compared in constant time.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> bool {
    let (Ok(key), Ok(ts)) = (key(secret), timestamp.trim().parse::<i64>()) else {
        return false;
    };
    if (now - ts).abs() > TOLERANCE_SECONDS {
        return false;
    }
    let Ok(m) = mac(&key, id, ts, body) else {
        return false;
    };
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b| STANDARD.decode(b).ok())
        .any(|sig| m.clone().verify_slice(&sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's published test vectors (the JavaScript and Python libraries'
    /// `sign` tests, and the Rust library's).
    #[test]
    fn signs_the_published_test_vectors() {
        let body = br#"{"test": 2432232314}"#;
        let s = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        )
        .unwrap();
        assert_eq!(s, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let s2 = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(s2, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let both = format!("v1,AAAA {s}");
        assert!(verify(
            secret,
            id,
            "1614265330",
            &both,
            body,
            1614265330 + 299
        ));
        assert!(!verify(
            secret,
            id,
            "1614265330",
            &s,
            body,
            1614265330 + 301
        ));
        assert!(!verify(secret, id, "1614265330", &s, b"{}", 1614265330));
        assert!(!verify(
            secret,
            "msg_other",
            "1614265330",
            &s,
            body,
            1614265330
        ));
    }

    #[test]
    fn a_new_secret_signs_and_verifies() {
        let secret = new_secret().unwrap();
        assert!(secret.starts_with("whsec_"));
        let s = sign(&secret, "evt_1", 100, b"x").unwrap();
        assert!(verify(&secret, "evt_1", "100", &s, b"x", 100));
    }
}
