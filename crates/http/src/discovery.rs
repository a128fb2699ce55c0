//! RFC 8414 discovery, the one copy every role and the checker use: fetch the
//! authorization server's metadata from the well-known URL of its issuer and check that
//! it names the same issuer, before Figure 2 starts.

use crate::{ClientError, HttpClient};
use figure2_protocol::metadata::{AuthorizationServerMetadata, MetadataError, metadata_url, openid_configuration_url};
use http::Method;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("issuer {0:?} is not a URL a metadata URL can be built from (RFC 8414 §3.1)")]
    InvalidIssuer(String),
    #[error(transparent)]
    Fetch(#[from] ClientError),
    #[error("GET {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url} did not return the expected JSON: {source}")]
    Json { url: String, source: serde_json::Error },
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("the JWK Set at {url} holds no key usable for verifying access tokens")]
    NoUsableKeys { url: String },
}

impl DiscoveryError {
    /// Whether trying again later may help (the authorization server may not be up yet).
    /// A bad issuer URL or an issuer mismatch will not fix itself.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::InvalidIssuer(_) | Self::Metadata(MetadataError::IssuerMismatch { .. }))
    }
}

/// RFC 8414 §3: GETs the metadata at the well-known URL of `issuer` (§3.1) and checks
/// that its `issuer` is identical to the one asked for (§3.3).
pub async fn discover(http: &HttpClient, issuer: &str) -> Result<AuthorizationServerMetadata, DiscoveryError> {
    let url = metadata_url(issuer).ok_or_else(|| DiscoveryError::InvalidIssuer(issuer.to_owned()))?;
    let (metadata, _): (AuthorizationServerMetadata, _) = get_json(http, &url).await?;
    // RFC 8414 §3.3: the metadata's issuer MUST be identical to the one we asked for.
    metadata.validate_for_issuer(issuer)?;
    Ok(metadata)
}

/// RFC 8414 discovery, then, if the RFC 8414 well-known URL answers 404, the OpenID
/// Connect Discovery document (RFC 8414 §5 compatibility; OpenID Connect Discovery 1.0
/// §4). Returns the metadata and the URL it came from. For the checker, which meets
/// servers that publish only one of the two; the issuer check (§3.3 / Discovery §4.3) is
/// the same.
pub async fn discover_any(
    http: &HttpClient,
    issuer: &str,
) -> Result<(AuthorizationServerMetadata, String), DiscoveryError> {
    let url = metadata_url(issuer).ok_or_else(|| DiscoveryError::InvalidIssuer(issuer.to_owned()))?;
    match discover(http, issuer).await {
        Err(DiscoveryError::Status { status: 404, .. }) => {
            let url = openid_configuration_url(issuer);
            let (metadata, _): (AuthorizationServerMetadata, _) = get_json(http, &url).await?;
            metadata.validate_for_issuer(issuer)?;
            Ok((metadata, url))
        }
        other => other.map(|m| (m, url)),
    }
}

/// GETs a JSON document (the metadata, a JWK Set) that must answer 200, with the
/// response's headers (their caching directives say how long a JWK Set stays fresh).
pub async fn get_json<T: serde::de::DeserializeOwned>(
    http: &HttpClient,
    url: &str,
) -> Result<(T, http::HeaderMap), DiscoveryError> {
    let response = http.send(Method::GET, url, &[("accept", "application/json")], None).await?;
    if response.status != 200 {
        return Err(DiscoveryError::Status { url: url.to_owned(), status: response.status });
    }
    let value = serde_json::from_slice(&response.body)
        .map_err(|source| DiscoveryError::Json { url: url.to_owned(), source })?;
    Ok((value, response.headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that publishes only the OpenID Connect document (as oidc-provider does),
    /// or both; real HTTP on loopback.
    async fn server(with_rfc8414: bool) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let iss = issuer.clone();
        tokio::spawn(crate::serve_fn(
            listener,
            crate::Limits::default(),
            async {
                let _ = stopped.await;
            },
            move |request: http::Request<crate::Incoming>| {
                let iss = iss.clone();
                async move {
                    let doc = serde_json::json!({
                        "issuer": iss,
                        "token_endpoint": format!("{iss}/token"),
                        "response_types_supported": ["code"],
                    });
                    match request.uri().path() {
                        "/.well-known/openid-configuration" => crate::json(200, &doc, &[]),
                        "/.well-known/oauth-authorization-server" if with_rfc8414 => {
                            let mut rfc8414 = doc.clone();
                            rfc8414["token_endpoint"] = serde_json::json!(format!("{iss}/rfc8414"));
                            crate::json(200, &rfc8414, &[])
                        }
                        _ => crate::json(404, &serde_json::json!({}), &[]),
                    }
                }
            },
        ));
        (issuer, stop)
    }

    #[tokio::test]
    async fn discover_any_falls_back_to_openid_connect_discovery_on_404_only() {
        let http = HttpClient::new();
        let (issuer, stop) = server(false).await;
        assert!(matches!(discover(&http, &issuer).await, Err(DiscoveryError::Status { status: 404, .. })));
        let (metadata, url) = discover_any(&http, &issuer).await.expect("falls back");
        assert_eq!(url, format!("{issuer}/.well-known/openid-configuration"));
        assert_eq!(metadata.token_endpoint.as_deref(), Some(format!("{issuer}/token").as_str()));
        let _ = stop.send(());
        // Where RFC 8414 metadata exists, it wins.
        let (issuer, stop) = server(true).await;
        let (metadata, url) = discover_any(&http, &issuer).await.expect("RFC 8414");
        assert_eq!(url, format!("{issuer}/.well-known/oauth-authorization-server"));
        assert_eq!(metadata.token_endpoint.as_deref(), Some(format!("{issuer}/rfc8414").as_str()));
        let _ = stop.send(());
    }
}
