//! `application/x-www-form-urlencoded` request bodies (RFC 6749 §3.2, Appendix B).

use crate::error::{ErrorCode, ErrorResponse};
use std::collections::BTreeMap;

/// The parameters of a form body (or a query), every value kept in order.
///
/// RFC 6749 §3.1 and §3.2: "Parameters sent without a value MUST be treated as if they
/// were omitted from the request. The authorization server MUST ignore unrecognized
/// request parameters. Request and response parameters MUST NOT be included more than
/// once." The once-only rule is about the parameters an endpoint defines, so parsing
/// keeps repeats and each endpoint refuses repeats of its own names
/// ([`FormParams::refuse_repeated`]); a name it does not define is ignored, repeated or
/// not, and some it does define are multi-valued (RFC 8707 `resource`, [`FormParams::all`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormParams {
    params: BTreeMap<String, Vec<String>>,
}

impl FormParams {
    /// Parses a form body. Fails only on a body that is not form-urlencoded UTF-8;
    /// parameters with an empty value are dropped (§3.1: "treated as if they were omitted").
    pub fn parse(body: &[u8]) -> Result<Self, ErrorResponse> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| {
            ErrorResponse::new(ErrorCode::InvalidRequest, "the body is not valid form-urlencoded UTF-8")
        })?;
        // The decoder is lossy: invalid UTF-8 turns into U+FFFD, which we refuse.
        if pairs.iter().any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}')) {
            return Err(ErrorResponse::new(ErrorCode::InvalidRequest, "the body is not valid UTF-8"));
        }
        let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in pairs {
            if !value.is_empty() {
                params.entry(name).or_default().push(value);
            }
        }
        Ok(Self { params })
    }

    /// RFC 6749 §3.1, §3.2: "Request and response parameters MUST NOT be included more
    /// than once": `invalid_request` if any of `defined` (the parameters the endpoint
    /// defines and reads once) came more than once. Other names are not looked at.
    pub fn refuse_repeated(&self, defined: &[&str]) -> Result<(), ErrorResponse> {
        match defined.iter().find(|name| self.all(name).len() > 1) {
            None => Ok(()),
            Some(name) => {
                Err(ErrorResponse::new(ErrorCode::InvalidRequest, format!("parameter {} is repeated", printable(name))))
            }
        }
    }

    /// The value of a single-valued parameter: the first one. Endpoints call
    /// [`FormParams::refuse_repeated`] for their parameters first, so there is only one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).first().map(String::as_str)
    }

    /// Every (non-empty) value of a multi-valued parameter such as RFC 8707 `resource`.
    pub fn all(&self, name: &str) -> &[String] {
        self.params.get(name).map_or(&[], Vec::as_slice)
    }

    /// A parameter the request cannot do without (§5.2 `invalid_request`: "missing a
    /// required parameter").
    pub fn required(&self, name: &str) -> Result<&str, ErrorResponse> {
        self.get(name)
            .ok_or_else(|| ErrorResponse::new(ErrorCode::InvalidRequest, format!("missing required parameter {name}")))
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs.into_iter().filter(|(_, v)| !v.is_empty()) {
            params.entry(k.to_owned()).or_default().push(v.to_owned());
        }
        Self { params }
    }

    /// Every name/value pair, names in order, values in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())))
    }
}

/// Serialises name/value pairs as a form body, skipping absent values.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let present: Vec<(&str, &str)> = pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
    serde_urlencoded::to_string(present).unwrap_or_default()
}

/// A parameter name as it may appear in an `error_description`.
fn printable(name: &str) -> String {
    name.chars().filter(|c| crate::error::is_error_text_char(*c)).take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_kept_and_refused_only_for_defined_names() {
        let p = FormParams::parse(b"grant_type=refresh_token&refresh_token=a&refresh_token=b&x=1&x=2").unwrap();
        assert_eq!(p.all("refresh_token"), ["a", "b"]);
        let err = p.refuse_repeated(&["grant_type", "refresh_token"]).unwrap_err();
        assert_eq!(err.error, ErrorCode::InvalidRequest);
        assert_eq!(err.error_description.as_deref(), Some("parameter refresh_token is repeated"));
        // RFC 6749 §3.2: unrecognized parameters are ignored, repeated or not.
        assert!(p.refuse_repeated(&["grant_type"]).is_ok());
    }

    #[test]
    fn an_empty_repeat_is_an_omitted_one() {
        // §3.1: a parameter without a value is treated as omitted, so this is one scope.
        let p = FormParams::parse(b"scope=&scope=read").unwrap();
        assert!(p.refuse_repeated(&["scope"]).is_ok());
        assert_eq!(p.get("scope"), Some("read"));
    }

    #[test]
    fn empty_value_counts_as_omitted() {
        let p = FormParams::parse(b"grant_type=refresh_token&scope=").unwrap();
        assert_eq!(p.get("scope"), None);
        assert!(p.required("scope").is_err());
    }

    #[test]
    fn decodes_plus_and_percent() {
        let p = FormParams::parse(b"scope=read+write&x=%2F").unwrap();
        assert_eq!(p.get("scope"), Some("read write"));
        assert_eq!(p.get("x"), Some("/"));
    }

    #[test]
    fn invalid_utf8_is_invalid_request() {
        assert!(FormParams::parse(b"a=%FF%FE").is_err());
    }

    #[test]
    fn encode_skips_absent() {
        assert_eq!(encode([("a", Some("x y")), ("b", None)]), "a=x+y");
    }
}
