//! `grant_type=refresh_token` — RFC 6749 §6: steps G and H of Figure 2.
//!
//! The client is already authenticated (§6: "MUST ... authenticate the client"). The
//! decision is the family state machine's (`figure2_protocol::family`): the store loads
//! the presented token's family, runs the machine, persists its effects and commits;
//! only then does step H go out. The new refresh token is drawn here, before the store,
//! and kept only if the machine rotates.
//!
//! **Idempotent retry** (`reuse_returns_issued_successor`, Dex's `reuseInterval`): a retry
//! of a refresh must get the *same* successor back, but the store keeps only digests.
//! Under that policy the successor is not drawn but derived: HMAC-SHA-256 of the
//! presented token under a server key kept in the store (`server_secrets`). A retry
//! derives it again; nothing but digests is stored. The cost: whoever holds that key
//! *and* any refresh token of such a family can compute its successors, up to the live
//! token. The key lives in the database next to the signing keys, whose theft already
//! lets a thief mint access tokens; a database dump alone is no worse than before, but
//! an old refresh token found on a device plus the database is now worth a live one.
//! Policies without idempotent retry keep drawing 256 random bits.

use super::server_error;
use crate::AuthorizationServer;
use crate::store::RefreshCommand;
use figure2_protocol::ErrorResponse;
use figure2_protocol::client_auth::RegisteredClient;
use figure2_protocol::family::{ClientRegistration, RefreshRequest};
use figure2_protocol::secret::{AccessToken, RefreshToken, digest, fingerprint};
use figure2_protocol::token_request::RefreshTokenRequest;
use figure2_protocol::token_response::AccessTokenResponse;

pub(crate) async fn refresh(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    request: RefreshTokenRequest,
    dpop_jkt: Option<String>,
) -> Result<AccessTokenResponse, ErrorResponse> {
    let new_token = if server.refresh_policy.reuse_returns_issued_successor {
        server.derive_successor(request.refresh_token.expose())
    } else {
        crate::random_token()
    };
    let jti = super::new_jti();
    let command = RefreshCommand {
        presented: digest(request.refresh_token.expose()),
        request: RefreshRequest {
            client: ClientRegistration {
                client_id: client.client_id.clone(),
                scope: client.scope.clone(),
                public: !client.is_confidential(),
            },
            // Filled in by the store once it knows the family's resource owner.
            subject_registered: false,
            requested_scope: request.scope.clone(),
            // RFC 9449 §5: the machine checks it against the family's binding.
            dpop_jkt: dpop_jkt.clone(),
            replacement: digest(&new_token),
            access_token_id: Some(digest(&jti)),
            now: server.now(),
        },
        policy: server.refresh_policy.clone(),
        directory: server.directory.clone(),
    };
    let outcome = server.store.refresh(command).await.map_err(server_error)?;
    server.metrics.refresh_outcome(&outcome);
    let rt = request.refresh_token.fingerprint();
    let granted = match outcome.transition.decision {
        Ok(granted) => granted,
        Err(rejection) => {
            tracing::warn!(
                step = "G", client_id = %client.client_id, rt, reason = %rejection,
                reason_code = rejection.code(), family_revoked = outcome.transition.revokes_family(), "refresh refused"
            );
            return Err(rejection.to_error());
        }
    };
    if let Some(issued) = granted.new_refresh_token
        && granted.reissued
        && issued.digest != digest(&new_token)
    {
        // The successor was drawn under another policy: it cannot be handed back again.
        tracing::warn!(step = "G", client_id = %client.client_id, rt, "retry of a successor that cannot be derived");
        return Err(figure2_protocol::family::RefreshRejection::Reused.to_error());
    }
    let new_refresh = granted.new_refresh_token.is_some().then_some(new_token);
    tracing::info!(
        step = "H", client_id = %client.client_id, family = outcome.family_id, rt,
        new_rt = new_refresh.as_deref().map(fingerprint).unwrap_or_default(),
        grace = granted.within_grace_period, reissued = granted.reissued, "refresh granted"
    );
    let scope = granted.access_token_scope;
    // RFC 9449 §5: with a proof, the new access token is bound to its key (for a bound
    // family, the family's key: the machine checked they are the same).
    let (access_token, expires_in) =
        server.issue_access_token(&outcome.subject, &client.client_id, &scope, jti, dpop_jkt.as_deref())?;
    let id_token = server.oidc_id_token_on_refresh(outcome.family_id, &outcome.subject, &scope, client).await?;
    Ok(AccessTokenResponse {
        access_token: AccessToken::new(access_token),
        token_type: super::token_type(dpop_jkt.as_deref()).to_owned(),
        expires_in: Some(expires_in),
        refresh_token: new_refresh.map(RefreshToken::new),
        id_token,
        // §5.1: scope is REQUIRED if it differs from the requested one (a narrowed
        // registration); Figure2 always sends it.
        scope: Some(scope),
    })
}
