//! Integration tests of the authorization server over real HTTP on 127.0.0.1.
