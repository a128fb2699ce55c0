//! Every sentence the runner says about Figure 2, in English and in Chinese, in one place:
//! the terminal trace (`figure2 run --lang zh`), the exports and the live page
//! (`figure2 serve`, which fetches [`i18n_json`]) all read them from here.
//!
//! The RFC text is summarised in our own words, each summary with a link to the section
//! it comes from (RFC 6749 §1.5 and §6, RFC 6750 §2.1 and §3).

use figure2_protocol::FlowStep;
use figure2_runner::reasons::Rejection;
use figure2_runner::scenario::{Action, GrantKind, Role, Server, Text, ThiefProof};
use figure2_runner::trace::{Expectation, Failure, Happening, ResourceOwnerAct, TracedExchange, letters};
use figure2_runner::world::Endpoint;
use serde_json::{Value, json};

/// A language of the narration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    /// The code used on the command line and in the page: `en`, `zh`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
}

impl std::str::FromStr for Lang {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "en" | "english" => Ok(Lang::En),
            "zh" | "zh-cn" | "zh-hans" | "chinese" | "中文" => Ok(Lang::Zh),
            other => Err(format!("unknown language {other:?} (use en or zh)")),
        }
    }
}

/// Figure 2's steps in a sentence each (RFC 6749 §1.5, in our words). `ok` says whether
/// the answer was a success (it changes B, D and H).
pub fn narration(lang: Lang, step: FlowStep, ok: bool) -> &'static str {
    match lang {
        Lang::En => match (step, ok) {
            (FlowStep::A, _) => {
                "The client authenticates and presents an authorization grant to the authorization server."
            }
            (FlowStep::B, true) => {
                "The authorization server validates the grant and issues an access token and a refresh token."
            }
            (FlowStep::B, false) => "The authorization server refuses the grant (RFC 6749 §5.2).",
            (FlowStep::C, _) => "The client presents the access token to the resource server.",
            (FlowStep::D, true) => "The resource server validates the access token locally and serves the request.",
            (FlowStep::D, false) => "The resource server refuses the request.",
            (FlowStep::E, _) => {
                "Steps C and D repeat until the access token expires; the client presents it once more."
            }
            (FlowStep::F, _) => {
                "The access token is no longer valid: the resource server answers invalid_token (RFC 6750 §3.1)."
            }
            (FlowStep::G, _) => {
                "The client authenticates and presents the refresh token to the authorization server (RFC 6749 §6)."
            }
            (FlowStep::H, true) => {
                "The authorization server validates the refresh token and issues a new access token (and, optionally, a new refresh token)."
            }
            (FlowStep::H, false) => "The authorization server refuses the refresh token (RFC 6749 §5.2).",
        },
        Lang::Zh => match (step, ok) {
            (FlowStep::A, _) => "客户端向授权服务器认证自己的身份，并出示授权许可。",
            (FlowStep::B, true) => "授权服务器验证授权许可，签发访问令牌和刷新令牌。",
            (FlowStep::B, false) => "授权服务器拒绝了该授权许可（RFC 6749 §5.2）。",
            (FlowStep::C, _) => "客户端向资源服务器出示访问令牌。",
            (FlowStep::D, true) => "资源服务器在本地验证访问令牌，并处理请求。",
            (FlowStep::D, false) => "资源服务器拒绝了该请求。",
            (FlowStep::E, _) => "步骤 C 和 D 一直重复，直到访问令牌过期；客户端又一次出示了这个令牌。",
            (FlowStep::F, _) => "访问令牌已经失效：资源服务器返回 invalid_token（RFC 6750 §3.1）。",
            (FlowStep::G, _) => "客户端向授权服务器认证自己的身份，并出示刷新令牌（RFC 6749 §6）。",
            (FlowStep::H, true) => "授权服务器验证刷新令牌，签发新的访问令牌（也可以同时签发新的刷新令牌）。",
            (FlowStep::H, false) => "授权服务器拒绝了该刷新令牌（RFC 6749 §5.2）。",
        },
    }
}

/// The narration of an answer that never came back usable (a 5xx: the server or the
/// network failed, e.g. a lost response).
pub fn no_answer(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "No usable answer reached the client: the server or the network failed.",
        Lang::Zh => "客户端没有收到可用的应答：服务器或网络出了故障。",
    }
}

/// The narration of an exchange's response letter given its status.
pub fn response_narration(lang: Lang, step: FlowStep, status: u16) -> &'static str {
    match status {
        500.. => no_answer(lang),
        s => narration(lang, step, s < 400),
    }
}

/// A section of an RFC, as cited and as linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Citation {
    pub label: &'static str,
    pub url: &'static str,
}

const RFC6749_1_5: Citation =
    Citation { label: "RFC 6749 §1.5", url: "https://www.rfc-editor.org/rfc/rfc6749#section-1.5" };
const RFC6749_4: Citation = Citation { label: "RFC 6749 §4", url: "https://www.rfc-editor.org/rfc/rfc6749#section-4" };
const RFC6749_5_1: Citation =
    Citation { label: "RFC 6749 §5.1", url: "https://www.rfc-editor.org/rfc/rfc6749#section-5.1" };
const RFC6749_6: Citation = Citation { label: "RFC 6749 §6", url: "https://www.rfc-editor.org/rfc/rfc6749#section-6" };
const RFC6750_2_1: Citation =
    Citation { label: "RFC 6750 §2.1", url: "https://www.rfc-editor.org/rfc/rfc6750#section-2.1" };
const RFC6750_3: Citation = Citation { label: "RFC 6750 §3", url: "https://www.rfc-editor.org/rfc/rfc6750#section-3" };
const RFC6750_3_1: Citation =
    Citation { label: "RFC 6750 §3.1", url: "https://www.rfc-editor.org/rfc/rfc6750#section-3.1" };

/// The sections a Figure 2 step comes from.
pub fn citations(step: FlowStep) -> &'static [Citation] {
    match step {
        FlowStep::A => &[RFC6749_1_5, RFC6749_4],
        FlowStep::B => &[RFC6749_1_5, RFC6749_5_1],
        FlowStep::C => &[RFC6749_1_5, RFC6750_2_1],
        FlowStep::D | FlowStep::E => &[RFC6749_1_5],
        FlowStep::F => &[RFC6749_1_5, RFC6750_3, RFC6750_3_1],
        FlowStep::G | FlowStep::H => &[RFC6749_1_5, RFC6749_6],
    }
}

/// What the RFCs say about a step, in a few sentences of our own.
pub fn rfc_text(lang: Lang, step: FlowStep) -> &'static str {
    match lang {
        Lang::En => match step {
            FlowStep::A => {
                "The client asks the authorization server for tokens by presenting an authorization grant: an authorization code, the resource owner's password or the client's own credentials (§4). A confidential client authenticates itself in the same request."
            }
            FlowStep::B => {
                "The authorization server authenticates the client, checks the grant and answers with an access token and, usually, a refresh token. The answer is JSON and must not be cached (Cache-Control: no-store, §5.1). The refresh token is for the authorization server only: the client never sends it to a resource server."
            }
            FlowStep::C => {
                "The client asks the resource server for a protected resource and shows it may have it by presenting the access token, here in the Authorization: Bearer header (RFC 6750 §2.1)."
            }
            FlowStep::D => {
                "The resource server validates the access token and, if it is valid, serves the request. Here it checks the JWT's signature, issuer, audience, expiry and scope locally, with the keys the authorization server publishes."
            }
            FlowStep::E => {
                "Steps C and D repeat until the access token expires. A client that knows the token has expired (from expires_in) skips straight to step G; this one does not, so it presents the old token once more."
            }
            FlowStep::F => {
                "The token is no longer valid, so the resource server refuses the request: 401 with a WWW-Authenticate: Bearer challenge carrying error=\"invalid_token\" (RFC 6750 §3, §3.1). It tells the client that a new access token may help."
            }
            FlowStep::G => {
                "The client authenticates to the authorization server and sends grant_type=refresh_token with its refresh token (§6). It may ask for a narrower scope, never a wider one than was originally granted."
            }
            FlowStep::H => {
                "The authorization server checks that the refresh token is valid and was issued to this client, then issues a new access token. It may also issue a new refresh token: then the client must drop the old one, and the server may revoke it (rotation)."
            }
        },
        Lang::Zh => match step {
            FlowStep::A => {
                "客户端向授权服务器出示授权许可，以换取令牌。授权许可可以是授权码、资源所有者的密码，或者客户端自己的凭据（§4）。机密客户端在同一个请求里还要证明自己的身份。"
            }
            FlowStep::B => {
                "授权服务器认证客户端、校验授权许可，然后返回访问令牌，通常还有一个刷新令牌。响应是 JSON 格式，并且不得被缓存（Cache-Control: no-store，§5.1）。刷新令牌只发给授权服务器使用，客户端绝不会把它发送给资源服务器。"
            }
            FlowStep::C => {
                "客户端向资源服务器请求受保护的资源，并出示访问令牌来证明自己有权访问；这里令牌放在 Authorization: Bearer 请求头中（RFC 6750 §2.1）。"
            }
            FlowStep::D => {
                "资源服务器验证访问令牌，令牌有效就处理请求。这里资源服务器用授权服务器公布的公钥，在本地检查 JWT 的签名、签发者、受众、过期时间和权限范围。"
            }
            FlowStep::E => {
                "步骤 C 和 D 会一直重复，直到访问令牌过期。如果客户端知道令牌已经过期（根据 expires_in），就会直接跳到步骤 G；这个客户端并不知道，所以又一次出示了旧令牌。"
            }
            FlowStep::F => {
                "令牌已经失效，资源服务器拒绝请求：返回 401，并在 WWW-Authenticate: Bearer 质询中带上 error=\"invalid_token\"（RFC 6750 §3、§3.1）。这告诉客户端：换一个新的访问令牌也许就能成功。"
            }
            FlowStep::G => {
                "客户端向授权服务器认证自己的身份，发送 grant_type=refresh_token 和刷新令牌（§6）。它可以请求更小的权限范围，但绝不能超出最初授予的范围。"
            }
            FlowStep::H => {
                "授权服务器确认刷新令牌有效、并且确实是签发给这个客户端的，然后签发新的访问令牌。它也可以同时签发新的刷新令牌：这时客户端必须丢弃旧的刷新令牌，服务器也可以将旧令牌作废（即令牌轮换）。"
            }
        },
    }
}

/// The label of an arrow of Figure 2, as the RFC's figure writes it.
pub fn arrow_label(lang: Lang, step: FlowStep) -> &'static str {
    match lang {
        Lang::En => step.arrow(),
        Lang::Zh => match step {
            FlowStep::A => "授权许可",
            FlowStep::B => "访问令牌和刷新令牌",
            FlowStep::C | FlowStep::E => "访问令牌",
            FlowStep::D => "受保护的资源",
            FlowStep::F => "无效令牌错误",
            FlowStep::G => "刷新令牌",
            FlowStep::H => "访问令牌和可选的刷新令牌",
        },
    }
}

/// A scenario's own words (title, description, notes) in `lang`; English when the
/// scenario has no translation.
pub fn text(lang: Lang, text: &Text) -> &str {
    match lang {
        Lang::Zh if !text.zh.trim().is_empty() => &text.zh,
        _ => &text.en,
    }
}

/// A step's one-line description.
pub fn action(lang: Lang, action: &Action) -> String {
    if lang == Lang::En {
        return action.to_string();
    }
    let mut line = match action {
        Action::Authorize { client, grant, .. } => {
            let grant = match grant {
                GrantKind::Password => "密码授权（RFC 6749 §4.3，旧式）",
                GrantKind::AuthorizationCode => "带 PKCE 的授权码授权（RFC 6749 §4.1、RFC 7636）",
                GrantKind::ClientCredentials => "客户端凭据授权（RFC 6749 §4.4）",
            };
            format!("{client} 通过{grant}获取令牌")
        }
        Action::Call { client, resource, .. } => format!("{client} 访问 {} 资源", resource.as_str()),
        Action::Refresh { client, scope: Some(s), .. } => format!("{client} 刷新令牌，请求权限范围 \"{s}\""),
        Action::Refresh { client, scope: None, .. } => format!("{client} 刷新令牌"),
        Action::Replay { client, of, generation, .. } => format!("{client} 出示 {of} 的第 #{generation} 个刷新令牌"),
        Action::Revoke { client, generation, .. } => {
            format!("{client} 撤销自己的第 #{generation} 个刷新令牌（RFC 7009）")
        }
        Action::Advance { seconds } => format!("时间流逝：{seconds} 秒"),
        Action::RotateKey => "授权服务器轮换签名密钥".into(),
        Action::Restart => "授权服务器在同一个数据库上重启".into(),
        Action::Install { client, device, generation } => {
            format!("{client} 的第二个安装（{device}）用第 #{generation} 个刷新令牌刷新")
        }
        Action::Race { client, device } => format!("{client} 与 {device} 在同一时刻用同一个刷新令牌刷新"),
        Action::Outage { endpoint, seconds } => match endpoint {
            Endpoint::All => format!("授权服务器在 {seconds} 秒内无法访问"),
            Endpoint::Token => format!("令牌端点在 {seconds} 秒内无法访问"),
            Endpoint::Jwks => format!("资源服务器在 {seconds} 秒内无法获取 JWKS"),
        },
        Action::ProxyAnswers { status } => format!("授权服务器前面的代理将以 {status} 应答下一个令牌请求"),
        Action::Skew { role, offset } => {
            let role = match role {
                Role::AuthorizationServer => "授权服务器",
                Role::ResourceServer => "资源服务器",
                Role::Client => "客户端",
            };
            if *offset >= 0 {
                format!("{role}的时钟快了 {offset} 秒")
            } else {
                format!("{role}的时钟慢了 {} 秒", -offset)
            }
        }
        Action::Steal { client, generation, proof: ThiefProof::None } => {
            format!("小偷出示 {client} 被盗的第 #{generation} 个刷新令牌，不带 DPoP 证明")
        }
        Action::Steal { client, generation, proof: ThiefProof::OwnKey } => {
            format!("小偷出示 {client} 被盗的第 #{generation} 个刷新令牌，带着用自己密钥签署的 DPoP 证明")
        }
        Action::ReplayRequest { client, to } => {
            let to = match to {
                Server::TokenEndpoint => "令牌端点",
                Server::ResourceServer => "资源服务器",
            };
            format!("攻击者重放 {client} 发往{to}的上一个请求，连同其 DPoP 证明")
        }
    };
    if matches!(action, Action::Refresh { sent_twice: true, .. }) {
        line.push_str("（其 HTTP 层把请求发送了两次）");
    }
    if action.loses_response() {
        line.push_str("（令牌响应将会丢失）");
    }
    line
}

/// An expectation and what was found.
pub fn expectation(lang: Lang, check: &Expectation) -> String {
    if lang == Lang::En {
        return check.to_string();
    }
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "无".into());
    match check {
        Expectation::Outcome { want, got } => format!("结果为 {want}（实际 {got}）"),
        Expectation::Succeeds { got } => format!("步骤失败：{got}"),
        Expectation::Status { want, got } => {
            format!("状态码 {want}（实际 {}）", got.map_or("没有交换".into(), |s| s.to_string()))
        }
        Expectation::Error { want, got } => format!("错误码 {want}（实际 {}）", or_none(got)),
        Expectation::Steps { want, got } => format!("图 2 步骤 {}（实际 {}）", letters(want), letters(got)),
        Expectation::Has { field } => format!("令牌响应包含 {field}"),
        Expectation::Lacks { field } => format!("令牌响应不含 {field}"),
        Expectation::Changed { field } => format!("{field} 已改变"),
        Expectation::Unchanged { field } => format!("{field} 未改变"),
        Expectation::Scope { want, got } => format!("权限范围 \"{want}\"（实际 {}）", or_none(got)),
    }
}

/// An unmet expectation, with its step.
pub fn failure(lang: Lang, f: &Failure) -> String {
    match lang {
        Lang::En => f.to_string(),
        Lang::Zh => format!("第 {} 步（{}）：{}", f.step, action(lang, &f.action), expectation(lang, &f.check)),
    }
}

/// Something that happened outside the client's exchanges.
pub fn happening(lang: Lang, what: &Happening) -> String {
    if lang == Lang::En {
        return what.to_string();
    }
    match what {
        Happening::ResponseLost { status, path, refresh_token } => {
            let rt = refresh_token.as_ref().map(|t| format!("，新的刷新令牌 {t}")).unwrap_or_default();
            format!("授权服务器已应答 {status} {path}{rt} 并已提交，但响应在途中丢失：客户端从未收到")
        }
        Happening::KeyRotated { kid } => format!("新的签名密钥 kid={kid}；旧密钥仍留在 JWKS 中，供已签发的令牌验证"),
        Happening::Restarted => "授权服务器停止后在同一个 SQLite 文件上重新启动".into(),
        Happening::Revoked { client_id, refresh_token, status } => {
            format!("{client_id} → 授权服务器：POST /revoke token={refresh_token} → {status}")
        }
    }
}

/// What the resource owner's browser did.
pub fn resource_owner(lang: Lang, act: &ResourceOwnerAct) -> String {
    if lang == Lang::En {
        return act.to_string();
    }
    match act {
        ResourceOwnerAct::OpensAuthorizationPage { client_id, state, status } => {
            format!("GET /authorize（client_id={client_id}，PKCE S256，state={state}）→ {status} 登录和授权同意页面")
        }
        ResourceOwnerAct::Approves { user, status, redirect_uri, code } => {
            format!("以 {user} 身份 POST /authorize 并同意 → {status} 重定向到 {redirect_uri}，带上 {code}")
        }
    }
}

/// The role's internal reason for a refusal, next to the wire's error code.
pub fn rejection(lang: Lang, error: Option<&str>, reason: &Rejection) -> String {
    let error = error.unwrap_or("—");
    match lang {
        Lang::En => format!("{error} on the wire; the role's reason: {reason}"),
        Lang::Zh => format!("线上错误码 {error}；角色内部原因：{}", reason_zh(reason)),
    }
}

/// A role's reason in Chinese, by its type (the roles' own words are English).
pub fn reason_zh(reason: &Rejection) -> String {
    use figure2_protocol::access_token::AccessTokenRejection as A;
    use figure2_protocol::dpop::DpopRejection as D;
    use figure2_protocol::family::RefreshRejection as R;
    let text = match reason {
        Rejection::Refresh(r) => match r {
            R::Unknown => "未知的刷新令牌",
            R::IssuedToAnotherClient => "刷新令牌是签发给另一个客户端的",
            R::Revoked => "刷新令牌已被吊销",
            R::Reused => "刷新令牌已经用过（已被轮换）：检测到重用",
            R::Expired => "刷新令牌已过期",
            R::Idle => "令牌族闲置时间超过了其闲置有效期",
            R::ScopeExceedsGrant => "请求的权限范围超出了最初授予的范围",
            R::ScopeExceedsClientRegistration => "该客户端已不能再被授予这个权限范围",
            R::SubjectRemoved => "资源所有者已不再注册",
            R::DpopProofMissing => "刷新令牌绑定了 DPoP 密钥，但请求没有携带 DPoP 证明",
            R::DpopKeyMismatch => "刷新令牌绑定的是另一把 DPoP 密钥",
        },
        Rejection::AccessToken(r) => match r {
            A::Malformed => "不是 JWT",
            A::WrongType => "typ 不是 at+jwt（RFC 9068 §4）",
            A::AlgorithmNotAllowed => "不允许的 alg",
            A::UnknownKey => "没有这个 kid 的密钥",
            A::BadSignature => "签名验证失败",
            A::Expired => "令牌已过期",
            A::NotYetValid => "令牌尚未生效",
            A::IssuedInFuture => "令牌的签发时间在未来",
            A::WrongIssuer => "iss 不是预期的签发者",
            A::WrongAudience => "aud 没有指明这个资源服务器",
        },
        Rejection::AccessTokenTooLarge => "令牌超过了资源服务器的长度上限",
        Rejection::UnsupportedCritical => "crit 头列出了本服务器不理解的扩展（RFC 7515 §4.1.11）",
        Rejection::KeyAlgorithmMismatch => "这个 kid 对应的密钥不适用于头部的 alg（RFC 8725 §3.1）",
        Rejection::Dpop(r) => match r {
            D::Missing => "没有 DPoP 证明",
            D::Multiple => "有多个 DPoP 头（RFC 9449 §4.3 第 1 点）",
            D::Malformed => "DPoP 证明不是格式正确的 JWT（§4.3 第 2 点）",
            D::MissingMember(member) => return format!("DPoP 证明缺少必需的成员：{member}（§4.3 第 3 点）"),
            D::WrongType => "typ 不是 dpop+jwt（§4.3 第 4 点）",
            D::AlgorithmNotAllowed => "alg 不是可接受的非对称算法（§4.3 第 5 点）",
            D::UnusableKey => "jwk 不是可用于该 alg 的公钥（§4.3 第 6 点）",
            D::BadSignature => "签名无法用内嵌的 jwk 验证（§4.3 第 6 点）",
            D::PrivateKey => "jwk 中含有私钥材料（§4.3 第 7 点）",
            D::WrongMethod => "htm 与请求方法不符（§4.3 第 8 点）",
            D::WrongUri => "htu 与请求 URI 不符（§4.3 第 9 点）",
            D::UseNonce => "服务器要求新的 nonce（§8、§9；§4.3 第 10 点）",
            D::Stale => "iat 不在可接受的时间窗口内（§4.3 第 11 点）",
            D::Replayed => "jti 已被使用过：证明被重放（§11.1）",
            D::WrongAccessTokenHash => "ath 与访问令牌不符（§4.3 第 12 点）",
            D::KeyNotBound => "证明的密钥不是访问令牌所绑定的密钥（§4.3 第 12 点）",
        },
    };
    text.to_owned()
}

/// RFC 9449 in a sentence or two for an exchange that used DPoP: what the request's
/// proof does (§4, §5 at the token endpoint, §7 at the resource server) and what the
/// answer means (§8/§9 nonces, §4.3 refusals): the request's lines if `request`, else
/// the answer's. Empty for an exchange without DPoP.
pub fn dpop_narration(lang: Lang, x: &TracedExchange, request: bool) -> Vec<&'static str> {
    let at_token_endpoint = matches!(x.request_letter, FlowStep::A | FlowStep::G);
    let mut lines = Vec::new();
    if request {
        if x.dpop_proof.is_none() {
            return lines;
        }
        lines.push(match (lang, at_token_endpoint) {
            (Lang::En, true) => {
                "DPoP (RFC 9449 §4, §5): the request carries a proof, a JWT signed with the client's private key that names this request (htm, htu), its time (iat) and a unique jti, with the public key in its header. The server binds the tokens it issues to that key's thumbprint (jkt)."
            }
            (Lang::Zh, true) => {
                "DPoP（RFC 9449 §4、§5）：请求附带一个证明，即用客户端私钥签名的 JWT，写明本次请求（htm、htu）、时间（iat）和唯一的 jti，头部带有公钥。服务器把签发的令牌绑定到该密钥的指纹（jkt）。"
            }
            (Lang::En, false) => {
                "DPoP (RFC 9449 §7): the access token goes in Authorization: DPoP with a fresh proof carrying ath, the hash of that token. The resource server checks the proof and that its key's thumbprint is the token's cnf.jkt: a stolen access token alone is useless."
            }
            (Lang::Zh, false) => {
                "DPoP（RFC 9449 §7）：访问令牌放在 Authorization: DPoP 中，并附上一个新的证明，其中 ath 是该令牌的哈希。资源服务器检查证明，并确认其密钥指纹就是令牌的 cnf.jkt：单独偷走访问令牌毫无用处。"
            }
        });
        return lines;
    }
    match (x.error.as_deref(), lang, at_token_endpoint) {
        (Some("use_dpop_nonce"), Lang::En, true) => lines.push(
            "The authorization server wants a nonce of its own in the proof (RFC 9449 §8): it sends one in DPoP-Nonce, and the client retries once with it.",
        ),
        (Some("use_dpop_nonce"), Lang::Zh, true) => {
            lines.push("授权服务器要求证明中带上它自己的 nonce（RFC 9449 §8）：它在 DPoP-Nonce 中给出一个，客户端带上它重试一次。")
        }
        (Some("use_dpop_nonce"), Lang::En, false) => lines.push(
            "The resource server wants a nonce of its own in the proof (RFC 9449 §9): 401 with a DPoP challenge and DPoP-Nonce; the client retries once with it.",
        ),
        (Some("use_dpop_nonce"), Lang::Zh, false) => lines
            .push("资源服务器要求证明中带上它自己的 nonce（RFC 9449 §9）：返回 401、DPoP 质询和 DPoP-Nonce；客户端带上它重试一次。"),
        (Some("invalid_dpop_proof"), Lang::En, _) => lines.push(
            "The DPoP proof was refused (RFC 9449 §4.3): a wrong method or URI, a stale iat, a jti already used, a bad signature or key.",
        ),
        (Some("invalid_dpop_proof"), Lang::Zh, _) => {
            lines.push("DPoP 证明被拒绝（RFC 9449 §4.3）：方法或 URI 不符、iat 过期、jti 已被用过、签名或密钥有误。")
        }
        _ => {}
    }
    lines
}

/// The trace's own field labels and notes in an exchange (the wire's names, such as
/// `grant_type` or `WWW-Authenticate`, stay as they are).
pub const FIELD_LABELS: [(&str, &str); 6] = [
    ("answered by", "应答者"),
    ("client authentication", "客户端认证"),
    ("DPoP proof", "DPoP 证明"),
    ("access token claims", "访问令牌声明"),
    ("body", "响应体"),
    ("(none: the client keeps its refresh token, §6)", "（无：客户端保留原来的刷新令牌，§6）"),
];

/// A field label (or the trace's own note as a value) of an exchange, in `lang`.
pub fn field(lang: Lang, text: &str) -> std::borrow::Cow<'_, str> {
    match lang {
        Lang::En => text.into(),
        // The runner's label of an instance answer (`authorization server instance 2`).
        Lang::Zh if text.starts_with(INSTANCE_PREFIX) => {
            format!("授权服务器实例 {}", &text[INSTANCE_PREFIX.len()..]).into()
        }
        // A shortened access token, `at#2d067ffc (jwt, 424 bytes)` (crate::wire).
        Lang::Zh if text.contains("at#") && text.ends_with(" bytes)") => {
            format!("{} 字节)", &text[..text.len() - " bytes)".len()]).into()
        }
        Lang::Zh => FIELD_LABELS.iter().find(|(en, _)| *en == text).map_or(text, |(_, zh)| zh).into(),
    }
}

/// How the trace names the instance that answered (several instances, one issuer).
const INSTANCE_PREFIX: &str = "authorization server instance ";

/// A role as the trace names it (`TracedExchange::to`), in `lang`.
pub fn party(lang: Lang, name: &str) -> &str {
    match (lang, name) {
        (Lang::Zh, "authorization server") => "授权服务器",
        (Lang::Zh, "resource server") => "资源服务器",
        _ => name,
    }
}

/// The fixed phrases of the text trace.
#[derive(Debug, Clone, Copy)]
pub enum Phrase {
    /// `{0}` seconds, to `{1}`.
    ClockMoves,
    /// `{0}` steps, `{1}` exchanges.
    Passed,
    /// `{0}` unmet expectations.
    Failed,
    ResourceOwner,
    /// Whose browser it is, in a transcript.
    Browser,
    /// Scenario `{0}`: title `{1}`.
    Scenario,
    /// The RFC sections `{0}`.
    Shows,
    /// The authorization server's address `{0}`, the resource server's `{1}`.
    Servers,
    /// Transcript: the RFC sections `{0}` (linked).
    ShowsLinked,
    /// Transcript: how run-specific values are named.
    StableNames,
    /// Transcript heading: the sequence diagram.
    Sequence,
    /// Transcript heading: the verdict.
    Result,
    /// Transcript heading: the lineage table.
    Lineage,
    /// Transcript: access token `{0}` ({1} = issued/presented), decoded:
    TokenDecoded,
    /// Transcript: access token `{0}` ({1}) already decoded above.
    TokenDecodedAbove,
    /// Transcript: the token's times `{0}`.
    Times,
    /// Transcript: claims changed since token `{0}`: `{1}`.
    ChangedSince,
    /// Transcript: no refresh token in the run.
    NoRefreshToken,
    /// Transcript: the lineage table's header row.
    LineageHeader,
    /// A refresh token that never expires.
    Never,
    /// Mermaid: the resource owner's lane.
    ResourceOwnerBrowser,
    /// Mermaid: the clock moved `{0}` s, to `{1}`.
    ClockShort,
    /// Mermaid: passed, `{0}` steps, `{1}` exchanges.
    PassedShort,
    /// Mermaid: failed, `{0}` steps, `{1}` exchanges.
    FailedShort,
}

impl Phrase {
    /// Every phrase (the translation test walks them).
    pub const ALL: [Phrase; 24] = [
        Phrase::ClockMoves,
        Phrase::Passed,
        Phrase::Failed,
        Phrase::ResourceOwner,
        Phrase::Browser,
        Phrase::Scenario,
        Phrase::Shows,
        Phrase::Servers,
        Phrase::ShowsLinked,
        Phrase::StableNames,
        Phrase::Sequence,
        Phrase::Result,
        Phrase::Lineage,
        Phrase::TokenDecoded,
        Phrase::TokenDecodedAbove,
        Phrase::Times,
        Phrase::ChangedSince,
        Phrase::NoRefreshToken,
        Phrase::LineageHeader,
        Phrase::Never,
        Phrase::ResourceOwnerBrowser,
        Phrase::ClockShort,
        Phrase::PassedShort,
        Phrase::FailedShort,
    ];
}

/// A phrase of the text trace with its `{0}`, `{1}` placeholders filled in.
pub fn phrase(lang: Lang, phrase: Phrase, args: &[&str]) -> String {
    let template = match (lang, phrase) {
        (Lang::En, Phrase::ClockMoves) => "the shared clock moves {0}s forward, to {1}",
        (Lang::Zh, Phrase::ClockMoves) => "共享时钟向前拨动 {0} 秒，到达 {1}",
        (Lang::En, Phrase::Passed) => "passed: {0} steps, {1} HTTP exchanges, every expectation met",
        (Lang::Zh, Phrase::Passed) => "通过：{0} 个步骤，{1} 次 HTTP 交换，所有预期均已满足",
        (Lang::En, Phrase::Failed) => "FAILED: {0} of the expectations were not met",
        (Lang::Zh, Phrase::Failed) => "失败：有 {0} 项预期未满足",
        (Lang::En, Phrase::ResourceOwner) => "resource owner",
        (Lang::Zh, Phrase::ResourceOwner) => "资源所有者",
        (Lang::En, Phrase::Browser) => "resource owner's browser",
        (Lang::Zh, Phrase::Browser) => "资源所有者的浏览器",
        (Lang::En, Phrase::Scenario) => "scenario {0}: {1}",
        (Lang::Zh, Phrase::Scenario) => "场景 {0}：{1}",
        (Lang::En, Phrase::Shows) => "shows {0}",
        (Lang::Zh, Phrase::Shows) => "演示 {0}",
        (Lang::En, Phrase::Servers) => "authorization server {0}   resource server {1}",
        (Lang::Zh, Phrase::Servers) => "授权服务器 {0}   资源服务器 {1}",
        (Lang::En, Phrase::ShowsLinked) => "Shows {0}.",
        (Lang::Zh, Phrase::ShowsLinked) => "演示 {0}。",
        (Lang::En, Phrase::StableNames) => {
            "Addresses, tokens, key ids and `jti`s change on every run: they are shown as stable names (`authorization-server`, `at#1`, `rt#1`, `key-1`, `jti-1`), each token by the fingerprint the trace gives it. Passwords and client secrets are never shown."
        }
        (Lang::Zh, Phrase::StableNames) => {
            "地址、令牌、密钥 id 和 `jti` 每次运行都会变化：这里以稳定的名字显示（`authorization-server`、`at#1`、`rt#1`、`key-1`、`jti-1`），每个令牌用跟踪记录给它的指纹表示。密码和客户端密钥从不显示。"
        }
        (Lang::En, Phrase::Sequence) => "Sequence",
        (Lang::Zh, Phrase::Sequence) => "时序图",
        (Lang::En, Phrase::Result) => "Result",
        (Lang::Zh, Phrase::Result) => "结果",
        (Lang::En, Phrase::Lineage) => "Refresh-token lineage",
        (Lang::Zh, Phrase::Lineage) => "刷新令牌谱系",
        (Lang::En, Phrase::TokenDecoded) => "Access token `{0}` ({1}), decoded:",
        (Lang::Zh, Phrase::TokenDecoded) => "访问令牌 `{0}`（{1}），解码后：",
        (Lang::En, Phrase::TokenDecodedAbove) => "Access token `{0}` ({1}): decoded above.",
        (Lang::Zh, Phrase::TokenDecodedAbove) => "访问令牌 `{0}`（{1}）：已在上文解码。",
        (Lang::En, Phrase::Times) => "Times: {0}.",
        (Lang::Zh, Phrase::Times) => "时间：{0}。",
        (Lang::En, Phrase::ChangedSince) => "Changed since `{0}`: {1}.",
        (Lang::Zh, Phrase::ChangedSince) => "相对于 `{0}` 有变化：{1}。",
        (Lang::En, Phrase::NoRefreshToken) => "No refresh token was issued.",
        (Lang::Zh, Phrase::NoRefreshToken) => "没有签发刷新令牌。",
        (Lang::En, Phrase::LineageHeader) => {
            "| family | client | generation | refresh token | issued | expires | status |"
        }
        (Lang::Zh, Phrase::LineageHeader) => "| 令牌族 | 客户端 | 代 | 刷新令牌 | 签发 | 过期 | 状态 |",
        (Lang::En, Phrase::Never) => "never",
        (Lang::Zh, Phrase::Never) => "永不",
        (Lang::En, Phrase::ResourceOwnerBrowser) => "resource owner (browser)",
        (Lang::Zh, Phrase::ResourceOwnerBrowser) => "资源所有者（浏览器）",
        (Lang::En, Phrase::ClockShort) => "clock +{0}s → {1}",
        (Lang::Zh, Phrase::ClockShort) => "时钟 +{0} 秒 → {1}",
        (Lang::En, Phrase::PassedShort) => "✔ passed: {0} steps, {1} HTTP exchanges",
        (Lang::Zh, Phrase::PassedShort) => "✔ 通过：{0} 个步骤，{1} 次 HTTP 交换",
        (Lang::En, Phrase::FailedShort) => "✘ FAILED: {0} steps, {1} HTTP exchanges",
        (Lang::Zh, Phrase::FailedShort) => "✘ 失败：{0} 个步骤，{1} 次 HTTP 交换",
    };
    let mut out = template.to_owned();
    for (i, a) in args.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), a);
    }
    out
}

/// One word of the live page, by key (the key itself if unknown).
pub fn ui_word(lang: Lang, key: &'static str) -> &'static str {
    ui(lang).iter().find(|(k, _)| *k == key).map_or(key, |(_, v)| v)
}

/// The words of the live page, by key.
fn ui(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::En => &[
            ("title", "Figure 2, live: refreshing an expired access token"),
            ("caption", "RFC 6749 Figure 2: Refreshing an Expired Access Token"),
            ("client", "Client"),
            ("resource_server", "Resource Server"),
            ("authorization_server", "Authorization Server"),
            ("resource", "Resource"),
            ("authorization", "Authorization"),
            ("server", "Server"),
            ("families_n", "families: {0}"),
            ("live_n", "live: {0}"),
            ("run", "Run"),
            ("step", "Step"),
            ("advance", "Advance clock"),
            ("seconds", "s"),
            ("replay", "Replay old refresh token"),
            ("revoke", "Revoke"),
            ("restart", "Restart authorization server"),
            ("reset", "Reset"),
            ("call", "Call resource"),
            ("refresh", "Refresh"),
            ("timeline", "Exchanges"),
            ("details", "Selected exchange"),
            ("lineage", "Refresh-token lineage"),
            ("no_family", "No refresh token issued yet."),
            ("select_hint", "Select an exchange to see its raw HTTP, its tokens and the RFC text."),
            ("request", "Request"),
            ("response", "Response"),
            ("raw_note", "Tokens are shown as fingerprints, secrets redacted; date and content-length omitted."),
            ("jwt", "Access token (JWT, decoded, not verified)"),
            ("jwt_header", "Header"),
            ("jwt_claims", "Claims"),
            ("changed_since", "changed since"),
            ("first_token", "first access token"),
            ("rfc", "What the RFC says"),
            ("next", "next step"),
            ("finished", "scenario finished"),
            ("clock", "clock"),
            ("family", "Family"),
            ("granted", "granted"),
            ("live", "live"),
            ("revoked_by_reuse", "revoked by reuse"),
            ("revoked", "revoked"),
            ("expired", "expired"),
            ("active", "active"),
            ("used", "used"),
            ("accepted_during_grace", "accepted during grace"),
            ("replayed", "replayed"),
            ("never_delivered", "never delivered"),
            ("passed", "passed"),
            ("failed", "failed"),
            ("language", "Language"),
            ("connected", "live"),
            ("disconnected", "reconnecting…"),
            ("issued", "issued"),
            ("presented", "presented"),
            ("dpop_proof", "DPoP proof (RFC 9449 §4.2, decoded; the server verified it)"),
            ("jkt", "key thumbprint (jkt, RFC 7638)"),
            ("preset", "Refresh policy"),
            (
                "preset_note",
                "Changing the policy plays the session again from the start under it. The scenario's expectations were written for its own policy: under another one they may fail, and that is the difference to look at.",
            ),
        ],
        Lang::Zh => &[
            ("title", "图 2 实况：刷新过期的访问令牌"),
            ("caption", "RFC 6749 图 2：刷新过期的访问令牌"),
            ("client", "客户端"),
            ("resource_server", "资源服务器"),
            ("authorization_server", "授权服务器"),
            ("resource", "资源"),
            ("authorization", "授权"),
            ("server", "服务器"),
            ("families_n", "令牌族：{0}"),
            ("live_n", "有效：{0}"),
            ("run", "运行"),
            ("step", "单步"),
            ("advance", "拨快时钟"),
            ("seconds", "秒"),
            ("replay", "重放旧的刷新令牌"),
            ("revoke", "撤销"),
            ("restart", "重启授权服务器"),
            ("reset", "重置"),
            ("call", "访问资源"),
            ("refresh", "刷新"),
            ("timeline", "交换记录"),
            ("details", "所选交换"),
            ("lineage", "刷新令牌谱系"),
            ("no_family", "尚未签发刷新令牌。"),
            ("select_hint", "选择一次交换，查看原始 HTTP 报文、令牌内容和 RFC 说明。"),
            ("request", "请求"),
            ("response", "响应"),
            ("raw_note", "令牌以指纹显示，机密信息已隐去；省略了 date 和 content-length 头。"),
            ("jwt", "访问令牌（JWT，已解码，未验证签名）"),
            ("jwt_header", "头部"),
            ("jwt_claims", "声明"),
            ("changed_since", "相对于上一个令牌有变化："),
            ("first_token", "第一个访问令牌"),
            ("rfc", "RFC 怎么说"),
            ("next", "下一步"),
            ("finished", "场景已结束"),
            ("clock", "时钟"),
            ("family", "令牌族"),
            ("granted", "授权于"),
            ("live", "有效"),
            ("revoked_by_reuse", "因重用被吊销"),
            ("revoked", "已撤销"),
            ("expired", "已过期"),
            ("active", "有效"),
            ("used", "已使用"),
            ("accepted_during_grace", "宽限期内被接受"),
            ("replayed", "被重放"),
            ("never_delivered", "未送达"),
            ("passed", "通过"),
            ("failed", "失败"),
            ("language", "语言"),
            ("connected", "实时"),
            ("disconnected", "正在重连…"),
            ("issued", "签发"),
            ("presented", "出示"),
            ("dpop_proof", "DPoP 证明（RFC 9449 §4.2，已解码；服务器已验证）"),
            ("jkt", "密钥指纹（jkt，RFC 7638）"),
            ("preset", "刷新策略"),
            (
                "preset_note",
                "更换策略会在该策略下从头重新播放本次会话。场景的预期是按它自己的策略写的：换成别的策略时可能不满足，这正是要看的差别。",
            ),
        ],
    }
}

/// The live page's name for the scenario's own policy (no preset): its `[config]`.
pub fn scenario_policy(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "as the scenario configures it",
        Lang::Zh => "按场景自己的配置",
    }
}

/// A refresh-policy preset ([`figure2_protocol::presets`]) as the live page lists it:
/// its name and the product setting it copies, in `lang`. `None` for an unknown name.
pub fn preset_label(lang: Lang, name: &str) -> Option<String> {
    let preset = figure2_protocol::presets::find(name)?;
    let title = match lang {
        Lang::En => preset.title,
        Lang::Zh => match name {
            "figure2" => "Figure2 默认（RFC 9700 §4.14.2：轮换，无宽限期，重用吊销整个令牌族）",
            "oidc-provider" => "panva/node-oidc-provider v9 默认值",
            "hydra" => "Ory Hydra v2，严格（rotation_grace_period = 0s）",
            "hydra-graceful" => "Ory Hydra v2，宽限轮换（rotation_grace_period = 5m）",
            "keycloak" => "Keycloak 领域默认值（Revoke Refresh Token 关闭）",
            "keycloak-revoke" => "Keycloak，Revoke Refresh Token 开启，Refresh Token Max Reuse = 0",
            "dex" => "Dex，按 config.yaml.dist 配置刷新令牌",
            "rauthy" => "Rauthy 默认值",
            "kanidm" => "Kanidm 默认值",
            "mas" => "matrix-authentication-service",
            "duende" => "Duende IdentityServer 7，RefreshTokenUsage = ReUse（模型默认值）",
            "duende-onetime" => "Duende IdentityServer 7，RefreshTokenUsage = OneTimeOnly",
            "spring" => "Spring Authorization Server 默认值",
            "auth0" => "Auth0，带重用间隔的刷新令牌轮换",
            // A preset added without a translation shows its English title.
            _ => preset.title,
        },
    };
    Some(format!("{name}: {title}"))
}

/// Everything the live page says, in both languages, as one JSON document:
/// `{ "en": { "ui": {...}, "letters": { "A": { "arrow", "request", "ok", "fail", "rfc",
/// "citations": [{label, url}] } }, "no_answer": "..." }, "zh": {...} }`.
pub fn i18n_json() -> Value {
    let mut all = serde_json::Map::new();
    for lang in Lang::ALL {
        let ui: serde_json::Map<String, Value> = ui(lang).iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        let mut letters = serde_json::Map::new();
        for letter in FlowStep::ALL {
            let cites: Vec<Value> = citations(letter).iter().map(|c| json!({"label": c.label, "url": c.url})).collect();
            letters.insert(
                letter.to_string(),
                json!({
                    "arrow": arrow_label(lang, letter),
                    "ok": narration(lang, letter, true),
                    "fail": narration(lang, letter, false),
                    "rfc": rfc_text(lang, letter),
                    "citations": cites,
                }),
            );
        }
        let phrases = json!({
            "clock": phrase(lang, Phrase::ClockMoves, &[]),
            "passed": phrase(lang, Phrase::Passed, &[]),
            "failed": phrase(lang, Phrase::Failed, &[]),
            "resource_owner": phrase(lang, Phrase::ResourceOwner, &[]),
        });
        all.insert(
            lang.code().into(),
            json!({ "ui": ui, "letters": letters, "no_answer": no_answer(lang), "phrases": phrases }),
        );
    }
    Value::Object(all)
}

/// The address of a cited section: `RFC 6749 §1.5` →
/// `https://www.rfc-editor.org/rfc/rfc6749#section-1.5`. Anything after the section
/// number (`RFC 6749 §5.2 invalid_grant`) is ignored.
pub fn citation_url(citation: &str) -> Option<String> {
    let rest = citation.trim().strip_prefix("RFC")?.trim_start();
    let (number, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let base = format!("https://www.rfc-editor.org/rfc/rfc{number}");
    let Some(section) = rest.trim_start().strip_prefix('§') else {
        return Some(base);
    };
    let section: String = section.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
    let section = section.trim_end_matches('.');
    if section.is_empty() { Some(base) } else { Some(format!("{base}#section-{section}")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_letter_is_said_in_both_languages() {
        for lang in Lang::ALL {
            for letter in FlowStep::ALL {
                assert!(!narration(lang, letter, true).is_empty(), "{lang:?} {letter}");
                assert!(!narration(lang, letter, false).is_empty(), "{lang:?} {letter}");
                assert!(!rfc_text(lang, letter).is_empty(), "{lang:?} {letter}");
                assert!(!arrow_label(lang, letter).is_empty(), "{lang:?} {letter}");
                assert!(!citations(letter).is_empty());
            }
        }
        let en: Vec<&str> = ui(Lang::En).iter().map(|(k, _)| *k).collect();
        let zh: Vec<&str> = ui(Lang::Zh).iter().map(|(k, _)| *k).collect();
        assert_eq!(en, zh, "the page's words exist in both languages");
    }

    #[test]
    fn every_preset_has_a_label_in_both_languages() {
        for name in figure2_protocol::presets::names() {
            let en = preset_label(Lang::En, name).expect("known preset");
            let zh = preset_label(Lang::Zh, name).expect("known preset");
            assert!(en.starts_with(name) && zh.starts_with(name));
            // Every title but the product name of MAS is translated.
            if name != "mas" {
                assert_ne!(en, zh, "{name} has no Chinese label");
            }
        }
        assert_eq!(preset_label(Lang::En, "no-such-preset"), None);
    }

    #[test]
    fn citations_link_to_the_rfc_editor() {
        assert_eq!(
            citation_url("RFC 6749 §1.5").as_deref(),
            Some("https://www.rfc-editor.org/rfc/rfc6749#section-1.5")
        );
        assert_eq!(
            citation_url("RFC 6749 §5.2 invalid_grant").as_deref(),
            Some("https://www.rfc-editor.org/rfc/rfc6749#section-5.2")
        );
        assert_eq!(citation_url("RFC 7009").as_deref(), Some("https://www.rfc-editor.org/rfc/rfc7009"));
        assert_eq!(citation_url("OAuth"), None);
        assert_eq!(phrase(Lang::Zh, Phrase::ClockMoves, &["301", "t+301s"]), "共享时钟向前拨动 301 秒，到达 t+301s");
    }
}
