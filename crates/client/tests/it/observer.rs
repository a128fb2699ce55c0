//! The observer sees Figure 2 in order: A/B, C/D, E/F, G/H, C/D.

use crate::support::*;
use figure2_client::Step;

#[tokio::test]
async fn observer_sees_a_to_h_in_order_with_the_right_letters() {
    let h = Harness::new().await;
    h.authorize().await;
    resource_ok("at0").up_to_n_times(1).mount(&h.rs).await;
    resource_invalid_token("at0").mount(&h.rs).await;
    resource_ok("at1").mount(&h.rs).await;
    refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;

    h.call().await.unwrap(); // C/D
    h.call().await.unwrap(); // E/F, G/H, C/D

    let exchanges = h.exchanges();
    let steps: Vec<Step> = exchanges.iter().map(|e| e.step).collect();
    assert_eq!(
        steps,
        [Step::AuthorizationGrant, Step::ProtectedResource, Step::InvalidToken, Step::Refresh, Step::ProtectedResource]
    );
    let letters: String = steps.iter().flat_map(|s| [s.request_step().letter(), s.response_step().letter()]).collect();
    assert_eq!(letters, "ABCDEFGHCD");

    let [a, c, e, g, c2] = exchanges.as_slice() else { unreachable!() };
    assert_eq!((a.method.as_str(), a.status), ("POST", 200));
    assert!(a.url.ends_with("/token"));
    assert!(a.request_body.contains("grant_type=password"));
    assert!(a.response_body.contains("rt0"));
    assert_eq!((c.method.as_str(), c.status), ("GET", 200));
    assert!(c.request_headers.contains(&("authorization".into(), "Bearer at0".into())));
    assert_eq!(e.status, 401);
    assert!(e.response_header("WWW-Authenticate").is_some_and(|v| v.contains("invalid_token")));
    assert!(g.request_body.contains("grant_type=refresh_token") && g.request_body.contains("refresh_token=rt0"));
    assert!(g.request_headers.iter().any(|(n, v)| n == "authorization" && v.starts_with("Basic ")));
    assert!(c2.request_headers.contains(&("authorization".into(), "Bearer at1".into())));
    assert!(exchanges.iter().all(|x| x.at == START));

    // One line each, letters first, no raw tokens.
    let lines: Vec<String> = exchanges.iter().map(|x| x.summary()).collect();
    assert!(lines[1].starts_with("(C)->(D) GET /resource/read 200"), "{}", lines[1]);
    assert_eq!(lines[2], "(E)->(F) GET /resource/read 401 invalid_token");
    assert!(lines[3].starts_with("(G)->(H) refresh 200 at#") && lines[3].contains(" rotated rt#"), "{}", lines[3]);
    for line in &lines {
        for token in ["at0", "at1", "rt0", "rt1"] {
            assert!(!line.contains(token), "{line}");
        }
    }
    // Debug output leaves headers and bodies out.
    assert!(!format!("{g:?}").contains("rt0"));
}

#[tokio::test]
async fn step_descriptions() {
    assert_eq!(Step::Refresh.describe(), "Refresh Token -> Access Token & Optional Refresh Token");
    assert_eq!(
        (Step::InvalidToken.request_step(), Step::InvalidToken.response_step()),
        (figure2_protocol::FlowStep::E, figure2_protocol::FlowStep::F)
    );
}
