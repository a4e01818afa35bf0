//! Ports implemented over the Workers runtime, shared by the API Worker
//! and the Durable Objects: outbound HTTP (`fetch`), timers and random
//! numbers.

use sam_providers::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
use worker::{Fetch, Headers, Request, RequestInit};

/// 128 random bits from the runtime's CSPRNG.
pub fn random_u128() -> u128 {
    let mut buf = [0u8; 16];
    // getrandom on workerd is crypto.getRandomValues, which does not fail.
    let _ = getrandom::getrandom(&mut buf);
    u128::from_le_bytes(buf)
}

/// Outbound HTTP through the runtime's `fetch`.
#[derive(Debug, Clone, Copy)]
pub struct FetchHttp;

impl HttpClient for FetchHttp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        fetch(req, worker::RequestRedirect::Follow).await
    }
}

/// Outbound HTTP that hands redirects back instead of following them: for
/// calls to nodes, which are user territory (a redirect there must not
/// send us, or our token, anywhere else).
#[derive(Debug, Clone, Copy)]
pub struct FetchHttpNoRedirects;

impl HttpClient for FetchHttpNoRedirects {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        fetch(req, worker::RequestRedirect::Manual).await
    }
}

async fn fetch(
    req: HttpRequest,
    redirect: worker::RequestRedirect,
) -> Result<HttpResponse, TransportError> {
    let headers = Headers::new();
    for (name, value) in &req.headers {
        headers
            .set(name, value)
            .map_err(|e| TransportError::new(e.to_string()))?;
    }
    let mut init = RequestInit::new();
    init.with_method(match req.method {
        Method::Get => worker::Method::Get,
        Method::Post => worker::Method::Post,
        Method::Delete => worker::Method::Delete,
        Method::Put => worker::Method::Put,
        Method::Patch => worker::Method::Patch,
    })
    .with_headers(headers)
    .with_redirect(redirect);
    if let Some(body) = req.body {
        init.with_body(Some(js_sys_bytes(&body)));
    }
    let request =
        Request::new_with_init(&req.url, &init).map_err(|e| TransportError::new(e.to_string()))?;
    let mut response = Fetch::Request(request)
        .send()
        .await
        .map_err(|e| TransportError::new(e.to_string()))?;
    let headers = response.headers().entries().collect();
    let body = response
        .bytes()
        .await
        .map_err(|e| TransportError::new(e.to_string()))?;
    Ok(HttpResponse {
        status: response.status_code(),
        headers,
        body,
    })
}

fn js_sys_bytes(body: &[u8]) -> wasm_bindgen::JsValue {
    worker::js_sys::Uint8Array::from(body).into()
}

/// Waits on a promise that `setTimeout` resolves. (`worker::Delay` 0.8.7
/// wakes its task before marking itself done, so an executor that polls
/// at once sees it pending forever and workerd cancels the request as hung.)
async fn sleep_ms(ms: u64) {
    use worker::js_sys::{Function, Promise, Reflect};
    use worker::wasm_bindgen::{JsCast as _, JsValue};
    let promise = Promise::new(&mut |resolve: Function, _reject: Function| {
        let global = worker::js_sys::global();
        let set_timeout = Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok());
        #[allow(clippy::cast_precision_loss)]
        let delay = JsValue::from_f64(ms as f64);
        match set_timeout {
            Some(set_timeout) => {
                let _ = set_timeout.call2(&global, &resolve, &delay);
            }
            // No timer at all: do not wait rather than hang.
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = worker::wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Retry waits on the Workers timer, jitter from `crypto.getRandomValues`.
pub struct WorkerRetryRuntime;

impl sam_control::RetryRuntime for WorkerRetryRuntime {
    async fn pause(&self, ms: u64) {
        if ms > 0 {
            sleep_ms(ms).await;
        }
    }

    fn jitter(&self) -> f64 {
        // 53 random bits: every f64 in [0, 1) with that spacing.
        #[allow(clippy::cast_precision_loss)]
        let fraction = (random_u128() >> 75) as f64 / (1u64 << 53) as f64;
        fraction
    }
}
