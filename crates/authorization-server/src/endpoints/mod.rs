//! One file per endpoint. Each opens with its method, path and RFC, reads the request,
//! calls `figure2_protocol` and writes the answer.

pub mod authorize;
pub mod discovery;
pub mod introspection;
pub mod revocation;
pub mod token;
