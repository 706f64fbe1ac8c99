//! How every gRPC call reaches an operation: who the caller is and whether
//! the request may run (every request type declares what it needs), the
//! forwarding hop count from the request metadata in, the typed error or
//! the redirect the node followed out, and the call counted and timed.

use std::time::{Duration, Instant};

use prost::Message as _;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::observe::observe;
use crate::auth::Protected;
use crate::error::Result;
use crate::ops::{CallContext, Ops};
use crate::transport::{caller_of, HOPS_METADATA};

/// Response metadata naming the redirect a node followed to serve a
/// request (an encoded `zdb.v1.Error`), for clients that route themselves.
pub const REDIRECT_METADATA: &str = "zdb-redirect-bin";

pub fn context_of<T>(request: &Request<T>) -> CallContext {
    let metadata = request.metadata();
    let hops = metadata
        .get(HOPS_METADATA)
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let deadline = metadata
        .get("grpc-timeout")
        .and_then(|value| grpc_timeout(value.to_str().ok()?))
        .map(|timeout| Instant::now() + timeout);
    CallContext::new(hops, deadline)
}

/// The `grpc-timeout` header: up to eight digits and a unit.
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    let amount: u64 = digits.parse().ok().filter(|_| digits.len() <= 8)?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The name of a request's message, for the audit log ("SplitRangeRequest").
fn rpc_name<Req>() -> &'static str {
    let full = std::any::type_name::<Req>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Runs `operation` on the request's message under `method`, if the
/// caller may make it.
pub async fn serve<Req: Protected, Resp>(
    ops: &Ops,
    method: &'static str,
    request: Request<Req>,
    operation: impl AsyncFnOnce(Req, &mut CallContext) -> Result<Resp>,
) -> Result<Response<Resp>, Status> {
    observe(method, async {
        let mut ctx = context_of(&request);
        let requirement = request.get_ref().requirement();
        ctx.principal = ops
            .authorize(&caller_of(&request), rpc_name::<Req>(), &requirement)
            .await?;
        let message = request.into_inner();
        let result = operation(message, &mut ctx).await;
        let mut response = Response::new(result?);
        if let Some(redirect) = ctx.redirect {
            let value = MetadataValue::from_bytes(&redirect.encode_to_vec());
            response.metadata_mut().insert_bin(REDIRECT_METADATA, value);
        }
        Ok(response)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_the_protocol_writes_them() {
        assert_eq!(grpc_timeout("3000m"), Some(Duration::from_secs(3)));
        assert_eq!(grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("123456789m"), None);
        assert_eq!(grpc_timeout("5x"), None);
        assert_eq!(grpc_timeout(""), None);
    }
}
