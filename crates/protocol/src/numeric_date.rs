//! RFC 7519 §2 NumericDate: the `exp`, `nbf` and `iat` of the access tokens of steps B
//! and H, which the resource server checks in steps D and F.
//!
//! "A JSON numeric value representing the number of seconds from 1970-01-01T00:00:00Z
//! UTC until the specified UTC date/time, ignoring leap seconds. [...] non-integer
//! values can be represented." So `1795989379`, `1795989379.5` and `1.795989379e9` are
//! all valid. Refused: strings, negative numbers, and values past `u64::MAX` seconds
//! (JSON has no NaN or infinity, and serde_json refuses a number that overflows `f64`).
//!
//! Figure2's clock counts whole seconds ([`crate::UnixTime`]): `now = 100` means some
//! instant in `[100, 101)`. Comparisons are therefore rounded so that a decision is
//! never wrong for any instant of that second:
//! - `exp` (a token MUST NOT be accepted "on or after" it): rounded **down**
//!   ([`NumericDate::whole_seconds`]). `exp = 100.5` is expired from `now = 100`: at
//!   100.7 it would be, and the clock cannot tell 100.7 from 100.2.
//! - `nbf` (MUST NOT be accepted "before" it): rounded **up** ([`NumericDate::ceil_seconds`]).
//! - `iat`: only a sanity check (a token "issued in the future"): rounded down, so a
//!   token issued during the current second is not refused.

use crate::clock::UnixTime;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An RFC 7519 §2 NumericDate: whole seconds since the epoch plus a fraction.
///
/// Ordered and comparable exactly; serialised as a JSON integer when it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NumericDate {
    seconds: u64,
    /// The fraction in nanoseconds, rounded up so that a non-zero fraction never
    /// becomes zero (which would make `ceil_seconds` too early).
    nanos: u32,
}

impl NumericDate {
    pub const fn from_seconds(seconds: UnixTime) -> Self {
        Self { seconds, nanos: 0 }
    }

    /// A finite non-negative number of seconds, or `None`.
    pub fn from_f64(value: f64) -> Option<Self> {
        // 2^64 is exactly representable; anything at or above it overflows u64.
        if !(0.0..18_446_744_073_709_551_616.0).contains(&value) {
            return None;
        }
        let seconds = value.trunc();
        let fraction = value - seconds;
        let nanos = if fraction > 0.0 { ((fraction * 1e9).ceil() as u32).clamp(1, 999_999_999) } else { 0 };
        Some(Self { seconds: seconds as u64, nanos })
    }

    /// A NumericDate read from any JSON value (for traces and decoders): `None` for
    /// anything RFC 7519 §2 does not allow.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        let number = value.as_number()?;
        match number.as_u64() {
            Some(s) => Some(Self::from_seconds(s)),
            None => number.as_f64().and_then(Self::from_f64),
        }
    }

    /// Rounded down: the comparison for `exp` and `iat` (see the module docs).
    pub fn whole_seconds(self) -> UnixTime {
        self.seconds
    }

    /// Rounded up: the comparison for `nbf` (see the module docs).
    pub fn ceil_seconds(self) -> UnixTime {
        if self.nanos == 0 { self.seconds } else { self.seconds.saturating_add(1) }
    }

    pub fn is_whole(self) -> bool {
        self.nanos == 0
    }

    /// The value in seconds (exact for whole seconds up to 2^53).
    pub fn as_f64(self) -> f64 {
        self.seconds as f64 + f64::from(self.nanos) / 1e9
    }
}

impl From<UnixTime> for NumericDate {
    fn from(seconds: UnixTime) -> Self {
        Self::from_seconds(seconds)
    }
}

impl std::fmt::Display for NumericDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_whole() { write!(f, "{}", self.seconds) } else { write!(f, "{}", self.as_f64()) }
    }
}

impl Serialize for NumericDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_whole() { serializer.serialize_u64(self.seconds) } else { serializer.serialize_f64(self.as_f64()) }
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumericDateVisitor;
        impl Visitor<'_> for NumericDateVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a non-negative JSON number of seconds (RFC 7519 §2 NumericDate)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate::from_seconds(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v).map(NumericDate::from_seconds).map_err(|_| E::custom("negative NumericDate"))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<NumericDate, E> {
                u64::try_from(v).map(NumericDate::from_seconds).map_err(|_| E::custom("NumericDate out of range"))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<NumericDate, E> {
                u64::try_from(v).map(NumericDate::from_seconds).map_err(|_| E::custom("NumericDate out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                NumericDate::from_f64(v)
                    .ok_or_else(|| E::custom("NumericDate must be finite, non-negative, below 2^64"))
            }
        }
        deserializer.deserialize_any(NumericDateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Option<NumericDate> {
        serde_json::from_str(json).ok()
    }

    #[test]
    fn rfc7519_2_any_non_negative_json_number() {
        assert_eq!(parse("1795989379"), Some(NumericDate::from_seconds(1_795_989_379)));
        let half = parse("1795989379.5").unwrap();
        assert_eq!((half.whole_seconds(), half.ceil_seconds()), (1_795_989_379, 1_795_989_380));
        // Exponent notation, whole and not.
        assert_eq!(parse("1.795989379e9"), Some(NumericDate::from_seconds(1_795_989_379)));
        assert_eq!(parse("1.7959893795E9"), Some(half));
        assert_eq!(parse("0"), Some(NumericDate::from_seconds(0)));
        assert_eq!(parse("0.0"), Some(NumericDate::from_seconds(0)));
        // A tiny fraction still rounds up for nbf.
        assert_eq!(parse("5.000000000001").map(NumericDate::ceil_seconds), Some(6));
        assert_eq!(parse("18446744073709551615"), Some(NumericDate::from_seconds(u64::MAX)));
    }

    #[test]
    fn strings_negatives_and_overflow_are_refused() {
        for bad in [
            "\"1795989379\"",
            "-1",
            "-0.5",
            "1e400",
            "18446744073709551616",
            "1.8446744073709552e19",
            "null",
            "true",
            "[1]",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(NumericDate::from_f64(f64::NAN), None);
        assert_eq!(NumericDate::from_f64(f64::INFINITY), None);
    }

    #[test]
    fn whole_values_serialise_as_integers() {
        assert_eq!(serde_json::to_string(&NumericDate::from_seconds(100)).unwrap(), "100");
        assert_eq!(serde_json::to_string(&parse("100.5").unwrap()).unwrap(), "100.5");
        assert_eq!(NumericDate::from_json(&serde_json::json!(1.5e2)), Some(NumericDate::from_seconds(150)));
        assert_eq!(NumericDate::from_json(&serde_json::json!("150")), None);
    }
}
