//! RFC 9068: JWT profile for OAuth 2.0 access tokens. The access token of steps B and H
//! is a signed JWT that the resource server validates locally in steps D and F, with no
//! call back to the authorization server.

use crate::clock::UnixTime;
use crate::numeric_date::NumericDate;
use crate::scope::Scope;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

/// RFC 9068 §2.1: access tokens "MUST include this media type in the typ header
/// parameter": `at+jwt` (§4 also accepts the long form `application/at+jwt`).
pub const TYP: &str = "at+jwt";

/// Algorithms the resource server accepts by default. `none` and the HMAC family are
/// never accepted: RFC 9068 §4 forbids `none`, and HMAC with a public key as the secret
/// is the classic algorithm-confusion attack (RFC 8725 §2.1).
pub const DEFAULT_ALLOWED_ALGORITHMS: [Algorithm; 3] = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA];

/// RFC 9068 §2.2: the claims of a JWT access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    /// RFC 7519 §2 NumericDate: any non-negative JSON number, fractions included.
    pub exp: NumericDate,
    pub iat: NumericDate,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nbf: Option<NumericDate>,
    pub jti: String,
    pub client_id: String,
    /// §2.2.3: space-delimited, as in RFC 6749 §3.3.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    /// RFC 9449 §6.1 (RFC 7800 §3.1): `{"jkt": thumbprint}` for a DPoP-bound token.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cnf: Option<crate::dpop::Confirmation>,
}

impl AccessTokenClaims {
    /// RFC 9449 §6.1: the thumbprint of the DPoP key this token is bound to, if any.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.cnf.as_ref().and_then(|c| c.jkt.as_deref())
    }

    pub fn scope(&self) -> Scope {
        self.scope.as_deref().and_then(|s| Scope::parse(s).ok()).unwrap_or_default()
    }
}

/// RFC 7519 §4.1.3: `aud` is a string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(a) => a == audience,
            Self::Many(list) => list.iter().any(|a| a == audience),
        }
    }
}

/// The header every Figure2 access token carries: `alg`, `typ: at+jwt`, `kid`.
pub fn header(alg: Algorithm, kid: &str) -> Header {
    let mut h = Header::new(alg);
    h.typ = Some(TYP.to_owned());
    h.kid = Some(kid.to_owned());
    h
}

/// What the resource server expects of a token it accepts.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub allowed_algorithms: &'a [Algorithm],
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
}

/// Why a token was refused. All are `invalid_token` on the wire (RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenRejection {
    #[error("not a JWT")]
    Malformed,
    #[error("typ is not at+jwt (RFC 9068 §4)")]
    WrongType,
    #[error("alg is not allowed")]
    AlgorithmNotAllowed,
    #[error("no key with this kid")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not yet valid")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("iss is not the expected issuer")]
    WrongIssuer,
    #[error("aud does not name this resource server")]
    WrongAudience,
}

impl AccessTokenRejection {
    /// Every reason, for tools that name them (the trace, its translations).
    pub const ALL: [Self; 10] = [
        Self::Malformed,
        Self::WrongType,
        Self::AlgorithmNotAllowed,
        Self::UnknownKey,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::IssuedInFuture,
        Self::WrongIssuer,
        Self::WrongAudience,
    ];

    /// A stable name for logs and traces (`reason_code`), unlike the English `Display`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::WrongType => "wrong_type",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
        }
    }

    /// The reason a [`AccessTokenRejection::code`] names.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// RFC 9068 §4: the header checks, before any cryptography.
pub fn check_header(header: &Header, allowed: &[Algorithm]) -> Result<(), AccessTokenRejection> {
    // "Resource servers MUST verify that the typ header value is at+jwt or
    // application/at+jwt and reject tokens carrying any other value."
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(TYP) || t.eq_ignore_ascii_case("application/at+jwt"));
    if !typ_ok {
        return Err(AccessTokenRejection::WrongType);
    }
    if !allowed.contains(&header.alg) {
        return Err(AccessTokenRejection::AlgorithmNotAllowed);
    }
    Ok(())
}

/// RFC 9068 §4: the claim checks, after the signature verified.
pub fn check_claims(
    claims: &AccessTokenClaims,
    expect: &Expectations<'_>,
    now: UnixTime,
) -> Result<(), AccessTokenRejection> {
    // "The issuer identifier ... MUST exactly match the value of the iss claim."
    if claims.iss != expect.issuer {
        return Err(AccessTokenRejection::WrongIssuer);
    }
    // "MUST validate that the aud claim contains a resource indicator value ... the
    // resource server expects"
    if !claims.aud.contains(expect.audience) {
        return Err(AccessTokenRejection::WrongAudience);
    }
    // "MUST verify that the current time is before the time represented by the exp claim"
    // `now` is a whole second, so a fractional exp is rounded down: never accepted past
    // it (see `crate::numeric_date`).
    if now >= claims.exp.whole_seconds().saturating_add(expect.leeway) {
        return Err(AccessTokenRejection::Expired);
    }
    // RFC 7519 §4.1.5: MUST NOT be accepted before nbf; a fraction rounds up.
    if claims.nbf.is_some_and(|nbf| now.saturating_add(expect.leeway) < nbf.ceil_seconds()) {
        return Err(AccessTokenRejection::NotYetValid);
    }
    // A sanity check, not a validity rule: a token issued during this second is fine.
    if now.saturating_add(expect.leeway) < claims.iat.whole_seconds() {
        return Err(AccessTokenRejection::IssuedInFuture);
    }
    Ok(())
}

/// Decodes a JWT's header and payload as JSON without verifying anything: for traces
/// and teaching only, never for decisions.
pub fn decode_unverified(jwt: &str) -> Option<(serde_json::Value, serde_json::Value)> {
    let mut parts = jwt.split('.');
    let (h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let h = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let p = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    Some((h, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://as.example".into(),
            sub: "alice".into(),
            aud: Audience::One("https://rs.example".into()),
            exp: 1_000.into(),
            iat: 400.into(),
            nbf: None,
            jti: "j1".into(),
            client_id: "c1".into(),
            scope: Some("read write".into()),
            cnf: None,
        }
    }

    const EXPECT: Expectations<'static> = Expectations {
        issuer: "https://as.example",
        audience: "https://rs.example",
        allowed_algorithms: &DEFAULT_ALLOWED_ALGORITHMS,
        leeway: 0,
    };

    #[test]
    fn exp_is_exclusive_and_leeway_extends_it() {
        assert!(check_claims(&claims(), &EXPECT, 999).is_ok());
        assert_eq!(check_claims(&claims(), &EXPECT, 1_000), Err(AccessTokenRejection::Expired));
        let lenient = Expectations { leeway: 30, ..EXPECT };
        assert!(check_claims(&claims(), &lenient, 1_029).is_ok());
    }

    #[test]
    fn fractional_numeric_dates_are_compared_conservatively() {
        let at = |json: &str| serde_json::from_str::<NumericDate>(json).unwrap();
        let mut c = claims();
        // RFC 7519 §2: exp 1000.5 is valid; with whole-second `now`, expired from 1000
        // (an instant within second 1000 may be past 1000.5).
        c.exp = at("1000.5");
        assert!(check_claims(&c, &EXPECT, 999).is_ok());
        assert_eq!(check_claims(&c, &EXPECT, 1_000), Err(AccessTokenRejection::Expired));
        c.exp = at("1.0005e3");
        assert_eq!(check_claims(&c, &EXPECT, 1_000), Err(AccessTokenRejection::Expired));
        // nbf 500.5: not before 501.
        c.nbf = Some(at("500.5"));
        assert_eq!(check_claims(&c, &EXPECT, 500), Err(AccessTokenRejection::NotYetValid));
        assert!(check_claims(&c, &EXPECT, 501).is_ok());
        // iat 400.5 is not "in the future" during second 400.
        c.nbf = None;
        c.iat = at("400.5");
        assert!(check_claims(&c, &EXPECT, 400).is_ok());
        assert_eq!(check_claims(&c, &EXPECT, 399), Err(AccessTokenRejection::IssuedInFuture));
    }

    #[test]
    fn claims_with_fractional_or_exponent_dates_deserialise() {
        let json = serde_json::json!({"iss": "i", "sub": "s", "aud": "a", "exp": 1795989379.5, "iat": 1.795989379e9,
            "nbf": 1795989000, "jti": "j", "client_id": "c"});
        let c: AccessTokenClaims = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(c.exp.whole_seconds(), 1_795_989_379);
        assert_eq!(c.iat.whole_seconds(), 1_795_989_379);
        for (claim, bad) in
            [("exp", serde_json::json!("1795989379")), ("exp", serde_json::json!(-1)), ("iat", serde_json::json!(-0.5))]
        {
            let mut j = json.clone();
            j[claim] = bad;
            assert!(serde_json::from_value::<AccessTokenClaims>(j).is_err(), "{claim}");
        }
    }

    #[test]
    fn issuer_and_audience() {
        let mut c = claims();
        c.iss = "https://evil.example".into();
        assert_eq!(check_claims(&c, &EXPECT, 500), Err(AccessTokenRejection::WrongIssuer));
        let mut c = claims();
        c.aud = Audience::Many(vec!["x".into(), "https://rs.example".into()]);
        assert!(check_claims(&c, &EXPECT, 500).is_ok());
        c.aud = Audience::One("x".into());
        assert_eq!(check_claims(&c, &EXPECT, 500), Err(AccessTokenRejection::WrongAudience));
    }

    #[test]
    fn header_rules() {
        let h = header(Algorithm::ES256, "k1");
        assert!(check_header(&h, &DEFAULT_ALLOWED_ALGORITHMS).is_ok());
        let mut id_token = h.clone();
        id_token.typ = Some("JWT".into());
        assert_eq!(check_header(&id_token, &DEFAULT_ALLOWED_ALGORITHMS), Err(AccessTokenRejection::WrongType));
        let mut long = h.clone();
        long.typ = Some("application/at+jwt".into());
        assert!(check_header(&long, &DEFAULT_ALLOWED_ALGORITHMS).is_ok());
        let hs = header(Algorithm::HS256, "k1");
        assert_eq!(check_header(&hs, &DEFAULT_ALLOWED_ALGORITHMS), Err(AccessTokenRejection::AlgorithmNotAllowed));
    }

    #[test]
    fn claims_serialise_per_rfc9068() {
        let json = serde_json::to_value(claims()).unwrap();
        for k in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"] {
            assert!(json.get(k).is_some(), "{k}");
        }
        assert!(json.get("nbf").is_none());
        assert_eq!(claims().scope().to_string(), "read write");
    }

    #[test]
    fn decode_unverified_reads_header_and_payload() {
        // RFC 7519 §3.1 example.
        let jwt = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let (h, p) = decode_unverified(jwt).unwrap();
        assert_eq!(h["alg"], "HS256");
        assert_eq!(p["iss"], "joe");
        assert!(decode_unverified("a.b").is_none());
    }
}
