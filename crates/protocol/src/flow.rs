//! The steps of Figure 2 (RFC 6749 §1.5), A to H, as one type: the trace, the roles'
//! tracing fields (`step`), the exports, the live view and the scenario expectations
//! all name a step with a [`FlowStep`], never with a bare letter.

use serde::{Deserialize, Serialize};

/// One arrow of RFC 6749 Figure 2. Requests are A, C, E, G; each is answered by the
/// next letter. Serialised, displayed and parsed as its letter (`"F"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FlowStep {
    /// (A) the client presents an authorization grant to the authorization server.
    A,
    /// (B) the authorization server issues an access token and a refresh token.
    B,
    /// (C) the client presents the access token to the resource server.
    C,
    /// (D) the resource server serves the protected resource.
    D,
    /// (E) steps C and D repeat until the access token expires; the client presents it.
    E,
    /// (F) the resource server answers the invalid token error (RFC 6750 §3.1).
    F,
    /// (G) the client presents the refresh token (RFC 6749 §6).
    G,
    /// (H) the authorization server issues a new access token (and optionally a new
    /// refresh token).
    H,
}

impl FlowStep {
    /// A to H, in order.
    pub const ALL: [FlowStep; 8] = [Self::A, Self::B, Self::C, Self::D, Self::E, Self::F, Self::G, Self::H];

    pub fn letter(self) -> char {
        match self {
            Self::A => 'A',
            Self::B => 'B',
            Self::C => 'C',
            Self::D => 'D',
            Self::E => 'E',
            Self::F => 'F',
            Self::G => 'G',
            Self::H => 'H',
        }
    }

    pub fn from_letter(letter: char) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.letter() == letter)
    }

    /// The arrow's label in Figure 2, in the RFC's words.
    pub fn arrow(self) -> &'static str {
        match self {
            Self::A => "Authorization Grant",
            Self::B => "Access Token & Refresh Token",
            Self::C | Self::E => "Access Token",
            Self::D => "Protected Resource",
            Self::F => "Invalid Token Error",
            Self::G => "Refresh Token",
            Self::H => "Access Token & Optional Refresh Token",
        }
    }
}

impl std::fmt::Display for FlowStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.letter())
    }
}

impl std::str::FromStr for FlowStep {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        match (chars.next().and_then(Self::from_letter), chars.next()) {
            (Some(step), None) => Ok(step),
            _ => Err(format!("{s:?} is not a Figure 2 step (A to H)")),
        }
    }
}

/// Parses a space-separated sequence of steps, e.g. `"E F G H C D"`.
pub fn parse_steps(text: &str) -> Result<Vec<FlowStep>, String> {
    text.split_whitespace().map(str::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_round_trip() {
        for step in FlowStep::ALL {
            assert_eq!(step.to_string().parse::<FlowStep>(), Ok(step));
            assert_eq!(serde_json::to_string(&step).unwrap(), format!("\"{step}\""));
        }
        assert_eq!(parse_steps("E F G H"), Ok(vec![FlowStep::E, FlowStep::F, FlowStep::G, FlowStep::H]));
        assert!(parse_steps("A Z").is_err());
        assert!("AB".parse::<FlowStep>().is_err());
    }
}
