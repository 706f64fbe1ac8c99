use std::future::Future;
use std::time::Instant;

use tonic::{Code, Status};

use crate::metrics;

/// Runs a handler, counting it and timing it under `method`.
pub async fn observe<T>(
    method: &'static str,
    handler: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let started = Instant::now();
    let result = handler.await;
    let code = match &result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    metrics::REQUESTS
        .with_label_values(&[method, code_name(code)])
        .inc();
    metrics::REQUEST_SECONDS
        .with_label_values(&[method])
        .observe(started.elapsed().as_secs_f64());
    result
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::InvalidArgument => "invalid_argument",
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::FailedPrecondition => "failed_precondition",
        Code::Internal => "internal",
        _ => "other",
    }
}
