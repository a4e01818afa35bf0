//! The middleware that injects API faults: it counts every provider API
//! request, asks the rules whether this one is faulted and, if so, answers
//! in the provider's own error shape — without running the handler, or
//! after running it (`after_effect`), whose answer is then thrown away.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::scaleway::ScwError;
use crate::faults::{Api, ApiFault, ApiFaultKind};

/// The hourly request limit Hetzner announces in its `RateLimit-*` headers.
const HETZNER_RATE_LIMIT: u32 = 3600;

fn api_of(path: &str) -> Option<Api> {
    let under = |root: &str| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/instance/v1") {
        Some(Api::Scaleway)
    } else if under("/v1") {
        Some(Api::Hetzner)
    } else {
        None
    }
}

pub(crate) async fn inject(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(api) = api_of(request.uri().path()) else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let Some(fault) = state.faults.api_fault(api, method.as_str(), &path) else {
        return next.run(request).await;
    };
    tracing::info!(
        rule = fault.rule_id,
        %method,
        path,
        status = fault.status,
        after_effect = fault.after_effect,
        "injecting API fault"
    );
    if fault.after_effect {
        let _discarded = next.run(request).await;
    }
    fault_response(api, &fault)
}

fn fault_response(api: Api, fault: &ApiFault) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let origin = format!("(devcloud fault rule {})", fault.rule_id);
    let mut response = match (api, fault.kind) {
        (Api::Hetzner, ApiFaultKind::RateLimit) => ApiError::rate_limit_exceeded(format!(
            "limit of {HETZNER_RATE_LIMIT} requests per hour reached {origin}"
        ))
        .into_response(),
        (Api::Hetzner, ApiFaultKind::ServerError) => {
            ApiError::injected_server_error(status, format!("internal server error {origin}"))
                .into_response()
        }
        (Api::Scaleway, ApiFaultKind::RateLimit) => {
            ScwError::too_many_requests(&format!("too many requests {origin}")).into_response()
        }
        (Api::Scaleway, ApiFaultKind::ServerError) => {
            ScwError::injected_server_error(status, &format!("internal error {origin}"))
                .into_response()
        }
    };
    let headers = response.headers_mut();
    if let Some(secs) = fault.retry_after_secs {
        headers.insert("retry-after", HeaderValue::from(secs));
    }
    if api == Api::Hetzner && fault.kind == ApiFaultKind::RateLimit {
        let reset = chrono::Utc::now().timestamp()
            + i64::try_from(fault.retry_after_secs.unwrap_or(1)).unwrap_or(i64::MAX / 2);
        headers.insert("ratelimit-limit", HeaderValue::from(HETZNER_RATE_LIMIT));
        headers.insert("ratelimit-remaining", HeaderValue::from(0));
        headers.insert("ratelimit-reset", HeaderValue::from(reset));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_apis_apart() {
        assert_eq!(api_of("/v1/servers"), Some(Api::Hetzner));
        assert_eq!(api_of("/v1"), Some(Api::Hetzner));
        assert_eq!(
            api_of("/instance/v1/zones/fr-par-1/servers"),
            Some(Api::Scaleway)
        );
        assert_eq!(api_of("/v10/servers"), None);
        assert_eq!(api_of("/_devcloud/faults"), None);
        assert_eq!(api_of("/"), None);
    }
}
