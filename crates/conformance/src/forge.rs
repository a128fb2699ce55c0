//! Crafted access tokens: the ones a resource server must refuse (RFC 9068 §4, RFC 8725),
//! and a JWKS check for the ones it must accept. Some need the authorization server's own
//! signing key and exist only in-process; the rest work against anyone's servers.

use crate::Forge;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use figure2_http::HttpClient;
use figure2_protocol::access_token::decode_unverified;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

/// What crafting needs from the servers under test: where their public keys are and, in
/// process only, the authorization server's signing key.
#[derive(Clone, Copy)]
pub struct Keys<'a> {
    pub http: &'a HttpClient,
    pub jwks_uri: Option<&'a str>,
    pub forge: Option<&'a dyn Forge>,
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// An opaque access token with its last character changed: a token its server never
/// issued, for the checks that only need a refused token.
pub fn tamper_opaque(genuine: &str) -> String {
    let mut out: String = genuine.chars().take(genuine.chars().count().saturating_sub(1)).collect();
    out.push(if genuine.ends_with('A') { 'B' } else { 'A' });
    out
}

/// Makes a token of `kind` from a genuine access token's claims.
pub async fn craft(kind: &str, genuine: &str, keys: Keys<'_>, now: u64) -> Result<String, String> {
    let (header, claims) = decode_unverified(genuine).ok_or("the access token is not a JWT")?;
    let kid = header.get("kid").and_then(|k| k.as_str()).unwrap_or("").to_owned();
    match kind {
        // RFC 9068 §4 / RFC 8725 §3.1: `none` must never be accepted.
        "alg-none" => Ok(format!("{}.{}.", b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})), b64(&claims))),
        // One byte of the signature changed.
        "tampered" => {
            let (body, sig) = genuine.rsplit_once('.').ok_or("not a JWT")?;
            let mut sig: Vec<u8> = URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?;
            let mid = sig.len() / 2;
            if let Some(b) = sig.get_mut(mid) {
                *b ^= 0x01;
            }
            Ok(format!("{body}.{}", URL_SAFE_NO_PAD.encode(sig)))
        }
        // Claims changed, signature kept.
        "altered-claims" => {
            let mut claims = claims.clone();
            claims["sub"] = json!("mallory");
            let sig = genuine.rsplit('.').next().unwrap_or("");
            Ok(format!("{}.{}.{sig}", genuine.split('.').next().unwrap_or(""), b64(&claims)))
        }
        // Algorithm confusion (RFC 8725 §2.1): HS256 keyed with the public key.
        "hs256-public-key" => {
            let jwks = fetch_jwks(keys).await?;
            let key = jwks["keys"]
                .as_array()
                .and_then(|keys| keys.iter().find(|k| k["kid"] == json!(kid)).or(keys.first()))
                .cloned()
                .ok_or("the JWKS has no key")?;
            let mut h = Header::new(Algorithm::HS256);
            h.typ = Some("at+jwt".into());
            h.kid = Some(kid);
            jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(key.to_string().as_bytes()))
                .map_err(|e| e.to_string())
        }
        // A well-formed token signed by a key the authorization server never published.
        "unknown-key" => sign_with_unpublished_key(&claims),
        // The rest are signed with the authorization server's own key: in-process only.
        _ => {
            let forge = keys.forge.ok_or("needs the authorization server's key")?;
            let (alg, kid) = forge.signing_key();
            let mut claims = claims.clone();
            let mut h = figure2_protocol::access_token::header(alg, &kid);
            match kind {
                "expired" => {
                    claims["iat"] = json!(now.saturating_sub(120));
                    claims["exp"] = json!(now.saturating_sub(60));
                }
                "not-yet-valid" => claims["nbf"] = json!(now + 3600),
                // RFC 7519 §2: NumericDate may be non-integer. Valid tokens, a
                // fraction in exp, nbf and iat (each on the safe side of now).
                "fractional-dates" => {
                    claims["exp"] = json!(now as f64 + 600.5);
                    claims["iat"] = json!(now as f64 - 0.5);
                    claims["nbf"] = json!(now as f64 - 1.5);
                }
                // The same in exponent notation (`1.795989379e9`): written by hand below,
                // as a JSON serialiser would print the number plainly.
                "exponent-exp" => {
                    let exp = (now + 600) * 10;
                    claims["exp"] = json!("FIGURE2_EXP");
                    let payload = claims.to_string().replace("\"FIGURE2_EXP\"", &format!("{exp}e-1"));
                    return forge.sign_raw(&h, &payload);
                }
                "wrong-issuer" => claims["iss"] = json!("https://attacker.example"),
                "wrong-audience" => claims["aud"] = json!("https://some-other-api.example"),
                // An OpenID Connect ID token: typ JWT, aud = the client, no scope.
                "id-token" => {
                    h.typ = Some("JWT".into());
                    claims["aud"] = claims["client_id"].clone();
                    if let Some(map) = claims.as_object_mut() {
                        map.remove("scope");
                        map.insert("nonce".into(), json!("n-0S6_WzA2Mj"));
                    }
                }
                "no-typ" => h.typ = None,
                other => return Err(format!("unknown forged token kind {other:?}")),
            }
            forge.sign(&h, &claims)
        }
    }
}

/// An ES256 token whose key was made a moment ago and published nowhere.
fn sign_with_unpublished_key(claims: &Value) -> Result<String, String> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .and_then(|k| k.to_pkcs8v1())
        .map_err(|e| e.to_string())?;
    let key = EncodingKey::from_ec_der(pkcs8.as_ref());
    let header = figure2_protocol::access_token::header(Algorithm::ES256, "figure2-unknown-kid");
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| e.to_string())
}

async fn fetch_jwks(keys: Keys<'_>) -> Result<Value, String> {
    let uri = keys.jwks_uri.ok_or("the metadata has no jwks_uri")?;
    let answer = keys.http.send(http::Method::GET, uri, &[], None).await.map_err(|e| e.to_string())?;
    if answer.status != 200 {
        return Err(format!("{uri} answered {}", answer.status));
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("{uri}: {e}"))
}

/// RFC 9068 §4 / RFC 7517 §4.5: the token's `kid` selects a published key, and the
/// signature verifies with it.
pub async fn verify_with_jwks(keys: Keys<'_>, token: &str) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("JWT header: {e}"))?;
    let kid = header.kid.clone().ok_or("the JWT header has no kid")?;
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(fetch_jwks(keys).await?).map_err(|e| format!("JWKS: {e}"))?;
    let jwk = jwks.find(&kid).ok_or_else(|| format!("no key with kid {kid:?} in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &key, &v).map(|_| ()).map_err(|e| format!("signature does not verify: {e}"))
}
