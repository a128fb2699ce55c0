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

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(super::escape_quoted(r#"a "b" \c"#), r#"a \"b\" \\c"#);
    }
}
