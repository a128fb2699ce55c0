//! # figure2-conformance: a checker for anyone's Figure 2
//!
//! A catalogue of checks, each citing the RFC requirement it tests with the requirement's
//! own key word, runnable against anyone's authorization server (steps B, H), resource
//! server (D, F) or client (A, C, E, G) over real HTTP, or against Figure2's own roles
//! in-process on a simulated clock.
//!
//! The checker depends on `figure2-protocol` and `figure2-http` only. Figure2's roles are
//! injected from above (by `figure2-runner`): the authorization server's signing key, for
//! tokens only it could sign, through [`Forge`]; the client library as a
//! [`client::Subject::InProcess`] driver.
//!
//! The catalogue is data: `crates/conformance/catalogue/*.toml`, one file per role under
//! test, read by [`catalogue`]. Server checks are sequences of raw HTTP steps with
//! expectations ([`server`]); client checks put a client in front of a scripted
//! authorization server and resource server and look at what it did ([`client`]).
//!
//! Read first: `catalogue/authorization-server.toml`, then [`server`].

pub mod catalogue;
pub mod client;
pub mod forge;
pub mod server;

pub use catalogue::{CatalogueFile, client_catalogue, server_catalogue};

use serde::{Deserialize, Serialize};

/// The RFC 2119 key word of the requirement a check tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Keyword {
    #[serde(rename = "MUST")]
    Must,
    #[serde(rename = "MUST NOT")]
    MustNot,
    #[serde(rename = "SHOULD")]
    Should,
    #[serde(rename = "SHOULD NOT")]
    ShouldNot,
    #[serde(rename = "RECOMMENDED")]
    Recommended,
    #[serde(rename = "MAY")]
    May,
    /// The RFC describes the behaviour without an RFC 2119 key word.
    #[serde(rename = "(none)")]
    Descriptive,
}

impl Keyword {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Must => "MUST",
            Self::MustNot => "MUST NOT",
            Self::Should => "SHOULD",
            Self::ShouldNot => "SHOULD NOT",
            Self::Recommended => "RECOMMENDED",
            Self::May => "MAY",
            Self::Descriptive => "—",
        }
    }

    /// How strong the requirement is: 0 (MUST, MUST NOT) is the strongest, then the
    /// SHOULDs and RECOMMENDED, then MAY, then behaviour described without a key word.
    pub fn strength(self) -> u8 {
        match self {
            Self::Must | Self::MustNot => 0,
            Self::Should | Self::ShouldNot | Self::Recommended => 1,
            Self::May => 2,
            Self::Descriptive => 3,
        }
    }

    /// A failed MUST or MUST NOT makes the run fail.
    pub fn is_absolute(self) -> bool {
        matches!(self, Self::Must | Self::MustNot)
    }
}

/// What a check needs from the party under test; a check whose needs are not met is
/// skipped with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// A user's credentials for the password grant: only the checks of the password grant
    /// itself need it; the others take tokens from any grant ([`Need::Tokens`]).
    PasswordGrant,
    /// A token family (an access token and a refresh token) from any grant: the password
    /// grant, `--token-command` (a new family each time) or `--refresh-token` (one family,
    /// shared by the checks one after the other).
    Tokens,
    /// A family of its own that the check may spend (revoke, replay): the password grant
    /// or `--token-command`; a single `--refresh-token` would be lost for the checks after.
    NewFamily,
    /// An access token from any grant, the client credentials grant included (RFC 6749
    /// §4.4): enough for most resource-server checks.
    AccessToken,
    /// A second registered client.
    OtherClient,
    /// A resource server URL.
    Resource,
    /// A resource the granted scope does not cover (`--insufficient-scope-url`).
    ScopeLimitedResource,
    /// `revocation_endpoint` in the metadata.
    Revocation,
    /// `introspection_endpoint` in the metadata.
    Introspection,
    /// Refresh-token rotation (a refresh returns a new refresh token).
    Rotation,
    /// Time beyond the refresh token's lifetime (only the simulated clock can do that).
    RefreshTokenExpiry,
    /// Signing tokens with the authorization server's own key (in-process only).
    Forge,
    /// Access tokens that are JWTs (RFC 9068).
    JwtAccessTokens,
}

impl Need {
    pub fn describe(self) -> &'static str {
        match self {
            Self::PasswordGrant => "tests the password grant itself: needs --username and --password",
            Self::Tokens => "needs tokens: --username/--password (password grant), --token-command or --refresh-token",
            Self::NewFamily => {
                "spends a token family: needs --token-command or --username/--password (a single --refresh-token would be lost for the checks after)"
            }
            Self::AccessToken => {
                "needs an access token: --username/--password, --token-command, --refresh-token or --client-credentials"
            }
            Self::OtherClient => "needs a second client (--other-client-id, --other-client-secret)",
            Self::Resource => "needs --resource",
            Self::ScopeLimitedResource => "needs --insufficient-scope-url",
            Self::Revocation => "the metadata advertises no revocation_endpoint",
            Self::Introspection => "the metadata advertises no introspection_endpoint",
            Self::Rotation => "the server does not rotate refresh tokens",
            Self::RefreshTokenExpiry => "needs the clock to pass the refresh token's lifetime (in-process only)",
            Self::Forge => "needs the authorization server's signing key (in-process only)",
            Self::JwtAccessTokens => "the access tokens are not JWTs",
        }
    }
}

/// The role under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    AuthorizationServer,
    ResourceServer,
    Client,
}

/// The verdict of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Skip,
}

/// One check's result, with the catalogue entry's citation.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub role: Role,
    pub section: String,
    pub keyword: Keyword,
    pub summary: String,
    pub verdict: Verdict,
    pub reason: String,
}

/// All results of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConformanceReport {
    pub results: Vec<CheckResult>,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Junit,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            "junit" => Ok(Self::Junit),
            other => Err(format!("unknown format {other:?} (table, json or junit)")),
        }
    }
}

impl ConformanceReport {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.results.iter().filter(|r| r.verdict == verdict).count()
    }

    /// Whether any MUST / MUST NOT failed.
    pub fn failed_absolute(&self) -> bool {
        self.results.iter().any(|r| r.verdict == Verdict::Fail && r.keyword.is_absolute())
    }

    /// The closing line: `N passed, N failed, N skipped`.
    pub fn summary_line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.count(Verdict::Pass),
            self.count(Verdict::Fail),
            self.count(Verdict::Skip)
        )
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => {
                serde_json::to_string_pretty(&serde_json::json!({
                    "results": self.results,
                    "passed": self.count(Verdict::Pass),
                    "failed": self.count(Verdict::Fail),
                    "skipped": self.count(Verdict::Skip),
                }))
                .unwrap_or_default()
                    + "\n"
                    + &self.summary_line()
                    + "\n"
            }
            Format::Junit => self.junit(),
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let w_id = self.results.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
        let w_sec = self.results.iter().map(|r| r.section.chars().count()).max().unwrap_or(7).max(7);
        out.push_str(&format!("{:<w_id$}  {:<w_sec$}  {:<11}  {:<6}  reason\n", "id", "section", "key word", "result"));
        for r in &self.results {
            let verdict = match r.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "skip",
            };
            out.push_str(&format!(
                "{:<w_id$}  {:<w_sec$}  {:<11}  {:<6}  {}\n",
                r.id,
                r.section,
                r.keyword.as_str(),
                verdict,
                if r.verdict == Verdict::Pass && r.reason.is_empty() {
                    r.summary.clone()
                } else {
                    // A pass may explain itself (an expected logout is not a failure).
                    format!("{} — {}", r.summary, r.reason)
                }
            ));
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }

    fn junit(&self) -> String {
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuite name=\"figure2-conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
            self.results.len(),
            self.count(Verdict::Fail),
            self.count(Verdict::Skip)
        ));
        for r in &self.results {
            let name = format!("{} [{} {}] {}", r.id, r.section, r.keyword.as_str(), r.summary);
            out.push_str(&format!("  <testcase classname=\"{:?}\" name=\"{}\">", r.role, esc(&name)));
            match r.verdict {
                Verdict::Pass => {}
                Verdict::Fail => out.push_str(&format!("<failure message=\"{}\"/>", esc(&r.reason))),
                Verdict::Skip => out.push_str(&format!("<skipped message=\"{}\"/>", esc(&r.reason))),
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("</testsuite>\n");
        out.push_str(&format!("<!-- {} -->\n", self.summary_line()));
        out
    }
}

/// Signs tokens with the authorization server's own key: the seam through which the
/// in-process mode hands the checker what it needs to forge tokens a resource server must
/// refuse (expired, wrong issuer, wrong audience, …). The checker never imports a role:
/// whoever composes the roles (the runner) implements this for its authorization server.
pub trait Forge: Send + Sync {
    /// The `alg` and `kid` of the key that signs access tokens now.
    fn signing_key(&self) -> (jsonwebtoken::Algorithm, String);
    /// A JWS compact serialisation (RFC 7515 §7.1) of `header` and `claims`, signed with
    /// that key (`header.alg` is the key's).
    fn sign(&self, header: &jsonwebtoken::Header, claims: &serde_json::Value) -> Result<String, String>;
    /// The same for a payload given as JSON text, signed byte for byte (for claims a JSON
    /// serialiser would not write, such as a NumericDate in exponent notation).
    fn sign_raw(&self, header: &jsonwebtoken::Header, payload: &str) -> Result<String, String>;
    /// Adds a signing key (a new `kid`) that signs from now on; the previous one stays
    /// published and is remembered for [`Forge::sign_with_previous_key`].
    fn rotate_key(&self) -> Result<(), String>;
    /// Signs `claims` (with the standard RFC 9068 header) using the key that signed before
    /// the last [`Forge::rotate_key`].
    fn sign_with_previous_key(&self, claims: &serde_json::Value) -> Result<String, String>;
    /// Stops publishing every key but the one that signs (as
    /// `authorization-server retire-key` and a restart would).
    fn retire_other_keys(&self) -> Result<(), String>;
}
