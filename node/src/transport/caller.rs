//! Who is at the other end of a call, as the connection (a verified
//! certificate) and the metadata (a token) say.

use tonic::Request;
use zdb_security::tls::Identity;

use crate::auth::Caller;

/// What the connection and the metadata say about who calls.
pub fn caller_of<T>(request: &Request<T>) -> Caller {
    let token = request
        .metadata()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|token| token.trim().to_owned());
    Caller {
        certificate: request
            .peer_certs()
            .and_then(|certs| Identity::of_peer(certs.as_slice())),
        token,
        peer: request.remote_addr(),
    }
}
