//! The conformance checker, pointed at Figure2's own roles. The checker
//! (`figure2-conformance`) knows only the protocol and HTTP; this module injects the
//! roles from above: the in-process world's servers (with the simulated clock, so expiry
//! checks need no waiting), the authorization server's signing key through
//! [`Forge`], and the client library as an in-process [`Subject`].

use crate::world::World;
use figure2_authorization_server::AuthorizationServer;
use figure2_authorization_server::keys::SigningKey;
use figure2_client::{Client, ClientConfig, ClientError};
use figure2_conformance::client::{Ending, Env, Subject, join_all, worst};
use figure2_conformance::{CatalogueFile, ConformanceReport, Forge, server, server_catalogue};
use figure2_http::HttpClient;
use figure2_protocol::secret::{ClientSecret, Secret};
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::{Clock, Scope};
use std::sync::{Arc, Mutex, PoisonError};

/// The authorization server's signing keys, lent to the checker.
struct SigningKeyOf {
    server: Arc<AuthorizationServer>,
    /// The key that signed before the last rotation.
    previous: Mutex<Option<Arc<SigningKey>>>,
}

impl Forge for SigningKeyOf {
    fn signing_key(&self) -> (jsonwebtoken::Algorithm, String) {
        let key = self.server.signing_key();
        (key.alg, key.kid.clone())
    }

    fn sign(&self, header: &jsonwebtoken::Header, claims: &serde_json::Value) -> Result<String, String> {
        self.server.signing_key().sign_jwt_with_header(header, claims).map_err(|e| e.to_string())
    }

    fn sign_raw(&self, header: &jsonwebtoken::Header, payload: &str) -> Result<String, String> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use jsonwebtoken::{Algorithm, EncodingKey};
        let key = self.server.signing_key();
        let encoding = match key.alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_der(key.pkcs8()),
            Algorithm::EdDSA => EncodingKey::from_ed_der(key.pkcs8()),
            other => return Err(format!("raw-payload forging is not implemented for {other:?} keys")),
        };
        let header = serde_json::to_string(header).map_err(|e| e.to_string())?;
        let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &encoding, key.alg).map_err(|e| e.to_string())?;
        Ok(format!("{message}.{signature}"))
    }

    fn rotate_key(&self) -> Result<(), String> {
        let before = self.server.signing_key();
        self.server.rotate_signing_key().map_err(|e| e.to_string())?;
        *self.previous.lock().unwrap_or_else(PoisonError::into_inner) = Some(before);
        Ok(())
    }

    fn sign_with_previous_key(&self, claims: &serde_json::Value) -> Result<String, String> {
        let previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner).clone();
        previous.ok_or("no key was rotated out")?.sign_jwt(claims).map_err(|e| e.to_string())
    }

    fn retire_other_keys(&self) -> Result<(), String> {
        let signing = self.server.signing_key().kid.clone();
        let kids: Vec<String> = self.server.jwks()["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .filter(|kid| *kid != signing)
            .collect();
        for kid in kids {
            self.server.retire_signing_key(&kid).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The authorization-server options the in-process checks run with: short lifetimes,
/// so expiry checks need little simulated time.
pub fn in_process_config() -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("access_token_lifetime".into(), 60.into());
    t.insert("refresh_token_lifetime".into(), 3600.into());
    // RFC 9449 §5: bind the demo client's refresh tokens to its DPoP key too, so the
    // checks of a bound refresh token run against a confidential client.
    t.insert("dpop_bind_confidential_refresh_tokens".into(), true.into());
    t
}

/// Runs the server catalogues against Figure2's own roles, in-process, with the
/// simulated clock. `overrides` change the authorization server's configuration (tests
/// use them to break it on purpose).
pub async fn run_in_process(overrides: &toml::Table) -> Result<ConformanceReport, String> {
    let world = World::start(overrides).await.map_err(|e| e.to_string())?;
    let report = run_against_world(&world).await;
    world.stop().await;
    report
}

/// Runs the authorization-server and resource-server catalogues against a started world.
pub async fn run_against_world(world: &World) -> Result<ConformanceReport, String> {
    let metadata = figure2_http::discover(&world.http, &world.issuer).await.map_err(|e| e.to_string())?;
    let target = server::Target {
        issuer: world.issuer.clone(),
        metadata,
        client_id: "demo-client".into(),
        client_secret: "demo-secret".into(),
        other_client: Some(("other-client".into(), "other-secret".into())),
        user: Some(("alice".into(), "alice-password".into())),
        sources: Default::default(),
        scope: Some("read write".into()),
        resource: Some(format!("{}/resource/read", world.resource_url)),
        scope_limited_resource: Some(format!("{}/resource/admin", world.resource_url)),
        time: server::TimeSource::Simulated(world.clock.clone()),
        metadata_url: None,
        forge: Some(forge(world)),
        dpop_bound_refresh_tokens: world.authorization_server.config().dpop.bind_confidential_refresh_tokens,
        http: world.http.clone(),
    };
    let mut report = ConformanceReport::default();
    for file in CatalogueFile::SERVERS {
        let catalogue = server_catalogue(file)?;
        report.results.extend(server::run_catalogue(&catalogue, &target).await);
    }
    Ok(report)
}

/// The world's authorization server's signing keys, for the checker's in-process checks.
pub fn forge(world: &World) -> Arc<dyn Forge> {
    Arc::new(SigningKeyOf { server: world.authorization_server.clone(), previous: Mutex::new(None) })
}

/// Figure2's own client library as the client under test, in-process.
pub fn client_library() -> Subject {
    Subject::InProcess(Arc::new(|env: Env| Box::pin(drive_library(env))))
}

/// Plays the client checks' script with the client library on the checker's simulated
/// clock: the password grant (steps A, B), then the calls (C to H as needed).
async fn drive_library(env: Env) -> Ending {
    let clock = env.clock.clone();
    let mut config = ClientConfig::new(
        env.client_id.clone(),
        Some(ClientSecret::new(env.client_secret.clone())),
        env.token_endpoint,
    );
    // RFC 9449: a key for the session and a proof with every request, when asked.
    config.dpop = env.dpop;
    let client = Client::new(config, Arc::new(clock.clone()), HttpClient::new());
    let grant = TokenRequest::Password {
        username: env.username,
        password: Secret::new(env.password),
        scope: Scope::parse(&env.scope).ok(),
    };
    if let Err(e) = client.request_token(grant).await {
        return Ending::Failed(format!("step A failed: {e}"));
    }
    let start = clock.now();
    let mut ending = Ending::Ok;
    for at in &env.calls {
        let target = start + at;
        let now = clock.now();
        if target > now {
            clock.advance(target - now);
        }
        let calls = (0..env.concurrency).map(|_| client.call(http::Method::GET, &env.resource_url, None));
        for result in join_all(calls).await {
            match result {
                Ok(r) if r.status == 200 => {}
                Ok(r) => ending = worst(ending, Ending::Failed(format!("the resource answered {}", r.status))),
                Err(ClientError::ReauthorizationRequired(_)) => ending = worst(ending, Ending::Reauthorize),
                Err(e) => ending = worst(ending, Ending::Failed(e.to_string())),
            }
        }
        if ending == Ending::Reauthorize {
            break;
        }
    }
    ending
}
