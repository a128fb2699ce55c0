//! Following the clock of an authorization server under test control (`--clock-from`).
//! **For tests only**, like the control API it reads.
//!
//! When a test moves the authorization server's clock forward (`POST /control/clock/advance`),
//! its access tokens must expire here too, or step F never happens. Before each request
//! the resource server reads the authorization server's time (`GET /control/clock`) and
//! keeps the difference from its own system clock: one loopback round trip per request,
//! and never a stale time, which matters more in a test than the round trip.

use crate::ResourceServer;
use figure2_http::{Handler, HttpClient, Limits};
use figure2_protocol::{Clock, SystemClock, UnixTime};
use figure2_test_control::ControlClient;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::net::TcpListener;

/// The system clock plus the last offset read from the authorization server.
#[derive(Debug)]
pub struct FollowedClock {
    control: ControlClient,
    offset: AtomicI64,
}

impl FollowedClock {
    /// `issuer`: the issuer of an authorization server started with `--test-control`.
    pub fn new(issuer: &str, http: HttpClient) -> Self {
        Self { control: ControlClient::with_http(issuer, http), offset: AtomicI64::new(0) }
    }

    /// Reads the authorization server's time now. On failure the last offset stays.
    pub async fn sync(&self) -> Result<(), figure2_test_control::ControlClientError> {
        let state = self.control.clock().await?;
        let local = SystemClock.now() as i64;
        self.offset.store(state.now as i64 - local, Ordering::SeqCst);
        Ok(())
    }
}

impl Clock for FollowedClock {
    fn now(&self) -> UnixTime {
        (SystemClock.now() as i64 + self.offset.load(Ordering::SeqCst)).max(0) as u64
    }
}

/// [`crate::serve`], syncing `clock` with the authorization server before every request.
/// `server` must have been built with `clock`.
pub async fn serve_following(
    listener: TcpListener,
    server: Arc<ResourceServer>,
    clock: Arc<FollowedClock>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    figure2_http::serve_fn(listener, Limits::default(), shutdown, move |request| {
        let server = server.clone();
        let clock = clock.clone();
        async move {
            if let Err(e) = clock.sync().await {
                tracing::warn!(error = %e, "could not read the authorization server's clock; keeping the last offset");
            }
            server.handle(request).await
        }
    })
    .await
}
