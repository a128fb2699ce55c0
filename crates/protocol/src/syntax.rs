//! HTTP syntax shared by the challenges of steps F (RFC 6750 §3, `WWW-Authenticate:
//! Bearer`) and of a failed client authentication (RFC 6749 §5.2, `WWW-Authenticate:
//! Basic`). Kept apart so that `bearer` and `error` both use it without importing each
//! other.

/// RFC 9110 §5.6.4: escapes `"` and `\` for a quoted-string (an auth-param value).
pub fn escape_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// RFC 9110 §11.6.1: a challenge, `scheme name="value", ...`, with the attributes that
/// have a value, each as a quoted-string.
pub fn challenge(scheme: &str, attrs: &[(&str, Option<&str>)]) -> String {
    let mut out = String::from(scheme);
    let mut sep = " ";
    for (name, value) in attrs {
        if let Some(value) = value {
            out.push_str(sep);
            out.push_str(name);
            out.push_str("=\"");
            out.push_str(&escape_quoted(value));
            out.push('"');
            sep = ", ";
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(super::escape_quoted(r#"a "b" \c"#), r#"a \"b\" \\c"#);
    }
}
