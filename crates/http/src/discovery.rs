//! RFC 8414 discovery, the one copy every role and the checker use: fetch the
//! authorization server's metadata from the well-known URL of its issuer and check that
//! it names the same issuer, before Figure 2 starts.

use crate::{ClientError, HttpClient};
use figure2_protocol::metadata::{AuthorizationServerMetadata, MetadataError, metadata_url};
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
