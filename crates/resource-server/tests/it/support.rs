//! The test harness: wiremock stands in for the authorization server (RFC 8414 metadata
//! and a JWKS), an ES256 key signs tokens, and the resource server runs on a real
//! loopback socket with a simulated clock.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use figure2_http::{HttpClient, ReceivedResponse};
use figure2_protocol::SimulatedClock;
use figure2_protocol::access_token::{self, AccessTokenClaims, Audience};
use figure2_protocol::metadata::WELL_KNOWN_SUFFIX;
use figure2_resource_server::{ResourceServer, ResourceServerConfig, serve};
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const AUDIENCE: &str = "figure2-resource-server";
pub const START: u64 = 1_700_000_000;
pub const JWKS_PATH: &str = "/jwks";
pub const INTROSPECTION_PATH: &str = "/introspect";

/// An ES256 signing key and its public JWK.
pub struct Signer {
    pub kid: String,
    pub encoding: EncodingKey,
    /// The uncompressed public point, 0x04 || x || y.
    pub public: Vec<u8>,
}

impl Signer {
    pub fn generate(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("generate P-256 key");
        let pkcs8 = pair.to_pkcs8v1().expect("pkcs8");
        let public = pair.public_key().as_ref().to_vec();
        assert_eq!(public.len(), 65);
        assert_eq!(public[0], 0x04);
        Self { kid: kid.to_owned(), encoding: EncodingKey::from_ec_der(pkcs8.as_ref()), public }
    }

    pub fn jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "use": "sig",
            "alg": "ES256",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&self.public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&self.public[33..65]),
        })
    }

    /// Signs with the header every Figure2 access token carries.
    pub fn sign(&self, claims: &impl serde::Serialize) -> String {
        self.sign_with_header(&access_token::header(Algorithm::ES256, &self.kid), claims)
    }

    pub fn sign_with_header(&self, header: &Header, claims: &impl serde::Serialize) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).expect("sign")
    }

    /// Signs a payload given as raw JSON text, byte for byte (e.g. `"exp":1.7e9`, which
    /// a JSON serialiser would rewrite).
    pub fn sign_raw_payload(&self, payload: &str) -> String {
        let header = serde_json::to_string(&access_token::header(Algorithm::ES256, &self.kid)).expect("header");
        let message = format!("{}.{}", b64(header), b64(payload));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::ES256).expect("sign");
        format!("{message}.{signature}")
    }
}

pub fn jwks(signers: &[&Signer]) -> Value {
    json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() })
}

/// A resource server under test, its stand-in authorization server and their shared clock.
pub struct Harness {
    pub mock: MockServer,
    pub clock: SimulatedClock,
    pub signer: Signer,
    pub server: Arc<ResourceServer>,
    pub addr: SocketAddr,
    pub http: HttpClient,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

static JTI: AtomicU64 = AtomicU64::new(0);

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut ResourceServerConfig)) -> Self {
        let mock = MockServer::start().await;
        let signer = Signer::generate("k1");
        mount_authorization_server(&mock, &jwks(&[&signer])).await;
        let clock = SimulatedClock::starting_at(START);
        let mut config = ResourceServerConfig::new(mock.uri(), AUDIENCE);
        configure(&mut config);
        let http = HttpClient::new();
        let server = ResourceServer::discover(config, Arc::new(clock.clone()), http.clone()).await.expect("discovery");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(serve(listener, server.clone(), async {
            let _ = stopped.await;
        }));
        Self { mock, clock, signer, server, addr, http, stop: Some(stop), served: Some(served) }
    }

    /// Stops the server and waits for `serve` to return.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.served.take() {
            Some(served) => served.await.expect("serve task"),
            None => Ok(()),
        }
    }

    pub fn issuer(&self) -> String {
        self.mock.uri()
    }

    /// Claims of a fresh, valid token: `read write`, five minutes to live.
    pub fn claims(&self) -> AccessTokenClaims {
        let now = self.clock.now_secs();
        AccessTokenClaims {
            iss: self.issuer(),
            sub: "alice".into(),
            aud: Audience::One(AUDIENCE.into()),
            exp: (now + 300).into(),
            iat: now.into(),
            nbf: None,
            jti: format!("jti-{}", JTI.fetch_add(1, Ordering::Relaxed)),
            client_id: "demo-client".into(),
            scope: Some("read write".into()),
            cnf: None,
        }
    }

    pub fn token(&self) -> String {
        self.signer.sign(&self.claims())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> ReceivedResponse {
        self.http.send(method, &self.url(path), headers, body).await.expect("request")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> ReceivedResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.send(Method::GET, path, &headers, None).await
    }

    pub async fn get_with_authorization(&self, path: &str, authorization: &str) -> ReceivedResponse {
        self.send(Method::GET, path, &[("authorization", authorization)], None).await
    }

    /// How many times the stand-in authorization server's JWKS was fetched.
    pub async fn jwks_fetches(&self) -> usize {
        self.mock.received_requests().await.unwrap_or_default().iter().filter(|r| r.url.path() == JWKS_PATH).count()
    }

    /// Replaces the published JWKS (the authorization server rotated its keys).
    pub async fn publish_jwks(&self, jwks: &Value) {
        self.mock.reset().await;
        mount_authorization_server(&self.mock, jwks).await;
    }

    /// [`Harness::publish_jwks`] with headers on the JWKS response (e.g. `Cache-Control`).
    pub async fn publish_jwks_with(&self, jwks: &Value, headers: &[(&str, &str)]) {
        self.mock.reset().await;
        mount_authorization_server_with(&self.mock, jwks, headers).await;
    }

    /// Sends raw bytes on a fresh connection and returns what came back.
    pub async fn raw(&self, request: &[u8]) -> Vec<u8> {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut out = Vec::new();
        // The server may close early on a malformed request; whatever arrived is the answer.
        let _ = stream.read_to_end(&mut out).await;
        out
    }
}

pub async fn mount_authorization_server(mock: &MockServer, jwks: &Value) {
    mount_authorization_server_with(mock, jwks, &[]).await;
}

/// [`mount_authorization_server`] with extra headers on the JWKS response (caching).
pub async fn mount_authorization_server_with(mock: &MockServer, jwks: &Value, jwks_headers: &[(&str, &str)]) {
    let issuer = mock.uri();
    let metadata = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECTION_PATH}"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
    });
    Mock::given(method("GET"))
        .and(path(WELL_KNOWN_SUFFIX))
        .respond_with(ResponseTemplate::new(200).set_body_json(metadata))
        .mount(mock)
        .await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            jwks_headers
                .iter()
                .fold(ResponseTemplate::new(200).set_body_json(jwks.clone()), |r, (n, v)| r.insert_header(*n, *v)),
        )
        .mount(mock)
        .await;
}

/// The current simulated time, without importing the Clock trait in every test module.
pub trait NowSecs {
    fn now_secs(&self) -> u64;
}

impl NowSecs for SimulatedClock {
    fn now_secs(&self) -> u64 {
        figure2_protocol::Clock::now(self)
    }
}

/// base64url without padding, for hand-made tokens.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn json_body(r: &ReceivedResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", r.body_text()))
}

/// The `WWW-Authenticate` value of an answer.
pub fn challenge(r: &ReceivedResponse) -> &str {
    r.header("www-authenticate").unwrap_or_else(|| panic!("no WWW-Authenticate on HTTP {}", r.status))
}

/// A tiny deterministic PRNG (xorshift64*) for garbage inputs.
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
