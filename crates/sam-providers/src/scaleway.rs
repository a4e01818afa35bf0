//! Scaleway Instance API client (the subset SAM needs to run nodes).
//!
//! Like the Hetzner client, this is request building and response parsing
//! over the [`HttpClient`] port. Scaleway differs in ways that shape the
//! code:
//!
//! - Resources are zonal (`/instance/v1/zones/{zone}/...`) and scoped to a
//!   project; the credential is an IAM secret key sent as `X-Auth-Token`.
//! - Creating a server is three calls: `POST .../servers` (the server is
//!   `stopped`), `PATCH .../user_data/cloud-init` (`text/plain`), then the
//!   `poweron` action.
//! - `DELETE .../servers/{id}` only works on a stopped server and leaves its
//!   volumes behind; a running server is removed with the `terminate`
//!   action, which also deletes its volumes.
//! - Power actions (`poweroff`, `poweron`) refuse a server already in the
//!   wanted state (400), where Hetzner answers with an action that has
//!   already succeeded.
//! - Errors are `{"type": "...", "message": "...", ...}`; they are mapped to
//!   the shared [`ProviderErrorKind`]s by [`classify_scaleway`].
//!
//! The secret key is scrubbed from every error this module builds and
//! never shown by `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{
    ProviderError, ProviderErrorKind, classify, expect_success, json_body, parse_json,
    response_error, scrub, send_json_api,
};
use crate::hetzner::{DeleteOutcome, PowerAction};
use crate::http::{HttpClient, HttpResponse, Method, percent_encode, trim_base_url};

/// Scaleway's public API root (every product lives under it, the Instance
/// API at `/instance/v1`).
pub const SCALEWAY_API_BASE: &str = "https://api.scaleway.com";

/// Zone used for calls that are not about one zone's resources
/// ([`ScalewayClient::validate_token`]).
const DEFAULT_ZONE: &str = "fr-par-1";
/// Page size for list calls; 100 is the Instance API's maximum.
const PER_PAGE: usize = 100;
/// Upper bound on pages followed, so a provider that never runs out cannot loop us forever.
const MAX_PAGES: u32 = 1_000;
/// The user-data key cloud-init reads on Scaleway images.
const CLOUD_INIT_KEY: &str = "cloud-init";

/// Input for [`ScalewayClient::create_server`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalewayCreateServer {
    pub name: String,
    /// Commercial type, e.g. `DEV1-S`.
    pub commercial_type: String,
    /// Zone, e.g. `fr-par-1`.
    pub zone: String,
    /// Image label (e.g. `ubuntu_noble`) or image id.
    pub image: String,
    /// Tags are plain strings on Scaleway (no key/value); SAM encodes its
    /// labels as `key=value` tags. Commas are refused: the list filter
    /// (`?tags=a,b`) could not tell them from separators.
    pub tags: Vec<String>,
    /// cloud-init document, stored under the `cloud-init` user-data key.
    pub user_data: String,
}

/// A server as SAM needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalewayServer {
    /// A UUID.
    pub id: String,
    pub name: String,
    /// Scaleway's state: `stopped`, `stopped in place`, `starting`,
    /// `running`, `stopping` or `locked`.
    pub state: String,
    /// The first public IPv4 (routed `public_ips` first, then the legacy
    /// `public_ip`), once one is attached.
    pub public_ip: Option<String>,
    pub tags: Vec<String>,
    pub zone: String,
    pub commercial_type: String,
    pub project: String,
    /// ISO 8601 creation time as Scaleway sent it.
    pub created: String,
}

/// A Scaleway Instance API client bound to one secret key and one project.
pub struct ScalewayClient<H> {
    http: H,
    base_url: String,
    secret_key: String,
    project_id: String,
}

/// Hand-written: the derived form would print the secret key.
impl<H> fmt::Debug for ScalewayClient<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScalewayClient")
            .field("base_url", &self.base_url)
            .field("secret_key", &"[redacted]")
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

impl<H: HttpClient> ScalewayClient<H> {
    /// `base_url` is the API root without a product path, e.g.
    /// [`SCALEWAY_API_BASE`]; a trailing slash is tolerated.
    pub fn new(
        http: H,
        base_url: impl Into<String>,
        secret_key: impl Into<String>,
        project_id: impl Into<String>,
    ) -> Self {
        Self {
            http,
            base_url: trim_base_url(base_url.into()),
            secret_key: secret_key.into(),
            project_id: project_id.into(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// Checks that the key is accepted *and* reaches the project, with the
    /// cheapest project-scoped read there is (one server at most).
    ///
    /// A wrong or revoked key is a 401 (`denied_authentication`); a key
    /// without access to the project a 403 (`permissions_denied`). Both are
    /// [`ProviderErrorKind::Auth`].
    pub async fn validate_token(&self) -> Result<(), ProviderError> {
        let path = format!(
            "/instance/v1/zones/{DEFAULT_ZONE}/servers?project={}&per_page=1",
            percent_encode(&self.project_id)
        );
        let resp = self.send(Method::Get, &path, None).await?;
        self.expect_success(resp)?;
        Ok(())
    }

    /// Creates a server in the client's project, stores the cloud-init
    /// user data and powers it on. Returns once Scaleway accepted the
    /// power-on; the server is then `starting`.
    ///
    /// Should storing the user data or the power-on fail, the (still
    /// stopped) server and its volumes are deleted again, best effort, and
    /// the error names the server; a server that survives even that carries
    /// the request's tags, so [`ScalewayClient::list_servers`] finds it.
    pub async fn create_server(
        &self,
        req: &ScalewayCreateServer,
    ) -> Result<ScalewayServer, ProviderError> {
        let zone = check_zone(&req.zone)?;
        check_tags(&req.tags)?;
        let body = CreateServerBody {
            name: &req.name,
            commercial_type: &req.commercial_type,
            image: &req.image,
            project: &self.project_id,
            tags: &req.tags,
            dynamic_ip_required: true,
        };
        let body = json_body(&body)?;
        let resp = self
            .send(
                Method::Post,
                &format!("/instance/v1/zones/{zone}/servers"),
                Some(Body::json(body)),
            )
            .await?;
        let resp = self.expect_success(resp)?;
        let created: ServerEnvelope = parse_json(&resp)?;
        let server = created.server;
        let id = check_id(&server.id)?.to_owned();

        if let Err(err) = self.boot(zone, &id, &req.user_data).await {
            // Best effort: the error the caller sees is the one that matters.
            let _ = self.delete_stopped(zone, &server).await;
            return Err(ProviderError {
                message: scrub(
                    &format!(
                        "server {id} was created but could not be started (deleted again): {}",
                        err.message
                    ),
                    &self.secret_key,
                ),
                ..err
            });
        }
        Ok(ScalewayServer {
            state: "starting".to_owned(),
            ..ScalewayServer::from(server)
        })
    }

    /// Looks a server up; `None` when the zone has no server with this id.
    pub async fn get_server(
        &self,
        zone: &str,
        id: &str,
    ) -> Result<Option<ScalewayServer>, ProviderError> {
        Ok(self
            .fetch_server(check_zone(zone)?, check_id(id)?)
            .await?
            .map(ScalewayServer::from))
    }

    /// All servers of the project in `zone` carrying every given tag,
    /// across all pages. No tags lists every server of the project there.
    pub async fn list_servers(
        &self,
        zone: &str,
        tags: &[String],
    ) -> Result<Vec<ScalewayServer>, ProviderError> {
        let zone = check_zone(zone)?;
        check_tags(tags)?;
        let mut query = format!("project={}", percent_encode(&self.project_id));
        if !tags.is_empty() {
            let tags: Vec<String> = tags.iter().map(|t| percent_encode(t)).collect();
            query.push_str("&tags=");
            query.push_str(&tags.join(","));
        }
        let mut servers = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = format!(
                "/instance/v1/zones/{zone}/servers?{query}&page={page}&per_page={PER_PAGE}"
            );
            let resp = self.send(Method::Get, &path, None).await?;
            let resp = self.expect_success(resp)?;
            let total = resp
                .header("x-total-count")
                .and_then(|v| v.trim().parse::<usize>().ok());
            let parsed: ServersPage = parse_json(&resp)?;
            let count = parsed.servers.len();
            servers.extend(parsed.servers.into_iter().map(ScalewayServer::from));
            // A short page ends the listing; so does reaching the announced
            // total (which saves one empty request when it divides evenly).
            if count < PER_PAGE || total.is_some_and(|t| servers.len() >= t) {
                return Ok(servers);
            }
        }
        Err(ProviderError::new(
            ProviderErrorKind::Unknown,
            None,
            "invalid_response",
            format!("listing servers in {zone}: more than {MAX_PAGES} pages"),
        ))
    }

    /// Deletes a server and its volumes. Idempotent: a server that no
    /// longer exists is [`DeleteOutcome::AlreadyGone`].
    ///
    /// A running server is terminated (the `terminate` action deletes it
    /// with its volumes); a stopped one is deleted, then its volumes one by
    /// one, since `DELETE` leaves them behind. A server between states
    /// (`starting`, `stopping`, `locked`) cannot be deleted yet: that is a
    /// [`ProviderErrorKind::Transient`] error (`server_busy`) to retry.
    pub async fn delete_server(
        &self,
        zone: &str,
        id: &str,
    ) -> Result<DeleteOutcome, ProviderError> {
        let zone = check_zone(zone)?;
        let id = check_id(id)?;
        let Some(server) = self.fetch_server(zone, id).await? else {
            return Ok(DeleteOutcome::AlreadyGone);
        };
        match server.state.as_str() {
            "running" => {
                let resp = self.action(zone, id, "terminate").await?;
                if resp.status == 404 {
                    return Ok(DeleteOutcome::AlreadyGone);
                }
                self.expect_success(resp)?;
                Ok(DeleteOutcome::Deleted)
            }
            "stopped" | "stopped in place" => self.delete_stopped(zone, &server).await,
            state => Err(ProviderError::new(
                ProviderErrorKind::Transient,
                None,
                "server_busy",
                format!(
                    "server {id} is {}; it can be deleted once running or stopped",
                    clip(state, 40)
                ),
            )),
        }
    }

    /// Powers the server off (the `poweroff` action: the server is stopped
    /// and leaves its hypervisor). Returns once Scaleway accepted it; the
    /// server then goes `stopping`, then `stopped`
    /// ([`ScalewayClient::get_server`] tells when).
    ///
    /// Refusals keep the API's meaning: a server still `stopping` is a 409
    /// `transient_state`, [`ProviderErrorKind::Transient`] (retry); a server
    /// already stopped a 400 `invalid_request_error` ("server should be
    /// running"), [`ProviderErrorKind::InvalidConfig`]: unlike Hetzner,
    /// Scaleway does not treat a power action on a server already in that
    /// state as done, and retrying cannot help. An unknown id is a
    /// [`ProviderErrorKind::NotFound`] error.
    pub async fn power_off(&self, zone: &str, id: &str) -> Result<PowerAction, ProviderError> {
        self.power_action(zone, id, "poweroff").await
    }

    /// Powers the server on; it then goes `starting`, then `running`.
    ///
    /// A server still `stopping` is refused as [`ProviderErrorKind::Transient`]
    /// (409 `transient_state`: retry once it is stopped); a server that is
    /// running or already starting as [`ProviderErrorKind::InvalidConfig`]
    /// (400 `invalid_request_error`, "server should be stopped"). An unknown
    /// id is a [`ProviderErrorKind::NotFound`] error.
    pub async fn power_on(&self, zone: &str, id: &str) -> Result<PowerAction, ProviderError> {
        self.power_action(zone, id, "poweron").await
    }

    async fn power_action(
        &self,
        zone: &str,
        id: &str,
        action: &str,
    ) -> Result<PowerAction, ProviderError> {
        let zone = check_zone(zone)?;
        let id = check_id(id)?;
        let resp = self.action(zone, id, action).await?;
        let resp = self.expect_success(resp)?;
        let parsed: TaskEnvelope = parse_json(&resp)?;
        Ok(PowerAction {
            id: parsed.task.id,
            command: parsed.task.description,
            status: parsed.task.status,
        })
    }

    /// Stores the user data, then powers the server on.
    async fn boot(&self, zone: &str, id: &str, user_data: &str) -> Result<(), ProviderError> {
        let resp = self
            .send(
                Method::Patch,
                &format!("/instance/v1/zones/{zone}/servers/{id}/user_data/{CLOUD_INIT_KEY}"),
                Some(Body::text(user_data.as_bytes().to_vec())),
            )
            .await?;
        self.expect_success(resp)?;
        let resp = self.action(zone, id, "poweron").await?;
        self.expect_success(resp)?;
        Ok(())
    }

    /// `DELETE` on a stopped server, then its volumes.
    async fn delete_stopped(
        &self,
        zone: &str,
        server: &WireServer,
    ) -> Result<DeleteOutcome, ProviderError> {
        let id = check_id(&server.id)?;
        let resp = self
            .send(
                Method::Delete,
                &format!("/instance/v1/zones/{zone}/servers/{id}"),
                None,
            )
            .await?;
        if resp.status == 404 {
            return Ok(DeleteOutcome::AlreadyGone);
        }
        self.expect_success(resp)?;
        for volume in server.volumes.values() {
            let Ok(volume_id) = check_id(&volume.id) else {
                continue;
            };
            let path = match volume.volume_type.as_str() {
                "l_ssd" | "b_ssd" => format!("/instance/v1/zones/{zone}/volumes/{volume_id}"),
                "sbs_volume" => format!("/block/v1alpha1/zones/{zone}/volumes/{volume_id}"),
                // Unknown kinds are left alone rather than guessed at.
                _ => continue,
            };
            let resp = self.send(Method::Delete, &path, None).await?;
            if resp.status != 404 {
                self.expect_success(resp).map_err(|e| ProviderError {
                    message: scrub(
                        &format!(
                            "server {id} was deleted but its volume {volume_id} was not: {}",
                            e.message
                        ),
                        &self.secret_key,
                    ),
                    ..e
                })?;
            }
        }
        Ok(DeleteOutcome::Deleted)
    }

    async fn fetch_server(
        &self,
        zone: &str,
        id: &str,
    ) -> Result<Option<WireServer>, ProviderError> {
        let resp = self
            .send(
                Method::Get,
                &format!("/instance/v1/zones/{zone}/servers/{id}"),
                None,
            )
            .await?;
        if resp.status == 404 {
            return Ok(None);
        }
        let resp = self.expect_success(resp)?;
        let parsed: ServerEnvelope = parse_json(&resp)?;
        Ok(Some(parsed.server))
    }

    async fn action(
        &self,
        zone: &str,
        id: &str,
        action: &str,
    ) -> Result<HttpResponse, ProviderError> {
        let body = serde_json::json!({ "action": action })
            .to_string()
            .into_bytes();
        self.send(
            Method::Post,
            &format!("/instance/v1/zones/{zone}/servers/{id}/action"),
            Some(Body::json(body)),
        )
        .await
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Body>,
    ) -> Result<HttpResponse, ProviderError> {
        send_json_api(
            &self.http,
            method,
            format!("{}{path_and_query}", self.base_url),
            ("X-Auth-Token", self.secret_key.clone()),
            body.map(|b| (b.content_type, b.bytes)),
            &self.secret_key,
        )
        .await
    }

    /// Passes 2xx through and turns anything else into a classified error.
    fn expect_success(&self, resp: HttpResponse) -> Result<HttpResponse, ProviderError> {
        expect_success(resp, |resp| {
            let parsed = serde_json::from_slice::<WireError>(&resp.body)
                .ok()
                .filter(|e| e.error_type.is_some() || e.message.is_some())
                .map(|err| {
                    let message = err.describe();
                    let code = err
                        .error_type
                        .unwrap_or_else(|| format!("http_{}", resp.status));
                    (code, message)
                });
            response_error(resp, parsed, classify_scaleway, &self.secret_key)
        })
    }
}

/// Maps an HTTP status plus Scaleway's error `type` to a kind.
///
/// The type wins over the status, as with Hetzner codes: Scaleway answers
/// 403 both for `permissions_denied` and `quotas_exceeded`, and 409 both
/// for `out_of_stock` and `transient_state`. Unknown types fall back to the
/// shared status mapping of [`classify`].
pub fn classify_scaleway(status: u16, error_type: &str) -> ProviderErrorKind {
    match error_type {
        "too_many_requests" | "rate_limited" => ProviderErrorKind::RateLimited,
        "out_of_stock" => ProviderErrorKind::Capacity,
        "quotas_exceeded" => ProviderErrorKind::Quota,
        // `authorization_required` is the older Instance API's 401.
        "denied_authentication" | "authorization_required" | "permissions_denied" => {
            ProviderErrorKind::Auth
        }
        // `invalid_request_error` is the older Instance API's 400 (also used
        // for "server should be stopped").
        "invalid_arguments" | "invalid_request_error" | "precondition_failed" => {
            ProviderErrorKind::InvalidConfig
        }
        "not_found" | "unknown_resource" | "resource_expired" => ProviderErrorKind::NotFound,
        // The resource is mid-transition, or changed under us.
        "transient_state" | "conflict" => ProviderErrorKind::Transient,
        // Locked by Scaleway (abuse, billing): neither retrying nor a new key
        // helps; the user has to contact support.
        "locked" => ProviderErrorKind::Unknown,
        _ => classify(status, ""),
    }
}

/// Checks the shape of a Scaleway credential before it is stored: the
/// secret key and the project id are both UUIDs (8-4-4-4-12 hex digits).
///
/// The error never echoes the secret key; it names what is wrong instead.
pub fn check_secret_shape(secret_key: &str, project_id: &str) -> Result<(), ProviderError> {
    if !is_uuid(secret_key) {
        let hint = if secret_key.trim().starts_with("SCW") {
            " (this looks like an access key; the secret key is the UUID shown next to it)"
        } else {
            ""
        };
        return Err(ProviderError::new(
            ProviderErrorKind::InvalidConfig,
            None,
            "invalid_secret_key",
            format!(
                "the Scaleway secret key must be a UUID like \
                 11111111-2222-3333-4444-555555555555{hint}"
            ),
        ));
    }
    if !is_uuid(project_id) {
        return Err(ProviderError::new(
            ProviderErrorKind::InvalidConfig,
            None,
            "invalid_project_id",
            format!(
                "the Scaleway project id must be a UUID like \
                 11111111-2222-3333-4444-555555555555, not '{}'",
                clip(project_id, 40)
            ),
        ));
    }
    Ok(())
}

/// 8-4-4-4-12 hexadecimal digits, either case.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Server and volume ids are UUIDs; checking that also keeps a hostile id
/// from steering the request path (`x/../../`).
fn check_id(id: &str) -> Result<&str, ProviderError> {
    if is_uuid(id) {
        Ok(id)
    } else {
        Err(ProviderError::new(
            ProviderErrorKind::InvalidConfig,
            None,
            "invalid_server_id",
            format!("'{}' is not a Scaleway id (a UUID)", clip(id, 40)),
        ))
    }
}

/// Zones look like `fr-par-1`: region letters, a dash, city letters, a
/// dash, a number.
fn check_zone(zone: &str) -> Result<&str, ProviderError> {
    let parts: Vec<&str> = zone.split('-').collect();
    let ok = matches!(parts.as_slice(), [region, city, n]
        if (2..=3).contains(&region.len())
            && region.bytes().all(|b| b.is_ascii_lowercase())
            && (2..=4).contains(&city.len())
            && city.bytes().all(|b| b.is_ascii_lowercase())
            && (1..=2).contains(&n.len())
            && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(zone)
    } else {
        Err(ProviderError::new(
            ProviderErrorKind::InvalidConfig,
            None,
            "invalid_zone",
            format!(
                "'{}' is not a Scaleway zone (like fr-par-1)",
                clip(zone, 40)
            ),
        ))
    }
}

fn check_tags(tags: &[String]) -> Result<(), ProviderError> {
    match tags.iter().find(|t| t.is_empty() || t.contains(',')) {
        None => Ok(()),
        Some(bad) => Err(ProviderError::new(
            ProviderErrorKind::InvalidConfig,
            None,
            "invalid_tag",
            format!(
                "tag '{}' cannot be used: tags must be non-empty and free of commas",
                clip(bad, 60)
            ),
        )),
    }
}

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A request body with its media type.
struct Body {
    content_type: &'static str,
    bytes: Vec<u8>,
}

impl Body {
    fn json(bytes: Vec<u8>) -> Self {
        Body {
            content_type: "application/json",
            bytes,
        }
    }

    fn text(bytes: Vec<u8>) -> Self {
        Body {
            content_type: "text/plain",
            bytes,
        }
    }
}

// ---- Wire shapes (private: callers only see the types above) ----

#[derive(Serialize)]
struct CreateServerBody<'a> {
    name: &'a str,
    commercial_type: &'a str,
    image: &'a str,
    project: &'a str,
    tags: &'a [String],
    /// A public IPv4 is attached at boot: agents are reached on it.
    dynamic_ip_required: bool,
}

/// Scaleway's error body. Only `type` and `message` are common to all
/// errors; the rest is type-specific and read to make messages useful.
#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    error_type: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    help_message: Option<String>,
    /// `invalid_arguments`: `[{argument_name, reason, help_message}]`;
    /// `quotas_exceeded`: `[{resource, quota, current}]`. Kept loose so an
    /// unexpected shape never costs us the error's type.
    #[serde(default)]
    details: serde_json::Value,
}

impl WireError {
    fn describe(&self) -> String {
        let mut message = self.message.clone().unwrap_or_default();
        if let Some(help) = self.help_message.as_deref().filter(|h| !h.is_empty()) {
            message = format!("{message} ({help})");
        }
        let details: Vec<String> = self
            .details
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                let field = |k: &str| d.get(k).and_then(serde_json::Value::as_str);
                let number = |k: &str| d.get(k).and_then(serde_json::Value::as_u64);
                if let Some(arg) = field("argument_name") {
                    let why = field("help_message")
                        .or(field("reason"))
                        .unwrap_or("invalid");
                    Some(format!("{arg}: {why}"))
                } else if let Some(resource) = field("resource") {
                    match (number("quota"), number("current")) {
                        (Some(quota), Some(current)) => {
                            Some(format!("{resource}: {current} of {quota} used"))
                        }
                        _ => Some(resource.to_owned()),
                    }
                } else {
                    None
                }
            })
            .collect();
        if !details.is_empty() {
            message = format!("{message}: {}", details.join("; "));
        }
        message
    }
}

#[derive(Deserialize)]
struct ServerEnvelope {
    server: WireServer,
}

/// The answer to a server action.
#[derive(Deserialize)]
struct TaskEnvelope {
    task: WireTask,
}

#[derive(Deserialize)]
struct WireTask {
    id: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct ServersPage {
    servers: Vec<WireServer>,
}

#[derive(Deserialize)]
struct WireServer {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    commercial_type: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    creation_date: String,
    #[serde(default)]
    public_ip: Option<WireIp>,
    #[serde(default)]
    public_ips: Vec<WireIp>,
    /// Keyed by attachment index (`"0"` is the root volume).
    #[serde(default)]
    volumes: BTreeMap<String, WireVolume>,
}

#[derive(Deserialize)]
struct WireIp {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    family: Option<String>,
}

#[derive(Deserialize)]
struct WireVolume {
    id: String,
    #[serde(default)]
    volume_type: String,
}

impl From<WireServer> for ScalewayServer {
    fn from(s: WireServer) -> Self {
        let is_v4 = |ip: &&WireIp| ip.family.as_deref().is_none_or(|f| f == "inet");
        let public_ip = s
            .public_ips
            .iter()
            .filter(is_v4)
            .chain(s.public_ip.iter().filter(is_v4))
            .find_map(|ip| ip.address.clone());
        ScalewayServer {
            id: s.id,
            name: s.name,
            state: s.state,
            public_ip,
            tags: s.tags,
            zone: s.zone,
            commercial_type: s.commercial_type,
            project: s.project,
            created: s.creation_date,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("3f2c1b9e-0d4a-4c7b-9a61-2b8e5f0c7d13"));
        assert!(is_uuid("3F2C1B9E-0D4A-4C7B-9A61-2B8E5F0C7D13"));
        for bad in [
            "",
            "3f2c1b9e0d4a4c7b9a612b8e5f0c7d13",
            "3f2c1b9e-0d4a-4c7b-9a61-2b8e5f0c7d1",
            "3f2c1b9e-0d4a-4c7b-9a61-2b8e5f0c7d13-",
            "3f2c1b9g-0d4a-4c7b-9a61-2b8e5f0c7d13",
            "../../x-0d4a-4c7b-9a61-2b8e5f0c7d13",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
    }

    #[test]
    fn zones() {
        for ok in ["fr-par-1", "fr-par-2", "nl-ams-1", "pl-waw-3"] {
            assert!(check_zone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "fr-par",
            "FR-PAR-1",
            "fr-par-1/..",
            "fr/par-1",
            "fr-par-123",
        ] {
            assert_eq!(
                check_zone(bad).unwrap_err().kind,
                ProviderErrorKind::InvalidConfig,
                "{bad}"
            );
        }
    }

    #[test]
    fn type_beats_status() {
        assert_eq!(
            classify_scaleway(403, "quotas_exceeded"),
            ProviderErrorKind::Quota
        );
        assert_eq!(
            classify_scaleway(403, "permissions_denied"),
            ProviderErrorKind::Auth
        );
        assert_eq!(
            classify_scaleway(409, "out_of_stock"),
            ProviderErrorKind::Capacity
        );
        assert_eq!(
            classify_scaleway(409, "transient_state"),
            ProviderErrorKind::Transient
        );
        assert_eq!(
            classify_scaleway(400, "invalid_arguments"),
            ProviderErrorKind::InvalidConfig
        );
        assert_eq!(
            classify_scaleway(429, "http_429"),
            ProviderErrorKind::RateLimited
        );
        assert_eq!(
            classify_scaleway(503, "whatever"),
            ProviderErrorKind::Transient
        );
        assert_eq!(classify_scaleway(403, "locked"), ProviderErrorKind::Unknown);
    }

    #[test]
    fn routed_ip_preferred_and_ipv6_skipped() {
        let raw = r#"{"server":{"id":"3f2c1b9e-0d4a-4c7b-9a61-2b8e5f0c7d13","name":"n",
            "state":"running","tags":["a"],"zone":"fr-par-1","commercial_type":"DEV1-S",
            "public_ip":{"address":"51.15.0.9","family":"inet"},
            "public_ips":[{"address":"2001:db8::1","family":"inet6"},
                          {"address":"51.15.0.10","family":"inet"}],
            "volumes":{"0":{"id":"3f2c1b9e-0d4a-4c7b-9a61-2b8e5f0c7d14","volume_type":"l_ssd"}}}}"#;
        let parsed: ServerEnvelope = serde_json::from_str(raw).unwrap();
        assert_eq!(parsed.server.volumes["0"].volume_type, "l_ssd");
        let server = ScalewayServer::from(parsed.server);
        assert_eq!(server.public_ip.as_deref(), Some("51.15.0.10"));

        let raw = r#"{"server":{"id":"3f2c1b9e-0d4a-4c7b-9a61-2b8e5f0c7d13","state":"stopped",
            "public_ip":null}}"#;
        let parsed: ServerEnvelope = serde_json::from_str(raw).unwrap();
        assert_eq!(ScalewayServer::from(parsed.server).public_ip, None);
    }

    #[test]
    fn error_details_are_summarised() {
        let raw = r#"{"type":"invalid_arguments","message":"invalid argument(s)",
            "details":[{"argument_name":"commercial_type","reason":"constraint",
                        "help_message":"unknown commercial type"}]}"#;
        let err: WireError = serde_json::from_str(raw).unwrap();
        assert_eq!(
            err.describe(),
            "invalid argument(s): commercial_type: unknown commercial type"
        );
        let raw = r#"{"type":"quotas_exceeded","message":"quota(s) exceeded for this resource",
            "details":[{"resource":"instances_dev1_s","quota":2,"current":2}]}"#;
        let err: WireError = serde_json::from_str(raw).unwrap();
        assert_eq!(
            err.describe(),
            "quota(s) exceeded for this resource: instances_dev1_s: 2 of 2 used"
        );
    }

    #[test]
    fn odd_details_do_not_hide_the_type() {
        let raw = r#"{"type":"precondition_failed","message":"nope","details":{"x":1}}"#;
        let err: WireError = serde_json::from_str(raw).unwrap();
        assert_eq!(err.error_type.as_deref(), Some("precondition_failed"));
        assert_eq!(err.describe(), "nope");
    }

    #[test]
    fn secret_shape() {
        let key = "3f2c1b9e-0d4a-4c7b-9a61-2b8e5f0c7d13";
        let project = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
        assert!(check_secret_shape(key, project).is_ok());

        let err = check_secret_shape("SCWABCDEFGHIJKLMNOPQ", project).unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::InvalidConfig);
        assert_eq!(err.code, "invalid_secret_key");
        assert!(err.message.contains("access key"), "{}", err.message);
        assert!(!err.message.contains("SCWABCDEFGHIJKLMNOPQ"));

        let err = check_secret_shape("not-a-uuid-secret", project).unwrap_err();
        assert!(
            !err.message.contains("not-a-uuid-secret"),
            "{}",
            err.message
        );

        let err = check_secret_shape(key, "my-project").unwrap_err();
        assert_eq!(err.code, "invalid_project_id");
        assert!(err.message.contains("my-project"));
        assert!(!err.message.contains(key));
    }
}
