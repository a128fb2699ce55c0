//! RFC 6749 §3.3: access token scope, a space-delimited, case-sensitive set of strings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;

/// A scope: an unordered set of scope tokens (§3.3 "the order does not matter").
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope(BTreeSet<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed scope: {0}")]
pub struct MalformedScope(String);

impl Scope {
    /// Parses `scope = scope-token *( SP scope-token )`, `scope-token = 1*NQCHAR`
    /// (§3.3, NQCHAR = %x21 / %x23-5B / %x5D-7E). Repeated tokens collapse: it is a set.
    pub fn parse(s: &str) -> Result<Self, MalformedScope> {
        let mut set = BTreeSet::new();
        for token in s.split(' ') {
            if token.is_empty() {
                return Err(MalformedScope("empty scope-token (stray space)".into()));
            }
            if !token.chars().all(|c| matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')) {
                return Err(MalformedScope("scope-token outside NQCHAR".into()));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    pub fn empty() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// RFC 6749 §6: a refreshed scope "MUST NOT include any scope not originally granted".
    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The tokens of `self` that `allowed` lacks.
    pub fn excess_over<'a>(&'a self, allowed: &'a Scope) -> impl Iterator<Item = &'a str> {
        self.0.difference(&allowed.0).map(String::as_str)
    }

    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

impl std::str::FromStr for Scope {
    type Err = MalformedScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

impl<'a> FromIterator<&'a str> for Scope {
    fn from_iter<T: IntoIterator<Item = &'a str>>(iter: T) -> Self {
        Scope(iter.into_iter().map(str::to_owned).collect())
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(Scope::empty());
        }
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_and_case_does() {
        assert_eq!(Scope::parse("read write").unwrap(), Scope::parse("write read").unwrap());
        assert_ne!(Scope::parse("Read").unwrap(), Scope::parse("read").unwrap());
    }

    #[test]
    fn rejects_malformed() {
        assert!(Scope::parse("read  write").is_err());
        assert!(Scope::parse("").is_err());
        assert!(Scope::parse("a\"b").is_err());
        assert!(Scope::parse("a\\b").is_err());
    }

    #[test]
    fn subset_rule_of_section_6() {
        let granted = Scope::parse("read write").unwrap();
        assert!(Scope::parse("read").unwrap().is_subset_of(&granted));
        assert!(!Scope::parse("read admin").unwrap().is_subset_of(&granted));
        let wider = Scope::parse("read admin").unwrap();
        assert_eq!(wider.excess_over(&granted).collect::<Vec<_>>(), vec!["admin"]);
    }

    #[test]
    fn displays_sorted() {
        assert_eq!(Scope::parse("write read").unwrap().to_string(), "read write");
    }
}
