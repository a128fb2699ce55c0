//! Entry points of the fuzz targets in `fuzz/` (run with `cargo fuzz`) and of the
//! seed-corpus regression test `tests/fuzz_corpus.rs` (run by `cargo test`). Not API.
//!
//! Each function feeds arbitrary bytes to the parsers that read network input, as the
//! servers and the client do, and asserts a few round-trip properties. The only
//! acceptable outcome for hostile input is an `Err`/`None`: a panic is a bug.

use crate::access_token::{AccessTokenClaims, DEFAULT_ALLOWED_ALGORITHMS, check_header, decode_unverified};
use crate::authorization::AuthorizationRequest;
use crate::bearer::{BearerChallenge, extract_bearer_token, is_b64token};
use crate::client_auth::{ClientAuthentication, GrantType, RegisteredClient};
use crate::form::FormParams;
use crate::metadata::{AuthorizationServerMetadata, metadata_url};
use crate::revocation::TokenLookupRequest;
use crate::scope::Scope;
use crate::token_request::TokenRequest;

/// A fuzz target: arbitrary bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("token_request", token_request),
    ("authorization_header", authorization_header),
    ("www_authenticate", www_authenticate),
    ("jwt", jwt),
    ("scope", scope),
    ("metadata", metadata),
];

/// A token, revocation, introspection or authorization request. The input is the
/// `Authorization` header value, a newline, then the form body (no newline: body only).
pub fn token_request(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let Ok(form) = FormParams::parse(body) else { return };
    if let Ok(request) = TokenRequest::from_form(&form) {
        // What a client would send for this request parses back to the same grant.
        let again = FormParams::parse(request.to_form().as_bytes()).expect("to_form output is a valid form");
        let again = TokenRequest::from_form(&again).expect("to_form output is a valid token request");
        assert_eq!(again.grant_type(), request.grant_type());
    }
    if let Ok(ClientAuthentication::Basic { client_id, client_secret }) =
        ClientAuthentication::from_request(header, &form)
    {
        // RFC 6749 §2.3.1 encoding round trip: what basic_header_value builds, parse_basic reads.
        let rebuilt = ClientAuthentication::basic_header_value(&client_id, client_secret.expose());
        match ClientAuthentication::from_request(Some(&rebuilt), &FormParams::default()) {
            Ok(ClientAuthentication::Basic { client_id: id, client_secret: secret }) => {
                assert_eq!(id, client_id);
                assert!(secret.ct_eq(client_secret.expose()));
            }
            other => panic!("rebuilt Basic header does not parse back: {other:?}"),
        }
    }
    let _ = TokenLookupRequest::from_form(&form);
    let _ = AuthorizationRequest::validate(&form, |id| Some(fuzz_client(id)));
}

fn fuzz_client(client_id: &str) -> RegisteredClient {
    RegisteredClient {
        client_id: client_id.to_owned(),
        secret_digest: None,
        redirect_uris: vec!["https://client.example/cb".into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: Scope::parse("read write").unwrap_or_default(),
    }
}

/// An `Authorization` request header, as the resource server (Bearer, RFC 6750 §2.1) and
/// the token endpoint (Basic, RFC 6749 §2.3.1) read it.
pub fn authorization_header(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else { return };
    if let Ok(Some(token)) = extract_bearer_token(Some(value)) {
        assert!(is_b64token(token), "extracted a token outside b64token: {token:?}");
        assert!(value.contains(token));
    }
    let _ = ClientAuthentication::from_request(Some(value), &FormParams::default());
}

/// A `WWW-Authenticate` response header, as the client reads it in step F.
pub fn www_authenticate(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else { return };
    if let Some(challenge) = BearerChallenge::parse(value) {
        let rebuilt = challenge.to_header_value();
        assert_eq!(BearerChallenge::parse(&rebuilt).as_ref(), Some(&challenge), "round trip through {rebuilt:?}");
        let _ = challenge.http_status();
    }
}

/// A JWT access token as the resource server reads it before any signature check: the
/// header checks of RFC 9068 §4, the unverified decoding used by traces, and the claims.
pub fn jwt(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else { return };
    if let Ok(header) = jsonwebtoken::decode_header(token) {
        let _ = check_header(&header, &DEFAULT_ALLOWED_ALGORITHMS);
    }
    // The signature check the resource server runs next, with a fixed P-256 public key
    // (RFC 7517 Appendix A.1): garbage must be refused, never crash the verifier.
    if let Ok(key) = jsonwebtoken::DecodingKey::from_ec_components(
        "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
    ) {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let _ = jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation);
    }
    if let Some((_, payload)) = decode_unverified(token)
        && let Ok(claims) = serde_json::from_value::<AccessTokenClaims>(payload)
    {
        let _ = claims.scope();
        let _ = claims.aud.contains("figure2-resource-server");
    }
}

/// A `scope` parameter (RFC 6749 §3.3).
pub fn scope(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(scope) = Scope::parse(s) {
        let printed = scope.to_string();
        assert_eq!(Scope::parse(&printed).as_ref(), Ok(&scope), "round trip through {printed:?}");
        assert!(scope.is_subset_of(&scope));
    }
    let _ = serde_json::from_slice::<Scope>(data);
}

/// RFC 8414 metadata and an RFC 7517 JWK Set, as the client and the resource server read
/// them during discovery.
pub fn metadata(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<AuthorizationServerMetadata>(data) {
        let _ = m.validate_for_issuer("https://as.example");
        let _ = m.token_endpoint();
        let _ = m.jwks_uri();
        let _ = m.supports_grant("refresh_token");
        let _ = metadata_url(&m.issuer);
    }
    if let Ok(set) = serde_json::from_slice::<jsonwebtoken::jwk::JwkSet>(data) {
        for jwk in &set.keys {
            let _ = jsonwebtoken::DecodingKey::from_jwk(jwk);
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = metadata_url(s);
    }
}
