//! The Scaleway Instance API subset SAM uses, under `/instance/v1` on the
//! same listener as the Hetzner API: zonal servers (create, list by tags,
//! get, delete), power actions (`poweron`, `poweroff`, `reboot`,
//! `terminate`), user data, volumes left behind by `DELETE`, and the
//! commercial-type catalogue.
//!
//! Its servers are the same emulated machines as Hetzner's (powering one on
//! interprets its `cloud-init` user data), kept in the same world but
//! visible only through this API. Authentication is Scaleway's: one secret
//! key in `X-Auth-Token`, valid for one project; errors use Scaleway's
//! `{"type","message",...}` body.

mod auth;
mod catalog;
mod error;
mod servers;
mod user_data;
mod volumes;
mod wire;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
pub(super) use error::ScwError;

async fn no_route() -> Response {
    ScwError::route_not_found().into_response()
}

/// Routes relative to `/instance/v1`, with their own authentication and
/// fallback.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/zones/{zone}/servers",
            get(servers::list).post(servers::create),
        )
        .route(
            "/zones/{zone}/servers/{id}",
            get(servers::get).delete(servers::delete),
        )
        .route("/zones/{zone}/servers/{id}/action", post(servers::action))
        .route("/zones/{zone}/servers/{id}/user_data", get(user_data::list))
        .route(
            "/zones/{zone}/servers/{id}/user_data/{key}",
            get(user_data::get)
                .patch(user_data::set)
                .delete(user_data::delete),
        )
        .route(
            "/zones/{zone}/volumes/{id}",
            get(volumes::get).delete(volumes::delete),
        )
        .route("/zones/{zone}/products/servers", get(catalog::products))
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(from_fn_with_state(state, auth::require_secret_key))
}
