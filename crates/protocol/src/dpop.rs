//! RFC 9449 DPoP: proof of possession for the tokens of Figure 2.
//!
//! With DPoP the client holds a key pair and signs a short JWT, the *proof*, for every
//! request it sends with a token: step A/G to the token endpoint (the server binds the
//! tokens it issues to the key's thumbprint) and steps C/E to the resource server (which
//! checks that the proof's key is the one the access token is bound to). A stolen token
//! is then useless without the private key: a thief cannot make a proof.
//!
//! ```text
//! POST /token HTTP/1.1                         GET /resource/read HTTP/1.1
//! DPoP: eyJ0eXAiOiJkcG9wK2p3dCIs...            Authorization: DPoP eyJhbGciOi...
//!                                              DPoP: eyJ0eXAiOiJkcG9wK2p3dCIs...(with ath)
//! ```
//!
//! This module is sans-IO: [`validate_proof`] takes `now`, the request's method and URI
//! and a replay check ([`JtiReplayCheck`]) as arguments. It also holds the thumbprint
//! (RFC 7638), the `WWW-Authenticate: DPoP` challenge (§7.1), server nonces (§8, §9) as
//! pure data, a bounded `jti` cache, and [`ProofKey`], which signs proofs.

use crate::clock::UnixTime;
use crate::error::{ErrorCode, ErrorResponse};
use crate::numeric_date::NumericDate;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BinaryHeap, HashSet};
use std::sync::Mutex;

/// §4.2: the `typ` of a DPoP proof: "dpop+jwt".
pub const TYP: &str = "dpop+jwt";

/// The request header that carries the proof (§4.1).
pub const DPOP_HEADER: &str = "dpop";
/// The response header that carries a server nonce (§8.1).
pub const NONCE_HEADER: &str = "dpop-nonce";
/// The token type of a DPoP-bound access token (§5, §12.2), and the HTTP authorization
/// scheme (§7.1).
pub const TOKEN_TYPE: &str = "DPoP";

/// §4.3 point 5: only asymmetric algorithms; never `none`, never a MAC (a proof is checked
/// with the public key it carries). The algorithms Figure2 verifies, the order it
/// publishes them in (`dpop_signing_alg_values_supported`, `algs`).
pub const SUPPORTED_ALGORITHMS: [Algorithm; 5] =
    [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA, Algorithm::PS256, Algorithm::RS256];

/// The JWA name of an algorithm of [`SUPPORTED_ALGORITHMS`].
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::PS256 => "PS256",
        Algorithm::RS256 => "RS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => "unsupported",
    }
}

/// The `algs` list of a challenge or the metadata: JWA names of `algorithms`.
pub fn algorithm_names(algorithms: &[Algorithm]) -> Vec<String> {
    algorithms.iter().map(|a| algorithm_name(*a).to_owned()).collect()
}

/// Why a proof was refused. Precise for logs and traces; on the wire every variant is
/// `invalid_dpop_proof` except [`DpopRejection::UseNonce`] (`use_dpop_nonce`) and
/// [`DpopRejection::KeyNotBound`] (`invalid_token` at the resource server, §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DpopRejection {
    #[error("no DPoP proof")]
    Missing,
    #[error("more than one DPoP header (RFC 9449 §4.3 point 1)")]
    Multiple,
    #[error("the DPoP proof is not a well-formed JWT (§4.3 point 2)")]
    Malformed,
    #[error("the DPoP proof lacks a required member: {0} (§4.3 point 3)")]
    MissingMember(&'static str),
    #[error("typ is not dpop+jwt (§4.3 point 4)")]
    WrongType,
    #[error("alg is not an accepted asymmetric algorithm (§4.3 point 5)")]
    AlgorithmNotAllowed,
    #[error("jwk is not a usable public key for alg (§4.3 point 6)")]
    UnusableKey,
    #[error("the signature does not verify with the embedded jwk (§4.3 point 6)")]
    BadSignature,
    #[error("jwk contains private key material (§4.3 point 7)")]
    PrivateKey,
    #[error("htm does not match the request method (§4.3 point 8)")]
    WrongMethod,
    #[error("htu does not match the request URI (§4.3 point 9)")]
    WrongUri,
    #[error("the server requires a fresh nonce (§8, §9; §4.3 point 10)")]
    UseNonce,
    #[error("iat is outside the acceptable window (§4.3 point 11)")]
    Stale,
    #[error("jti was already used: replayed proof (§11.1)")]
    Replayed,
    #[error("ath does not match the access token (§4.3 point 12)")]
    WrongAccessTokenHash,
    #[error("the proof's key is not the key the access token is bound to (§4.3 point 12)")]
    KeyNotBound,
}

/// The members a proof may lack ([`DpopRejection::MissingMember`]).
const MEMBERS: [&str; 8] = ["typ", "alg", "jwk", "jti", "htm", "htu", "iat", "ath"];

impl DpopRejection {
    /// A stable name for logs and traces (`reason_code`), unlike the English `Display`:
    /// `dpop_missing_member_jti`, `dpop_replayed`, … (prefixed: an access token's reasons
    /// share some names, such as `malformed`).
    pub fn code(self) -> String {
        let name = match self {
            Self::Missing => "missing",
            Self::Multiple => "multiple",
            Self::Malformed => "malformed",
            Self::MissingMember(member) => return format!("dpop_missing_member_{member}"),
            Self::WrongType => "wrong_type",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnusableKey => "unusable_key",
            Self::BadSignature => "bad_signature",
            Self::PrivateKey => "private_key",
            Self::WrongMethod => "wrong_method",
            Self::WrongUri => "wrong_uri",
            Self::UseNonce => "use_nonce",
            Self::Stale => "stale",
            Self::Replayed => "replayed",
            Self::WrongAccessTokenHash => "wrong_access_token_hash",
            Self::KeyNotBound => "key_not_bound",
        };
        format!("dpop_{name}")
    }

    /// Every reason (each missing member once), for tools that name them.
    pub fn all() -> Vec<Self> {
        let mut all = vec![
            Self::Missing,
            Self::Multiple,
            Self::Malformed,
            Self::WrongType,
            Self::AlgorithmNotAllowed,
            Self::UnusableKey,
            Self::BadSignature,
            Self::PrivateKey,
            Self::WrongMethod,
            Self::WrongUri,
            Self::UseNonce,
            Self::Stale,
            Self::Replayed,
            Self::WrongAccessTokenHash,
            Self::KeyNotBound,
        ];
        all.extend(MEMBERS.map(Self::MissingMember));
        all
    }

    /// The reason a [`DpopRejection::code`] names.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::all().into_iter().find(|r| r.code() == code)
    }

    /// The wire error code at the token endpoint (§5.2 with RFC 9449 §12.3).
    pub fn error_code(self) -> ErrorCode {
        match self {
            Self::UseNonce => ErrorCode::UseDpopNonce,
            _ => ErrorCode::InvalidDpopProof,
        }
    }

    pub fn to_error(self) -> ErrorResponse {
        let description = match self {
            Self::UseNonce => "Authorization server requires nonce in DPoP proof",
            Self::Replayed => "DPoP proof was already used",
            Self::Stale => "DPoP proof iat is outside the acceptable window",
            Self::WrongMethod | Self::WrongUri => "DPoP proof htm or htu does not match the request",
            Self::PrivateKey => "DPoP proof jwk must not contain a private key",
            Self::AlgorithmNotAllowed => "DPoP proof alg is not supported",
            _ => "DPoP proof is invalid",
        };
        ErrorResponse::new(self.error_code(), description)
    }

    /// The error of a `WWW-Authenticate: DPoP` challenge at the resource server (§7.1, §9).
    pub fn challenge_error(self) -> DpopChallengeError {
        match self {
            Self::UseNonce => DpopChallengeError::UseDpopNonce,
            Self::KeyNotBound => DpopChallengeError::InvalidToken,
            _ => DpopChallengeError::InvalidDpopProof,
        }
    }
}

/// The claims of a DPoP proof (§4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    /// Unique identifier of this proof (at least 96 bits of randomness, §11.1).
    pub jti: String,
    /// The HTTP method of the request.
    pub htm: String,
    /// The HTTP target URI of the request, without query and fragment.
    pub htu: String,
    /// When the proof was made (RFC 7519 NumericDate).
    pub iat: NumericDate,
    /// Base64url SHA-256 of the access token, when the proof goes with one (§4.2).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ath: Option<String>,
    /// The last nonce the server gave (§8, §9).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
}

/// How the server uses nonces (§8 at the authorization server, §9 at the resource server).
#[derive(Clone, Copy)]
pub enum NonceCheck<'a> {
    /// The server provides no nonces; a `nonce` claim is ignored.
    NotUsed,
    /// Every proof must carry a nonce the function accepts, else `use_dpop_nonce`.
    Required(&'a dyn Fn(&str) -> bool),
}

impl std::fmt::Debug for NonceCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotUsed => "NotUsed",
            Self::Required(_) => "Required",
        })
    }
}

/// What the server expects of the proof of one request.
#[derive(Debug, Clone, Copy)]
pub struct ProofExpectations<'a> {
    /// The request's method (§4.3 point 8).
    pub method: &'a str,
    /// The request's target URI as the server knows itself (§4.3 point 9).
    pub uri: &'a str,
    pub now: UnixTime,
    /// Seconds: how old a proof may be (`iat` at least `now - max_age`).
    pub max_age: u64,
    /// Seconds: how far in the future `iat` may be (clock skew).
    pub leeway: u64,
    pub allowed_algorithms: &'a [Algorithm],
    /// At the resource server: the access token the proof must go with (`ath`, §4.3
    /// point 12); `None` at the token endpoint.
    pub access_token: Option<&'a str>,
    pub nonce: NonceCheck<'a>,
}

/// A proof that passed every check of §4.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's public key (`cnf.jkt`).
    pub jkt: String,
    pub alg: Algorithm,
    pub claims: ProofClaims,
}

/// §11.1: the server remembers `jti`s for as long as their proofs are acceptable.
pub trait JtiReplayCheck {
    /// Records `jti`, to be remembered until `until` (inclusive); false if it was
    /// already recorded (a replay) or cannot be recorded (the cache is full).
    fn first_use(&self, jti: &str, until: UnixTime, now: UnixTime) -> bool;
}

/// §4.3 point 1: the request carries exactly one `DPoP` header. `None` when it has none.
pub fn single_proof<'a>(values: &[&'a str]) -> Result<Option<&'a str>, DpopRejection> {
    match values {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(DpopRejection::Multiple),
    }
}

/// The JWK members that make a key private (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Largest proof accepted, in bytes: a proof with an RSA-4096 key is about 1.5 KiB.
pub const MAX_PROOF_BYTES: usize = 8192;

/// RFC 9449 §4.3: checks a DPoP proof, in order: form, header, key, signature, claims,
/// nonce, `iat`, `ath`, and last the `jti` (recorded only for an otherwise valid proof).
pub fn validate_proof(
    proof: &str,
    expect: &ProofExpectations<'_>,
    replay: &dyn JtiReplayCheck,
) -> Result<ValidatedProof, DpopRejection> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(DpopRejection::Malformed);
    }
    // Point 2: a JWS compact serialization, three base64url parts.
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(DpopRejection::Malformed);
    };
    let header: Map<String, Value> = decode_json(h)?;
    // Point 4: "typ ... is dpop+jwt" (media types compare case-insensitively, RFC 2045 §5.1).
    match header.get("typ").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case(TYP) => {}
        Some(_) => return Err(DpopRejection::WrongType),
        None => return Err(DpopRejection::MissingMember("typ")),
    }
    // Point 5: an asymmetric algorithm this server accepts; `none` and HS* are not.
    let alg_name = header.get("alg").and_then(Value::as_str).ok_or(DpopRejection::MissingMember("alg"))?;
    let alg = expect
        .allowed_algorithms
        .iter()
        .copied()
        .find(|a| algorithm_name(*a) == alg_name && SUPPORTED_ALGORITHMS.contains(a))
        .ok_or(DpopRejection::AlgorithmNotAllowed)?;
    // RFC 7515 §4.1.11: this server understands no critical extension.
    if header.contains_key("crit") {
        return Err(DpopRejection::Malformed);
    }
    let jwk = header.get("jwk").and_then(Value::as_object).ok_or(DpopRejection::MissingMember("jwk"))?;
    // Point 7: "the jwk JOSE Header Parameter does not contain a private key".
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(DpopRejection::PrivateKey);
    }
    let key = decoding_key(jwk, alg)?;
    // Point 6: the signature verifies with the public key in `jwk`.
    let message = &proof[..h.len() + 1 + p.len()];
    match jsonwebtoken::crypto::verify(sig, message.as_bytes(), &key, alg) {
        Ok(true) => {}
        Ok(false) => return Err(DpopRejection::BadSignature),
        Err(_) => return Err(DpopRejection::BadSignature),
    }
    let jkt = jwk_thumbprint(&Value::Object(jwk.clone())).ok_or(DpopRejection::UnusableKey)?;
    // Point 3: the claims of §4.2.
    let payload: Map<String, Value> = decode_json(p)?;
    for member in ["jti", "htm", "htu", "iat"] {
        if !payload.contains_key(member) {
            return Err(DpopRejection::MissingMember(member));
        }
    }
    let claims: ProofClaims = serde_json::from_value(Value::Object(payload)).map_err(|_| DpopRejection::Malformed)?;
    if claims.jti.is_empty() {
        return Err(DpopRejection::MissingMember("jti"));
    }
    // Point 8: "The htm claim matches the HTTP method of the current request" (methods
    // are case-sensitive, RFC 9110 §9.1).
    if claims.htm != expect.method {
        return Err(DpopRejection::WrongMethod);
    }
    // Point 9: htu matches the request URI, "ignoring any query and fragment parts",
    // after syntax- and scheme-based normalisation (RFC 3986 §6.2.2, §6.2.3).
    match (normalize_htu(&claims.htu), normalize_htu(expect.uri)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(DpopRejection::WrongUri),
    }
    // Point 10: the nonce the server provided (§8, §9).
    if let NonceCheck::Required(accepts) = expect.nonce
        && !claims.nonce.as_deref().is_some_and(accepts)
    {
        return Err(DpopRejection::UseNonce);
    }
    // Point 11: iat within the window: not older than max_age, not further ahead than
    // the leeway. A fractional iat is rounded down (the conservative side of max_age is
    // the future check, which rounds up).
    let iat = claims.iat.whole_seconds();
    if iat.saturating_add(expect.max_age) < expect.now || claims.iat.ceil_seconds() > expect.now + expect.leeway {
        return Err(DpopRejection::Stale);
    }
    // Point 12: with an access token, ath is its hash.
    if let Some(access_token) = expect.access_token {
        let ath = claims.ath.as_deref().ok_or(DpopRejection::MissingMember("ath"))?;
        if !crate::secret::constant_time_eq(ath.as_bytes(), access_token_hash(access_token).as_bytes()) {
            return Err(DpopRejection::WrongAccessTokenHash);
        }
    }
    // §11.1: a jti is used once while its proof could be accepted.
    if !replay.first_use(&claims.jti, iat.saturating_add(expect.max_age), expect.now) {
        return Err(DpopRejection::Replayed);
    }
    Ok(ValidatedProof { jkt, alg, claims })
}

/// §4.3 point 12 at the resource server: the access token's `cnf.jkt` is the proof's key.
pub fn check_key_binding(token_jkt: &str, proof: &ValidatedProof) -> Result<(), DpopRejection> {
    if crate::secret::constant_time_eq(token_jkt.as_bytes(), proof.jkt.as_bytes()) {
        Ok(())
    } else {
        Err(DpopRejection::KeyNotBound)
    }
}

fn decode_json(part: &str) -> Result<Map<String, Value>, DpopRejection> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| DpopRejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| DpopRejection::Malformed)
}

/// A verifying key from a public JWK, only of the type `alg` needs (RFC 8725 §3.1).
fn decoding_key(jwk: &Map<String, Value>, alg: Algorithm) -> Result<DecodingKey, DpopRejection> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str).ok_or(DpopRejection::UnusableKey);
    let kty = member("kty")?;
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            let (crv, len) = if alg == Algorithm::ES256 { ("P-256", 32) } else { ("P-384", 48) };
            if kty != "EC" || member("crv")? != crv {
                return Err(DpopRejection::UnusableKey);
            }
            let (x, y) = (member("x")?, member("y")?);
            // RFC 7518 §6.2.1.2: each coordinate is the full size of the curve's field.
            for c in [x, y] {
                if URL_SAFE_NO_PAD.decode(c).map(|b| b.len()) != Ok(len) {
                    return Err(DpopRejection::UnusableKey);
                }
            }
            DecodingKey::from_ec_components(x, y)
        }
        Algorithm::EdDSA => {
            if kty != "OKP" || member("crv")? != "Ed25519" {
                return Err(DpopRejection::UnusableKey);
            }
            DecodingKey::from_ed_components(member("x")?)
        }
        Algorithm::RS256 | Algorithm::PS256 => {
            if kty != "RSA" {
                return Err(DpopRejection::UnusableKey);
            }
            DecodingKey::from_rsa_components(member("n")?, member("e")?)
        }
        _ => return Err(DpopRejection::AlgorithmNotAllowed),
    };
    key.map_err(|_| DpopRejection::UnusableKey)
}

/// RFC 7638 §3: the JWK SHA-256 thumbprint, base64url: the hash of the JSON object of the
/// key type's required members only, in lexicographic order, without whitespace.
/// `None` for a key type this server does not know or a missing member.
pub fn jwk_thumbprint(jwk: &Value) -> Option<String> {
    let kty = jwk.get("kty")?.as_str()?;
    // §3.2: the required members of each key type (RFC 7518 §6, RFC 8037 §2).
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, name) in members.iter().enumerate() {
        let value = jwk.get(*name)?.as_str()?;
        if i > 0 {
            canonical.push(',');
        }
        // serde_json writes a string with the minimal escaping RFC 7638 §3.3 asks for.
        canonical.push_str(&serde_json::to_string(name).ok()?);
        canonical.push(':');
        canonical.push_str(&serde_json::to_string(value).ok()?);
    }
    canonical.push('}');
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// §4.2 `ath`: base64url of the SHA-256 of the ASCII access token.
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// §4.3 point 9 / RFC 3986 §6.2.2–6.2.3: `scheme://host[:port]/path` with case,
/// percent-encoding, dot-segment and default-port normalisation; query and fragment
/// dropped. `None` if it is not an absolute http(s) URI.
pub fn normalize_htu(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return None;
    }
    let host = url.host_str()?;
    let mut out = format!("{}://{host}", url.scheme());
    // `url` already drops the scheme's default port (§6.2.3).
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    // §6.2.2.1/§6.2.2.2: percent-encodings of unreserved characters decoded, others in
    // upper case. `url` has already removed dot segments and made an empty path "/".
    let path = url.path().as_bytes();
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' && i + 2 < path.len() {
            let hex = std::str::from_utf8(&path[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    out.push(byte as char);
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
                i += 3;
                continue;
            }
        }
        out.push(path[i] as char);
        i += 1;
    }
    Some(out)
}

/// The errors of a `WWW-Authenticate: DPoP` challenge (§7.1: RFC 6750 §3.1's codes plus
/// RFC 9449's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopChallengeError {
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
    InvalidDpopProof,
    UseDpopNonce,
}

impl DpopChallengeError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::InvalidRequest, Self::InvalidToken, Self::InsufficientScope, Self::InvalidDpopProof, Self::UseDpopNonce]
            .into_iter()
            .find(|e| e.as_str() == s)
    }

    /// RFC 6750 §3.1 statuses; RFC 9449 §7.1/§9: the proof errors are 401.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::InsufficientScope => 403,
            _ => 401,
        }
    }
}

/// A `WWW-Authenticate: DPoP` challenge (§7.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DpopChallenge {
    pub realm: Option<String>,
    pub scope: Option<String>,
    pub error: Option<DpopChallengeError>,
    pub error_description: Option<String>,
    /// §7.1 `algs`: the JWS algorithms the server accepts, space-separated.
    pub algs: Option<String>,
}

impl DpopChallenge {
    pub fn new(realm: &str, algorithms: &[Algorithm]) -> Self {
        Self { realm: Some(realm.to_owned()), algs: Some(algorithm_names(algorithms).join(" ")), ..Self::default() }
    }

    pub fn with_error(mut self, error: DpopChallengeError, description: &str) -> Self {
        self.error = Some(error);
        self.error_description = Some(description.chars().filter(|c| crate::error::is_error_text_char(*c)).collect());
        self
    }

    pub fn with_scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_owned());
        self
    }

    pub fn http_status(&self) -> u16 {
        self.error.map_or(401, DpopChallengeError::http_status)
    }

    pub fn to_header_value(&self) -> String {
        let attrs = [
            ("realm", self.realm.as_deref()),
            ("scope", self.scope.as_deref()),
            ("error", self.error.map(DpopChallengeError::as_str)),
            ("error_description", self.error_description.as_deref()),
            ("algs", self.algs.as_deref()),
        ];
        crate::syntax::challenge(TOKEN_TYPE, &attrs)
    }

    /// Finds the DPoP challenge in a `WWW-Authenticate` value (RFC 7235 §4.1).
    pub fn parse(header: &str) -> Option<Self> {
        let (_, params) = crate::bearer::parse_challenges(header)?
            .into_iter()
            .find(|(scheme, _)| scheme.eq_ignore_ascii_case(TOKEN_TYPE))?;
        let mut c = Self::default();
        for (name, value) in params {
            match name.to_ascii_lowercase().as_str() {
                "realm" => c.realm = Some(value),
                "scope" => c.scope = Some(value),
                "error" => c.error = DpopChallengeError::parse(&value),
                "error_description" => c.error_description = Some(value),
                "algs" => c.algs = Some(value),
                _ => {}
            }
        }
        Some(c)
    }
}

/// §7.1: reads `Authorization: DPoP <token68>`. `Ok(None)` for no header or another
/// scheme; `Err(())` for malformed DPoP credentials.
#[allow(clippy::result_unit_err)]
pub fn extract_dpop_token(authorization: Option<&str>) -> Result<Option<&str>, ()> {
    let Some(value) = authorization else { return Ok(None) };
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case(TOKEN_TYPE) {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ');
    if crate::bearer::is_b64token(token) { Ok(Some(token)) } else { Err(()) }
}

/// A bounded, time-bounded memory of `jti`s (§11.1) for one server instance. Keeps the
/// SHA-256 of each `jti` (so a long `jti` costs no more memory) until its proof could no
/// longer pass the `iat` check. When full of unexpired entries it refuses new proofs
/// (fails closed: forgetting a live `jti` would let its proof be replayed).
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    inner: Mutex<ReplayInner>,
}

#[derive(Debug, Default)]
struct ReplayInner {
    seen: HashSet<[u8; 32]>,
    /// Min-heap by expiry.
    expiries: BinaryHeap<std::cmp::Reverse<(UnixTime, [u8; 32])>>,
}

impl ReplayCache {
    /// At most `capacity` `jti`s at once.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, inner: Mutex::new(ReplayInner::default()) }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl JtiReplayCheck for ReplayCache {
    fn first_use(&self, jti: &str, until: UnixTime, now: UnixTime) -> bool {
        let key: [u8; 32] = Sha256::digest(jti.as_bytes()).into();
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget the jtis whose proofs are too old to pass the iat check anyway.
        while let Some(std::cmp::Reverse((expiry, k))) = inner.expiries.peek().copied() {
            if expiry >= now {
                break;
            }
            inner.expiries.pop();
            inner.seen.remove(&k);
        }
        if inner.seen.contains(&key) || inner.seen.len() >= self.capacity {
            return false;
        }
        inner.seen.insert(key);
        inner.expiries.push(std::cmp::Reverse((until, key)));
        true
    }
}

/// Server nonces (§8, §9) as data: the current nonce and the one before it. A nonce is
/// current for `lifetime` seconds from when it was made; the previous one is accepted
/// until `2 × lifetime` after it was made, so a client that just received it keeps working
/// across one rotation. The caller supplies fresh random values.
#[derive(Debug, Clone)]
pub struct Nonces {
    lifetime: u64,
    current: Option<(String, UnixTime)>,
    previous: Option<(String, UnixTime)>,
}

impl Nonces {
    pub fn new(lifetime: u64) -> Self {
        Self { lifetime: lifetime.max(1), current: None, previous: None }
    }

    /// The nonce to send now (`DPoP-Nonce`), rotating it with `fresh` when it is older
    /// than the lifetime.
    pub fn current(&mut self, now: UnixTime, fresh: impl FnOnce() -> String) -> String {
        match &self.current {
            Some((nonce, made)) if now < made.saturating_add(self.lifetime) => nonce.clone(),
            _ => {
                let nonce = fresh();
                self.previous = self.current.take();
                self.current = Some((nonce.clone(), now));
                nonce
            }
        }
    }

    /// Whether a proof's nonce is the current or the previous one, within their time.
    pub fn accepts(&self, nonce: &str, now: UnixTime) -> bool {
        let matches = |entry: &Option<(String, UnixTime)>, span: u64| {
            entry.as_ref().is_some_and(|(n, made)| {
                now < made.saturating_add(span) && crate::secret::constant_time_eq(n.as_bytes(), nonce.as_bytes())
            })
        };
        matches(&self.current, self.lifetime) || matches(&self.previous, self.lifetime.saturating_mul(2))
    }
}

/// Derived server nonces (§8, §9), for servers that share no memory (several instances):
/// time is cut into windows of `lifetime` seconds, a nonce is a keyed hash of its window
/// number (the caller computes it), and, as with [`Nonces`], the current nonce and the one
/// before it are accepted. This is the window a nonce made at `now` belongs to.
pub fn nonce_window(now: UnixTime, lifetime: u64) -> u64 {
    now / lifetime.max(1)
}

/// The windows whose nonces are accepted at `now`: the current one and the one before.
pub fn accepted_nonce_windows(now: UnixTime, lifetime: u64) -> impl Iterator<Item = u64> {
    let window = nonce_window(now, lifetime);
    [Some(window), window.checked_sub(1)].into_iter().flatten()
}

/// A client's DPoP key (ES256, P-256), parsed once: signs proofs (§4.2). The private key
/// comes in as PKCS#8 made by the caller's CSPRNG (this crate draws no randomness).
pub struct ProofKey {
    encoding: EncodingKey,
    jwk: Value,
    jkt: String,
}

impl std::fmt::Debug for ProofKey {
    /// The private key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofKey").field("jkt", &self.jkt).finish_non_exhaustive()
    }
}

impl ProofKey {
    /// Parses a PKCS#8 ES256 private key.
    pub fn from_es256_pkcs8(pkcs8: &[u8]) -> Result<Self, String> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(|e| e.to_string())?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        let jkt = jwk_thumbprint(&jwk).ok_or("no thumbprint")?;
        Ok(Self { encoding: EncodingKey::from_ec_der(pkcs8), jwk, jkt })
    }

    /// The public key (RFC 7517), as it goes in the proof's `jwk` header.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// The RFC 7638 thumbprint: the `cnf.jkt` of tokens bound to this key.
    pub fn thumbprint(&self) -> &str {
        &self.jkt
    }

    /// Signs a proof with the §4.2 header `{typ: dpop+jwt, alg: ES256, jwk}`.
    pub fn sign(&self, claims: &ProofClaims) -> Result<String, String> {
        let header = json!({"typ": TYP, "alg": "ES256", "jwk": self.jwk});
        let payload = serde_json::to_value(claims).map_err(|e| e.to_string())?;
        self.sign_raw(&header, &payload)
    }

    /// Signs any header and payload (tests and conformance checks make bad proofs with it).
    pub fn sign_raw(&self, header: &Value, payload: &Value) -> Result<String, String> {
        let mut jws = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).map_err(|e| e.to_string())?);
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).map_err(|e| e.to_string())?));
        let signature =
            jsonwebtoken::crypto::sign(jws.as_bytes(), &self.encoding, Algorithm::ES256).map_err(|e| e.to_string())?;
        jws.push('.');
        jws.push_str(&signature);
        Ok(jws)
    }
}

/// RFC 7800 §3.1 / RFC 9449 §6.1: the confirmation claim of a DPoP-bound access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The RFC 7638 thumbprint of the key the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jkt: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

    fn key() -> ProofKey {
        let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap().to_pkcs8v1().unwrap();
        ProofKey::from_es256_pkcs8(pkcs8.as_ref()).unwrap()
    }

    const URI: &str = "https://server.example.com/token";

    fn claims(jti: &str, iat: u64) -> ProofClaims {
        ProofClaims { jti: jti.into(), htm: "POST".into(), htu: URI.into(), iat: iat.into(), ath: None, nonce: None }
    }

    fn expect(now: UnixTime) -> ProofExpectations<'static> {
        ProofExpectations {
            method: "POST",
            uri: URI,
            now,
            max_age: 60,
            leeway: 5,
            allowed_algorithms: &SUPPORTED_ALGORITHMS,
            access_token: None,
            nonce: NonceCheck::NotUsed,
        }
    }

    #[test]
    fn rfc7638_3_1_thumbprint_vector() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(jwk_thumbprint(&jwk).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn rfc9449_example_key_thumbprint_and_ath() {
        // RFC 9449 §4.1's example key and §6.1's cnf.jkt for it.
        let jwk = json!({"kty": "EC", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA", "crv": "P-256"});
        assert_eq!(jwk_thumbprint(&jwk).unwrap(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
        // §7.1's access token and the ath of its proof.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn a_good_proof_passes_and_its_jti_only_once() {
        let k = key();
        let cache = ReplayCache::new(10);
        let proof = k.sign(&claims("j1", 100)).unwrap();
        let ok = validate_proof(&proof, &expect(100), &cache).unwrap();
        assert_eq!(ok.jkt, k.thumbprint());
        assert_eq!(validate_proof(&proof, &expect(101), &cache), Err(DpopRejection::Replayed));
        // After the window the jti is forgotten, and the proof is stale anyway.
        assert_eq!(validate_proof(&proof, &expect(161), &cache), Err(DpopRejection::Stale));
        assert!(cache.first_use("j2", 200, 161));
        assert_eq!(cache.len(), 1, "j1 was forgotten");
    }

    #[test]
    fn header_rules() {
        let k = key();
        let cache = ReplayCache::new(10);
        let payload = serde_json::to_value(claims("j", 100)).unwrap();
        let bad = |header: Value| validate_proof(&k.sign_raw(&header, &payload).unwrap(), &expect(100), &cache);
        let jwk = k.public_jwk().clone();
        assert_eq!(bad(json!({"typ": "JWT", "alg": "ES256", "jwk": jwk})), Err(DpopRejection::WrongType));
        assert_eq!(bad(json!({"alg": "ES256", "jwk": jwk})), Err(DpopRejection::MissingMember("typ")));
        assert_eq!(bad(json!({"typ": TYP, "alg": "HS256", "jwk": jwk})), Err(DpopRejection::AlgorithmNotAllowed));
        assert_eq!(bad(json!({"typ": TYP, "alg": "none", "jwk": jwk})), Err(DpopRejection::AlgorithmNotAllowed));
        assert_eq!(bad(json!({"typ": TYP, "alg": "ES256"})), Err(DpopRejection::MissingMember("jwk")));
        let mut private = jwk.clone();
        private["d"] = json!("c2VjcmV0");
        assert_eq!(bad(json!({"typ": TYP, "alg": "ES256", "jwk": private})), Err(DpopRejection::PrivateKey));
        // Someone else's key: the signature does not verify.
        let other = key().public_jwk().clone();
        assert_eq!(bad(json!({"typ": TYP, "alg": "ES256", "jwk": other})), Err(DpopRejection::BadSignature));
        // An EC key claimed for an RSA algorithm.
        assert_eq!(bad(json!({"typ": TYP, "alg": "RS256", "jwk": jwk})), Err(DpopRejection::UnusableKey));
        // A symmetric key is not a public key.
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(bad(json!({"typ": TYP, "alg": "ES256", "jwk": oct})), Err(DpopRejection::PrivateKey));
        assert!(bad(json!({"typ": "DPoP+JWT", "alg": "ES256", "jwk": jwk})).is_ok());
        assert_eq!(validate_proof("a.b", &expect(100), &cache), Err(DpopRejection::Malformed));
        assert_eq!(single_proof(&["a", "b"]), Err(DpopRejection::Multiple));
    }

    #[test]
    fn claim_rules() {
        let k = key();
        let cache = ReplayCache::new(10);
        let check = |c: ProofClaims, e: ProofExpectations<'_>| validate_proof(&k.sign(&c).unwrap(), &e, &cache);
        assert_eq!(
            check(ProofClaims { htm: "GET".into(), ..claims("a", 100) }, expect(100)),
            Err(DpopRejection::WrongMethod)
        );
        let other_uri = ProofClaims { htu: "https://server.example.com/other".into(), ..claims("b", 100) };
        assert_eq!(check(other_uri, expect(100)), Err(DpopRejection::WrongUri));
        // Query and fragment are ignored; case and default port normalised.
        let q = ProofClaims { htu: "HTTPS://Server.Example.com:443/token?x=1#f".into(), ..claims("c", 100) };
        assert!(check(q, expect(100)).is_ok());
        assert_eq!(check(claims("d", 39), expect(100)), Err(DpopRejection::Stale));
        assert!(check(claims("e", 40), expect(100)).is_ok());
        assert_eq!(check(claims("f", 106), expect(100)), Err(DpopRejection::Stale));
        assert!(check(claims("g", 105), expect(100)).is_ok());
        let payload = json!({"htm": "POST", "htu": URI, "iat": 100});
        let header = json!({"typ": TYP, "alg": "ES256", "jwk": k.public_jwk()});
        assert_eq!(
            validate_proof(&k.sign_raw(&header, &payload).unwrap(), &expect(100), &cache),
            Err(DpopRejection::MissingMember("jti"))
        );
    }

    #[test]
    fn ath_and_binding_at_the_resource_server() {
        let k = key();
        let cache = ReplayCache::new(10);
        let rs = ProofExpectations { method: "GET", uri: "http://rs/r", access_token: Some("at"), ..expect(100) };
        let base = ProofClaims { htm: "GET".into(), htu: "http://rs/r".into(), ..claims("x", 100) };
        let without = k.sign(&base).unwrap();
        assert_eq!(validate_proof(&without, &rs, &cache), Err(DpopRejection::MissingMember("ath")));
        let wrong = k.sign(&ProofClaims { ath: Some(access_token_hash("other")), ..base.clone() }).unwrap();
        assert_eq!(validate_proof(&wrong, &rs, &cache), Err(DpopRejection::WrongAccessTokenHash));
        let right = k.sign(&ProofClaims { ath: Some(access_token_hash("at")), ..base }).unwrap();
        let ok = validate_proof(&right, &rs, &cache).unwrap();
        assert!(check_key_binding(k.thumbprint(), &ok).is_ok());
        assert_eq!(check_key_binding(key().thumbprint(), &ok), Err(DpopRejection::KeyNotBound));
    }

    #[test]
    fn nonces() {
        let k = key();
        let cache = ReplayCache::new(10);
        let mut nonces = Nonces::new(30);
        let n1 = nonces.current(100, || "n1".into());
        let accepts = |n: &str| nonces.accepts(n, 110);
        let required = ProofExpectations { nonce: NonceCheck::Required(&accepts), ..expect(110) };
        assert_eq!(
            validate_proof(&k.sign(&claims("a", 110)).unwrap(), &required, &cache),
            Err(DpopRejection::UseNonce)
        );
        let with = ProofClaims { nonce: Some(n1.clone()), ..claims("b", 110) };
        assert!(validate_proof(&k.sign(&with).unwrap(), &required, &cache).is_ok());
        assert_eq!(DpopRejection::UseNonce.error_code(), ErrorCode::UseDpopNonce);
        // Rotation: the previous nonce still works, one older does not.
        let n2 = nonces.current(130, || "n2".into());
        assert!(nonces.accepts(&n1, 131) && nonces.accepts(&n2, 131));
        nonces.current(160, || "n3".into());
        assert!(!nonces.accepts(&n1, 161));
        // A nonce never rotated out still dies after twice its lifetime.
        let mut quiet = Nonces::new(30);
        let n = quiet.current(0, || "q1".into());
        quiet.current(61, || "q2".into());
        assert!(!quiet.accepts(&n, 61));
    }

    #[test]
    fn the_replay_cache_is_bounded_and_fails_closed() {
        let cache = ReplayCache::new(2);
        assert!(cache.first_use("a", 10, 0));
        assert!(cache.first_use("b", 20, 0));
        assert!(!cache.first_use("c", 20, 0), "full of live jtis");
        assert!(cache.first_use("c", 20, 11), "a expired");
        assert!(!cache.first_use("b", 30, 11));
    }

    #[test]
    fn htu_normalisation() {
        assert_eq!(normalize_htu("http://A.example:80/a/../b/%7e%2f?q#f").unwrap(), "http://a.example/b/~%2F");
        assert_eq!(normalize_htu("https://a.example").unwrap(), "https://a.example/");
        assert_eq!(normalize_htu("http://127.0.0.1:8080/token").unwrap(), "http://127.0.0.1:8080/token");
        assert!(normalize_htu("/token").is_none());
        assert!(normalize_htu("ftp://x/").is_none());
    }

    #[test]
    fn challenges() {
        let c = DpopChallenge::new("figure2", &[Algorithm::ES256, Algorithm::PS256])
            .with_error(DpopChallengeError::InvalidToken, "Invalid DPoP key binding");
        let v = c.to_header_value();
        assert_eq!(
            v,
            r#"DPoP realm="figure2", error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256 PS256""#
        );
        assert_eq!(DpopChallenge::parse(&format!(r#"Bearer realm="x", {v}"#)).unwrap(), c);
        assert_eq!(c.http_status(), 401);
        assert_eq!(extract_dpop_token(Some("DPoP abc")), Ok(Some("abc")));
        assert_eq!(extract_dpop_token(Some("Bearer abc")), Ok(None));
        assert_eq!(extract_dpop_token(Some("DPoP")), Err(()));
    }
}
