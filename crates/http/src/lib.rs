//! # figure2-http: the I/O shell every role shares
//!
//! Not part of OAuth: this crate is the plumbing that lets the authorization server, the
//! resource server and the client stay thin. It holds
//! - [`serve`]: a hyper 1.x HTTP/1.1 accept loop over an already-bound listener, with a
//!   header-read timeout, bounded header count and buffer, and graceful shutdown;
//! - [`read_body`]: a request body read with a hard size limit;
//! - response builders ([`json`], [`text`]);
//! - [`HttpClient`]: a small HTTP/1.1 client with bounded response bodies;
//! - [`discover`]: RFC 8414 discovery of an authorization server by its issuer
//!   ([`discover_any`] falls back to OpenID Connect Discovery, for the checker).
//!
//! Protocol decisions never happen here; see `figure2-protocol`.

pub mod discovery;

pub use discovery::{DiscoveryError, discover, discover_any};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
pub use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The response type every handler returns.
pub type HttpResponse = Response<Full<Bytes>>;

/// Limits applied to every connection and request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time allowed to receive a request's headers (slowloris guard).
    pub header_read_timeout: Duration,
    /// Most headers in one request.
    pub max_headers: usize,
    /// hyper's read buffer, which bounds the size of the request head (minimum 8 KiB).
    pub max_head_bytes: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_headers: 64,
            max_head_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024,
            max_connections: 1024,
        }
    }
}

/// A request handler: one per role.
pub trait Handler: Send + Sync + 'static {
    fn handle(self: Arc<Self>, request: Request<Incoming>) -> impl Future<Output = HttpResponse> + Send;
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (for at most five seconds). Tests bind port 0 and pass the listener in.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_fn(listener, limits, shutdown, move |request| handler.clone().handle(request)).await
}

/// [`serve`] for any function from request to response, with any body type (the live
/// view streams server-sent events through it).
pub async fn serve_fn<F, Fut, B>(
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    handle: F,
) -> std::io::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let handle = Arc::new(handle);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // Backpressure: at the connection limit, stop accepting until one closes.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handle = handle.clone();
                let service = service_fn(move |req| {
                    let req = head_as_get(req);
                    let response = handle(req);
                    async move {
                        let mut response = response.await;
                        allow_head_with_get(&mut response);
                        // See `drop_connection`: hyper closes a connection whose service fails.
                        match response.extensions().get::<DropConnection>() {
                            Some(_) => Err(DropConnection),
                            None => Ok(response),
                        }
                    }
                });
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout)
                    .max_headers(limits.max_headers)
                    .max_buf_size(limits.max_head_bytes.max(8192));
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// Marks a response that must not be sent: the connection is closed instead, with no
/// answer at all (the authorization server's test-control API uses it to lose a response
/// after its commit). Build one with [`drop_connection`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("connection dropped on purpose")]
pub struct DropConnection;

/// A response that closes the connection without an answer (see [`DropConnection`]).
pub fn drop_connection() -> HttpResponse {
    let mut r = Response::new(Full::new(Bytes::new()));
    r.extensions_mut().insert(DropConnection);
    r
}

/// Marks a request that arrived as `HEAD` and is handed to the handler as `GET` (see
/// [`is_head`]).
#[derive(Debug, Clone, Copy)]
pub struct HeadRequest;

/// RFC 9110 §9.3.2: "The HEAD method is identical to GET except that the server MUST NOT
/// send content in the response." One rule for every role: the handler sees a `HEAD` as
/// a `GET` (so every GET route answers HEAD with the same status and headers, a 401's
/// `WWW-Authenticate` included), and hyper, which knows the request was HEAD, sends the
/// head with the GET's `Content-Length` and no content (RFC 9110 §8.6).
fn head_as_get<B>(mut request: Request<B>) -> Request<B> {
    let head = request.method() == Method::HEAD;
    if head {
        *request.method_mut() = Method::GET;
        request.extensions_mut().insert(HeadRequest);
    }
    request
}

/// Whether the request arrived as `HEAD` (a handler with a streaming body skips it).
pub fn is_head<B>(request: &Request<B>) -> bool {
    request.extensions().get::<HeadRequest>().is_some()
}

/// RFC 9110 §15.5.6: a 405 "MUST generate an Allow header field"; wherever it lists GET,
/// HEAD is allowed too (§9.3.2).
fn allow_head_with_get<B>(response: &mut Response<B>) {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return;
    }
    let Some(allow) = response.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()) else { return };
    let methods: Vec<&str> = allow.split(',').map(str::trim).filter(|m| !m.is_empty()).collect();
    let has = |m: &str| methods.iter().any(|x| x.eq_ignore_ascii_case(m));
    if has("GET") && !has("HEAD") {
        let value = format!("{}, HEAD", methods.join(", "));
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::ALLOW, v);
        }
    }
}

/// The `Allow` value of a route answering `methods` (HEAD added next to GET, RFC 9110 §9.3.2).
pub fn allow_value(methods: &[Method]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for m in methods {
        out.push(m.as_str());
        if *m == Method::GET && !methods.contains(&Method::HEAD) {
            out.push("HEAD");
        }
    }
    out.join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("request body could not be read")]
    Io,
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(BodyError::TooLarge(limit)),
        Err(_) => Err(BodyError::Io),
    }
}

/// The value of a header as UTF-8, if present and valid.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request's `Content-Type` is `expected` (parameters such as charset ignored).
pub fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    header_str(headers, &header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// A JSON response with extra headers.
pub fn json<T: serde::Serialize>(status: u16, body: &T, headers: &[(&str, &str)]) -> HttpResponse {
    let body = serde_json::to_vec(body).unwrap_or_default();
    response(status, "application/json", Bytes::from(body), headers)
}

/// A plain-text (or other typed) response.
pub fn text(status: u16, content_type: &str, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> HttpResponse {
    response(status, content_type, body.into(), headers)
}

fn response(status: u16, content_type: &str, body: Bytes, headers: &[(&str, &str)]) -> HttpResponse {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (header::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            h.append(n, v);
        }
    }
    r
}

/// Completes on Ctrl-C or, on Unix, SIGTERM (`docker stop`): every binary's graceful
/// shutdown. If a signal cannot be listened for, that signal is simply never seen.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// A response received by [`HttpClient`]. `Debug` shows the status and the header
/// names only: the body and the header values may hold tokens.
#[derive(Clone)]
pub struct ReceivedResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl std::fmt::Debug for ReceivedResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedResponse")
            .field("status", &self.status)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &format_args!("[{} bytes]", self.body.len()))
            .finish()
    }
}

impl ReceivedResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("HTTP request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    #[error("response body from {0} too large")]
    TooLarge(String),
    #[error("no answer from {0} in time")]
    Timeout(String),
}

/// A small HTTP/1.1 client (plain HTTP; Figure2's roles talk over loopback or a compose
/// network). Response bodies are bounded.
#[derive(Clone)]
pub struct HttpClient {
    inner: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    max_body: usize,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    pub fn new() -> Self {
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            // Below the servers' 10 s idle limit (header_read_timeout), so a pooled
            // keep-alive connection is never reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(5))
            .build_http();
        Self { inner, max_body: 1024 * 1024, timeout: Duration::from_secs(30) }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<ReceivedResponse, ClientError> {
        let mut builder = Request::builder().method(method).uri(url);
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        let fut = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| ClientError::Transport { url: url.to_owned(), reason: error_chain(&e) })?;
            let (parts, body) = response.into_parts();
            let body = read_body(body, self.max_body).await.map_err(|e| match e {
                BodyError::TooLarge(_) => ClientError::TooLarge(url.to_owned()),
                BodyError::Io => ClientError::Transport { url: url.to_owned(), reason: "body read failed".into() },
            })?;
            Ok(ReceivedResponse { status: parts.status.as_u16(), headers: parts.headers, body })
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| ClientError::Timeout(url.to_owned()))?
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Handler for Echo {
        async fn handle(self: Arc<Self>, request: Request<Incoming>) -> HttpResponse {
            let path = request.uri().path().to_owned();
            if path == "/drop" {
                return drop_connection();
            }
            match read_body(request.into_body(), 16).await {
                Ok(b) => text(200, "text/plain", format!("{path}:{}", b.len()), &[("x-test", "1")]),
                Err(e) => text(413, "text/plain", e.to_string(), &[]),
            }
        }
    }

    #[tokio::test]
    async fn serves_and_bounds_bodies() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::new(Echo), Limits::default(), async {
            let _ = rx.await;
        }));
        let client = HttpClient::new();
        let url = format!("http://{addr}/hello");
        let r = client.send(Method::POST, &url, &[], Some(Bytes::from_static(b"abc"))).await.unwrap();
        assert_eq!((r.status, r.body_text().as_str(), r.header("x-test")), (200, "/hello:3", Some("1")));
        let r = client.send(Method::POST, &url, &[], Some(Bytes::from(vec![b'a'; 100]))).await.unwrap();
        assert_eq!(r.status, 413);
        // A dropped connection: no status, no body, a transport error at the client.
        let dropped = client.send(Method::GET, &format!("http://{addr}/drop"), &[], None).await;
        assert!(matches!(dropped, Err(ClientError::Transport { .. })), "{dropped:?}");
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    struct GetOnly;
    impl Handler for GetOnly {
        async fn handle(self: Arc<Self>, request: Request<Incoming>) -> HttpResponse {
            match *request.method() {
                Method::GET => {
                    text(200, "text/plain", "hello", &[("x-head", if is_head(&request) { "1" } else { "0" })])
                }
                _ => text(405, "text/plain", "no", &[("allow", "GET")]),
            }
        }
    }

    #[tokio::test]
    async fn rfc9110_9_3_2_head_is_get_without_content() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::new(GetOnly), Limits::default(), async {
            let _ = rx.await;
        }));
        let client = HttpClient::new();
        let get = client.send(Method::GET, &url, &[], None).await.unwrap();
        let head = client.send(Method::HEAD, &url, &[], None).await.unwrap();
        assert_eq!((get.status, get.body_text().as_str(), get.header("x-head")), (200, "hello", Some("0")));
        assert_eq!((head.status, head.body.len(), head.header("x-head")), (200, 0, Some("1")));
        // §9.3.2: the same header fields, Content-Length included (§8.6).
        assert_eq!(head.header("content-length"), Some("5"));
        assert_eq!(head.header("content-type"), get.header("content-type"));
        // §15.5.6: a 405 lists HEAD wherever it lists GET.
        let post = client.send(Method::POST, &url, &[], None).await.unwrap();
        assert_eq!((post.status, post.header("allow")), (405, Some("GET, HEAD")));
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn allow_values() {
        assert_eq!(allow_value(&[Method::GET]), "GET, HEAD");
        assert_eq!(allow_value(&[Method::GET, Method::POST]), "GET, HEAD, POST");
        assert_eq!(allow_value(&[Method::POST]), "POST");
    }

    #[test]
    fn content_type_matching() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"));
        assert!(has_content_type(&h, "application/x-www-form-urlencoded"));
        assert!(!has_content_type(&h, "application/json"));
    }
}
