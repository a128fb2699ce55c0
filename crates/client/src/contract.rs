//! `client --contract`: the client binary under `figure2 check-client`. It follows the
//! checker's contract (see `figure2 check-client --help`): environment variables say where
//! the scripted servers are and when to call; the exit code says how it ended
//! (0: every call ended 200, 3: the resource owner must authorize again, 1: otherwise).

use figure2_client::{Client, ClientConfig, ClientError};
use figure2_http::HttpClient;
use figure2_protocol::secret::{ClientSecret, Secret};
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::{Scope, SystemClock};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

pub async fn run() -> ExitCode {
    match contract().await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("client --contract: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn contract() -> Result<u8, String> {
    let secret = std::env::var("FIGURE2_CLIENT_SECRET").ok().filter(|s| !s.is_empty()).map(ClientSecret::new);
    let config = ClientConfig::new(var("FIGURE2_CLIENT_ID")?, secret, var("FIGURE2_TOKEN_ENDPOINT")?);
    let client = Client::new(config, Arc::new(SystemClock), HttpClient::new().with_timeout(Duration::from_secs(10)));
    let resource = var("FIGURE2_RESOURCE_URL")?;
    let times: Vec<f64> = var("FIGURE2_CALL_TIMES")?
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<f64>().map_err(|e| format!("FIGURE2_CALL_TIMES: {e}")))
        .collect::<Result<_, _>>()?;
    let concurrency: usize =
        var("FIGURE2_CONCURRENCY").unwrap_or_else(|_| "1".into()).parse().map_err(|_| "FIGURE2_CONCURRENCY")?;
    let grant = TokenRequest::Password {
        username: var("FIGURE2_USERNAME")?,
        password: Secret::new(var("FIGURE2_PASSWORD")?),
        scope: std::env::var("FIGURE2_SCOPE").ok().and_then(|s| Scope::parse(&s).ok()),
    };
    client.request_token(grant).await.map_err(|e| format!("step A: {e}"))?;
    let start = tokio::time::Instant::now();
    let mut all_ok = true;
    for t in times {
        tokio::time::sleep_until(start + Duration::from_secs_f64(t.max(0.0))).await;
        let calls: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                let client = client.clone();
                let resource = resource.clone();
                tokio::spawn(async move { client.call(http::Method::GET, &resource, None).await })
            })
            .collect();
        for call in calls {
            match call.await.map_err(|e| e.to_string())? {
                Ok(r) if r.status == 200 => {}
                Ok(_) => all_ok = false,
                Err(ClientError::ReauthorizationRequired(_)) => return Ok(3),
                Err(e) => {
                    eprintln!("client --contract: {e}");
                    all_ok = false;
                }
            }
        }
    }
    Ok(if all_ok { 0 } else { 1 })
}
