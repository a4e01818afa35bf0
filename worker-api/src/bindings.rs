//! Ports implemented over Worker bindings: outbound HTTP (`fetch`), the
//! `NodeLifecycle` Durable Object as the boot log, and random numbers.

use sam_control::BootLog;
use sam_domain::node::BootPhase;
use sam_durable_objects::{BootEvent, StartRequest};
use sam_providers::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
use worker::{Env, Fetch, Headers, Request, RequestInit, Stub};

pub use sam_durable_objects::d1::D1Sql;
pub use sam_durable_objects::now_ms;

/// Binding names from `wrangler.toml`.
pub const DB: &str = "DB";
pub const KV: &str = "KV";
pub const R2: &str = "R2";
pub const NODE_LIFECYCLE: &str = "NODE_LIFECYCLE";

pub fn d1(env: &Env) -> worker::Result<D1Sql> {
    Ok(D1Sql(env.d1(DB)?))
}

/// 128 random bits from the runtime's CSPRNG.
pub fn random_u128() -> u128 {
    let mut buf = [0u8; 16];
    // getrandom on workerd is crypto.getRandomValues, which does not fail.
    let _ = getrandom::getrandom(&mut buf);
    u128::from_le_bytes(buf)
}

/// Random bytes as lowercase hex (session ids and the like).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let _ = getrandom::getrandom(&mut buf);
    hex::encode(buf)
}

/// Outbound HTTP through the runtime's `fetch`.
pub struct FetchHttp;

impl HttpClient for FetchHttp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
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
        .with_headers(headers);
        if let Some(body) = req.body {
            init.with_body(Some(js_sys_bytes(&body)));
        }
        let request = Request::new_with_init(&req.url, &init)
            .map_err(|e| TransportError::new(e.to_string()))?;
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
}

fn js_sys_bytes(body: &[u8]) -> wasm_bindgen::JsValue {
    worker::js_sys::Uint8Array::from(body).into()
}

/// The node's `NodeLifecycle` Durable Object.
pub fn lifecycle_stub(env: &Env, node_id: &str) -> worker::Result<Stub> {
    env.durable_object(NODE_LIFECYCLE)?.get_by_name(node_id)
}

async fn post_json<T: serde::Serialize>(stub: &Stub, path: &str, body: &T) -> Result<(), String> {
    let json = serde_json::to_string(body).map_err(|e| e.to_string())?;
    let headers = Headers::new();
    headers
        .set("content-type", "application/json")
        .map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(json.into()));
    let req = Request::new_with_init(&format!("https://node-lifecycle{path}"), &init)
        .map_err(|e| e.to_string())?;
    let resp = stub
        .fetch_with_request(req)
        .await
        .map_err(|e| e.to_string())?;
    if resp.status_code() >= 300 {
        return Err(format!(
            "NodeLifecycle{path} answered {}",
            resp.status_code()
        ));
    }
    Ok(())
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

/// `BootLog` over the per-node Durable Object.
pub struct DurableBootLog<'a> {
    pub env: &'a Env,
}

impl BootLog for DurableBootLog<'_> {
    async fn started(&self, node_id: &str, created_at: i64, deadline: i64) -> Result<(), String> {
        let stub = lifecycle_stub(self.env, node_id).map_err(|e| e.to_string())?;
        let result = post_json(
            &stub,
            "/start",
            &StartRequest {
                node_id: node_id.to_owned(),
                created_at,
                boot_deadline_at: deadline,
            },
        )
        .await;
        log_failure("boot log start", &result);
        result
    }

    async fn record(
        &self,
        node_id: &str,
        at: i64,
        phase: BootPhase,
        detail: Option<&str>,
    ) -> Result<(), String> {
        let stub = lifecycle_stub(self.env, node_id).map_err(|e| e.to_string())?;
        let result = post_json(
            &stub,
            "/event",
            &BootEvent {
                at,
                phase,
                detail: detail.map(str::to_owned),
            },
        )
        .await;
        log_failure("boot log event", &result);
        result
    }
}

fn log_failure(what: &str, result: &Result<(), String>) {
    if let Err(e) = result {
        worker::console_error!("{what} failed: {e}");
    }
}
