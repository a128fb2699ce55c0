//! `GET /authorize` and `POST /authorize` — RFC 6749 §4.1.1 and §4.1.2: where the
//! resource owner logs in and consents, so the client obtains the authorization code it
//! presents in step A.
//!
//! The page is deliberately minimal: one form with username, password and the scopes
//! asked for, and two buttons. The scenario runner submits the same form over HTTP as
//! the simulated resource owner.

use crate::{AuthorizationServer, read_form};
use figure2_http::HttpResponse;
use figure2_http::Incoming;
use figure2_protocol::authorization::{
    AUTHORIZATION_CODE_LIFETIME, AuthorizationCodeGrant, AuthorizationErrorCode, AuthorizationRequest,
    AuthorizationRequestError, error_redirect, success_redirect,
};
use figure2_protocol::form::FormParams;
use figure2_protocol::secret::{digest, fingerprint};

const PAGE_HEADERS: [(&str, &str); 4] = [
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    ("referrer-policy", "no-referrer"),
];

pub async fn handle(server: &AuthorizationServer, request: http::Request<Incoming>) -> HttpResponse {
    match *request.method() {
        http::Method::GET => {
            let query = request.uri().query().unwrap_or("").to_owned();
            match validate(server, &query) {
                Ok(req) => page(200, &login_form(&req, &query, None)),
                Err(answer) => *answer,
            }
        }
        http::Method::POST => submit(server, request).await,
        _ => figure2_http::text(405, "text/plain", "use GET or POST", &[("allow", "GET, POST")]),
    }
}

/// Validates the §4.1.1 request; errors become a page or a redirect (§4.1.2.1).
fn validate(server: &AuthorizationServer, query: &str) -> Result<AuthorizationRequest, Box<HttpResponse>> {
    let params = FormParams::parse(query.as_bytes()).map_err(|e| {
        Box::new(page(
            400,
            &message_page("Invalid authorization request", e.error_description.as_deref().unwrap_or("")),
        ))
    })?;
    AuthorizationRequest::validate(&params, |id| server.client(id).cloned()).map_err(|e| {
        Box::new(match e {
            AuthorizationRequestError::ShowToResourceOwner(why) => {
                page(400, &message_page("Invalid authorization request", &why))
            }
            AuthorizationRequestError::Redirect { redirect_uri, error, description, state } => {
                redirect(&error_redirect(&redirect_uri, error, &description, state.as_deref(), server.issuer()))
            }
        })
    })
}

async fn submit(server: &AuthorizationServer, request: http::Request<Incoming>) -> HttpResponse {
    let form = match read_form(request).await {
        Ok((_, form)) => form,
        Err(failure) => {
            let (status, error) = failure.into_error();
            return page(status, &message_page("Bad form", error.error_description.as_deref().unwrap_or("")));
        }
    };
    // RFC 6749 §3.1: the fields of this page's form may come once each.
    if let Err(e) = form.refuse_repeated(&["request", "username", "password", "decision"]) {
        return page(400, &message_page("Bad form", e.error_description.as_deref().unwrap_or("")));
    }
    let query = form.get("request").unwrap_or("").to_owned();
    let req = match validate(server, &query) {
        Ok(req) => req,
        Err(answer) => return *answer,
    };
    if form.get("decision") != Some("approve") {
        // §4.1.2.1 access_denied: "The resource owner ... denied the request."
        return redirect(&error_redirect(
            &req.redirect_uri,
            AuthorizationErrorCode::AccessDenied,
            "the resource owner denied the request",
            req.state.as_deref(),
            server.issuer(),
        ));
    }
    let username = form.get("username").unwrap_or("").to_owned();
    let password = form.get("password").unwrap_or("").to_owned();
    let ok = server.verify_resource_owner(&username, password).await;
    if !ok {
        return page(401, &login_form(&req, &query, Some("Wrong username or password.")));
    }
    let code = crate::random_token();
    let now = server.now();
    let grant = AuthorizationCodeGrant {
        client_id: req.client_id.clone(),
        subject: username,
        scope: req.scope.clone(),
        redirect_uri: req.redirect_uri_in_request.then(|| req.redirect_uri.clone()),
        code_challenge: req.code_challenge.clone(),
        expires_at: now + AUTHORIZATION_CODE_LIFETIME,
    };
    server.oidc_code_issued(&digest(&code), &query, &grant.scope, grant.expires_at).await;
    if let Err(e) = server.store.save_code(digest(&code), grant).await {
        tracing::error!(error = %e, "could not store authorization code");
        return redirect(&error_redirect(
            &req.redirect_uri,
            AuthorizationErrorCode::ServerError,
            "could not issue a code",
            req.state.as_deref(),
            server.issuer(),
        ));
    }
    tracing::info!(client_id = %req.client_id, code = fingerprint(&code), "authorization code issued");
    redirect(&success_redirect(&req.redirect_uri, &code, req.state.as_deref(), server.issuer()))
}

/// RFC 9700 §4.12: after a POST carrying credentials, redirect with 303 (never 307).
fn redirect(location: &str) -> HttpResponse {
    figure2_http::text(303, "text/plain", "", &[("location", location), ("cache-control", "no-store")])
}

fn page(status: u16, html: &str) -> HttpResponse {
    figure2_http::text(status, "text/html; charset=utf-8", html.to_owned(), &PAGE_HEADERS)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}\
label{display:block;margin:.6rem 0}input[type=text],input[type=password]{width:100%;padding:.4rem}\
button{margin:.8rem .4rem 0 0;padding:.5rem 1rem}.err{color:#b00}code{background:#eee;padding:0 .2rem}";

fn login_form(req: &AuthorizationRequest, query: &str, error: Option<&str>) -> String {
    let scopes: String = req.scope.iter().map(|s| format!("<li><code>{}</code></li>", escape(s))).collect();
    let error = error.map(|e| format!("<p class=\"err\">{}</p>", escape(e))).unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Figure2: authorize {client}</title>\
<style>{STYLE}</style></head><body><h1>Authorize <code>{client}</code></h1>\
<p>RFC 6749 §4.1: the client <code>{client}</code> asks for access to:</p><ul>{scopes}</ul>{error}\
<form method=\"post\" action=\"authorize\"><input type=\"hidden\" name=\"request\" value=\"{query}\">\
<label>Username <input type=\"text\" name=\"username\" autocomplete=\"username\" required></label>\
<label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button></form></body></html>",
        client = escape(&req.client_id),
        query = escape(query),
    )
}

fn message_page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head>\
<body><h1>{t}</h1><p class=\"err\">{m}</p><p>RFC 6749 §4.1.2.1: this error is shown here rather than sent to the \
client, because the client or its redirection URI could not be trusted.</p></body></html>",
        t = escape(title),
        m = escape(message)
    )
}
