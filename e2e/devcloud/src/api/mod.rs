//! The HTTP surface: Hetzner Cloud API v1 routes, bearer auth, and the
//! Hetzner error envelope for everything that goes wrong, including
//! unknown routes; plus, under `/instance/v1`, the Scaleway Instance API
//! subset with its own authentication and error shape ([`scaleway`]); and
//! devcloud's unauthenticated admin API under `/_devcloud` ([`admin`]).
//! Fault injection ([`faults`]) wraps both provider APIs.

mod actions;
mod admin;
mod auth;
mod catalog;
mod error;
mod faults;
mod pagination;
mod power;
mod query;
mod scaleway;
mod servers;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::Config;
use crate::faults::Faults;
use crate::state::Store;
use crate::vm::Fleet;
use error::ApiError;

#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Arc<Store>,
    pub fleet: Fleet,
    pub config: Arc<Config>,
    pub faults: Arc<Faults>,
}

async fn no_route() -> Response {
    ApiError::not_found("not found").into_response()
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/servers", get(servers::list).post(servers::create))
        .route(
            "/v1/servers/{id}",
            get(servers::get)
                .put(servers::update)
                .delete(servers::delete),
        )
        .route("/v1/servers/{id}/actions", get(servers::list_actions))
        .route(
            "/v1/servers/{id}/actions/{action}",
            get(servers::get_action).post(servers::power_action),
        )
        .route("/v1/actions", get(actions::list))
        .route("/v1/actions/{id}", get(actions::get))
        .route("/v1/server_types", get(catalog::server_types))
        .route("/v1/server_types/{id}", get(catalog::server_type))
        .route("/v1/locations", get(catalog::locations))
        .route("/v1/locations/{id}", get(catalog::location))
        .route("/v1/datacenters", get(catalog::datacenters))
        .route("/v1/datacenters/{id}", get(catalog::datacenter))
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(from_fn_with_state(state.clone(), auth::require_token))
        // Nested after the layer above: Scaleway routes never see the
        // Hetzner token check, only their own.
        .nest("/instance/v1", scaleway::router(state.clone()))
        // Also after the token layer: the admin API takes no credentials.
        .merge(admin::routes())
        // Outermost: a faulted request never reaches authentication or a
        // handler (unless the rule says `after_effect`).
        .layer(from_fn_with_state(state.clone(), faults::inject))
        .with_state(state)
}
