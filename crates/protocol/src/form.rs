//! `application/x-www-form-urlencoded` request bodies (RFC 6749 §3.2, Appendix B).

use crate::error::{ErrorCode, ErrorResponse};
use std::collections::BTreeMap;

/// The parameters of a form body, each at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormParams {
    params: BTreeMap<String, String>,
}

impl FormParams {
    /// Parses a form body.
    ///
    /// RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than
    /// once", and "parameters sent without a value MUST be treated as if they were
    /// omitted from the request".
    pub fn parse(body: &[u8]) -> Result<Self, ErrorResponse> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| {
            ErrorResponse::new(ErrorCode::InvalidRequest, "the body is not valid form-urlencoded UTF-8")
        })?;
        // The decoder is lossy: invalid UTF-8 turns into U+FFFD, which we refuse.
        if pairs.iter().any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}')) {
            return Err(ErrorResponse::new(ErrorCode::InvalidRequest, "the body is not valid UTF-8"));
        }
        let mut params = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for (name, value) in pairs {
            if !seen.insert(name.clone()) {
                return Err(ErrorResponse::new(
                    ErrorCode::InvalidRequest,
                    format!("parameter {} is repeated", printable(&name)),
                ));
            }
            if !value.is_empty() {
                params.insert(name, value);
            }
        }
        Ok(Self { params })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A parameter the request cannot do without (§5.2 `invalid_request`: "missing a
    /// required parameter").
    pub fn required(&self, name: &str) -> Result<&str, ErrorResponse> {
        self.get(name)
            .ok_or_else(|| ErrorResponse::new(ErrorCode::InvalidRequest, format!("missing required parameter {name}")))
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            params: pairs
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
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
    fn repeated_parameter_is_invalid_request() {
        let err = FormParams::parse(b"grant_type=refresh_token&refresh_token=a&refresh_token=b").unwrap_err();
        assert_eq!(err.error, ErrorCode::InvalidRequest);
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
