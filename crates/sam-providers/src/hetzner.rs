//! Hetzner Cloud API client (the subset SAM needs to run nodes).
//!
//! Everything goes through the [`HttpClient`] port, so this file is plain
//! request building and response parsing. Hetzner's error envelope
//! `{"error":{"code","message","details"}}` is turned into a classified
//! [`ProviderError`]; the token is scrubbed from anything that leaves here.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{
    ProviderError, ProviderErrorKind, classify, expect_success, json_body, parse_json,
    response_error, send_json_api,
};
use crate::http::{HttpClient, HttpResponse, Method, percent_encode, trim_base_url};

/// Page size for list calls; 50 is Hetzner's maximum.
const PER_PAGE: u32 = 50;
/// Upper bound on pages followed, so a misbehaving `next_page` cannot loop us forever.
const MAX_PAGES: u32 = 1_000;

/// Input for `POST /servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateServer {
    pub name: String,
    /// Hetzner server type name, e.g. `cx23`.
    pub server_type: String,
    /// Location name, e.g. `fsn1`.
    pub location: String,
    /// Image name, e.g. `ubuntu-24.04`.
    pub image: String,
    /// cloud-init document.
    pub user_data: String,
    pub labels: BTreeMap<String, String>,
}

/// A server as SAM needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Hetzner ids are integers; kept as text so the rest of SAM treats all
    /// provider ids alike.
    pub id: String,
    pub name: String,
    /// Hetzner's status (`initializing`, `starting`, `running`, `off`, `deleting`, ...).
    pub status: String,
    pub ipv4: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// ISO 8601 creation time as Hetzner sent it.
    pub created: String,
}

/// Result of a delete. Deleting is idempotent: a server that no longer
/// exists is the outcome the caller wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    AlreadyGone,
}

/// A power action the provider accepted. Both clients return it, so callers
/// handle one shape.
///
/// Hetzner: its action (`command` `stop_server` or `start_server`; `status`
/// `running`, `success` or `error`). Scaleway: its task (`command` is the
/// task description, `server_poweroff` or `server_poweron`; `status`
/// `pending`, `started`, `success` or `failure`). Either way the server's
/// own status, from `get_server`, is what tells when the server got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerAction {
    pub id: String,
    pub command: String,
    pub status: String,
}

/// An entry of `GET /server_types`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTypeInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub cores: u32,
    pub memory_gb: f64,
    pub disk_gb: u64,
    /// `x86` or `arm` as Hetzner spells it.
    pub architecture: String,
    pub deprecated: bool,
}

/// An entry of `GET /locations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub country: String,
    pub city: String,
    pub network_zone: String,
}

/// A Hetzner Cloud API client bound to one project token.
pub struct HetznerClient<H> {
    http: H,
    base_url: String,
    token: String,
}

/// Hand-written: the derived form would print the token.
impl<H> fmt::Debug for HetznerClient<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HetznerClient")
            .field("base_url", &self.base_url)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl<H: HttpClient> HetznerClient<H> {
    /// `base_url` is the API root including the version, e.g.
    /// `https://api.hetzner.cloud/v1`; a trailing slash is tolerated.
    pub fn new(http: H, base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            http,
            base_url: trim_base_url(base_url.into()),
            token: token.into(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Creates a server and starts it. Returns as soon as Hetzner accepted
    /// the request; the server is usually still `initializing`.
    pub async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError> {
        let body = CreateServerBody {
            name: &req.name,
            server_type: &req.server_type,
            location: &req.location,
            image: &req.image,
            user_data: &req.user_data,
            labels: &req.labels,
            start_after_create: true,
        };
        let body = json_body(&body)?;
        let resp = self.send(Method::Post, "/servers", Some(body)).await?;
        let resp = self.expect_success(resp)?;
        let parsed: ServerEnvelope = parse_json(&resp)?;
        Ok(parsed.server.into())
    }

    /// Looks a server up; `None` when Hetzner does not know the id.
    pub async fn get_server(&self, id: &str) -> Result<Option<Server>, ProviderError> {
        let id = check_id(id)?;
        let resp = self
            .send(Method::Get, &format!("/servers/{id}"), None)
            .await?;
        if resp.status == 404 {
            return Ok(None);
        }
        let resp = self.expect_success(resp)?;
        let parsed: ServerEnvelope = parse_json(&resp)?;
        Ok(Some(parsed.server.into()))
    }

    /// Deletes a server; a 404 counts as success so retries are harmless.
    pub async fn delete_server(&self, id: &str) -> Result<DeleteOutcome, ProviderError> {
        let id = check_id(id)?;
        let resp = self
            .send(Method::Delete, &format!("/servers/{id}"), None)
            .await?;
        if resp.status == 404 {
            return Ok(DeleteOutcome::AlreadyGone);
        }
        self.expect_success(resp)?;
        Ok(DeleteOutcome::Deleted)
    }

    /// Cuts the server's power (Hetzner's `poweroff`: no ACPI shutdown, like
    /// pulling the plug). Returns once Hetzner accepted it; the server then
    /// goes `stopping`, then `off` ([`HetznerClient::get_server`] tells when).
    ///
    /// A server that is already off is no error: Hetzner answers with an
    /// action that has already succeeded. An unknown id is a
    /// [`ProviderErrorKind::NotFound`] error.
    pub async fn power_off(&self, id: &str) -> Result<PowerAction, ProviderError> {
        self.power_action(id, "poweroff").await
    }

    /// Powers the server on; it then goes `starting`, then `running`.
    ///
    /// A running server is no error (the action has already succeeded).
    /// While a power-off is still under way Hetzner refuses with 423
    /// `locked`, a [`ProviderErrorKind::Transient`] error: retry once the
    /// server is `off`. An unknown id is a [`ProviderErrorKind::NotFound`]
    /// error.
    pub async fn power_on(&self, id: &str) -> Result<PowerAction, ProviderError> {
        self.power_action(id, "poweron").await
    }

    /// `POST /servers/{id}/actions/{action}`, which takes no body.
    async fn power_action(&self, id: &str, action: &str) -> Result<PowerAction, ProviderError> {
        let id = check_id(id)?;
        let resp = self
            .send(
                Method::Post,
                &format!("/servers/{id}/actions/{action}"),
                None,
            )
            .await?;
        let resp = self.expect_success(resp)?;
        let parsed: ActionEnvelope = parse_json(&resp)?;
        Ok(parsed.action.into())
    }

    /// All servers carrying every given label (`key=value`), across all pages.
    /// An empty selector lists every server in the project.
    pub async fn list_servers(
        &self,
        label_selector: &BTreeMap<String, String>,
    ) -> Result<Vec<Server>, ProviderError> {
        let selector = label_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let query = if selector.is_empty() {
            String::new()
        } else {
            format!("label_selector={}", percent_encode(&selector))
        };
        let pages: Vec<ServersPage> = self.get_all_pages("/servers", &query).await?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.servers)
            .map(Server::from)
            .collect())
    }

    /// Checks that the token is accepted, with the cheapest authenticated
    /// read there is (one server at most).
    pub async fn validate_token(&self) -> Result<(), ProviderError> {
        let resp = self.send(Method::Get, "/servers?per_page=1", None).await?;
        self.expect_success(resp)?;
        Ok(())
    }

    pub async fn server_types(&self) -> Result<Vec<ServerTypeInfo>, ProviderError> {
        let pages: Vec<ServerTypesPage> = self.get_all_pages("/server_types", "").await?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.server_types)
            .map(ServerTypeInfo::from)
            .collect())
    }

    pub async fn locations(&self) -> Result<Vec<LocationInfo>, ProviderError> {
        let pages: Vec<LocationsPage> = self.get_all_pages("/locations", "").await?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.locations)
            .map(LocationInfo::from)
            .collect())
    }

    /// Follows `meta.pagination.next_page` until it runs out.
    async fn get_all_pages<T>(&self, path: &str, query: &str) -> Result<Vec<T>, ProviderError>
    where
        T: for<'de> Deserialize<'de> + Paged,
    {
        let mut pages = Vec::new();
        let mut page = 1_u32;
        for _ in 0..MAX_PAGES {
            let sep = if query.is_empty() { "" } else { "&" };
            let url = format!("{path}?{query}{sep}page={page}&per_page={PER_PAGE}");
            let resp = self.send(Method::Get, &url, None).await?;
            let resp = self.expect_success(resp)?;
            let parsed: T = parse_json(&resp)?;
            let next = parsed.next_page();
            pages.push(parsed);
            match next {
                // Only move forward: a provider echoing the same page would
                // otherwise be fetched until MAX_PAGES.
                Some(next) if next > page => page = next,
                _ => return Ok(pages),
            }
        }
        Err(ProviderError::new(
            ProviderErrorKind::Unknown,
            None,
            "invalid_response",
            format!("{path}: more than {MAX_PAGES} pages"),
        ))
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, ProviderError> {
        send_json_api(
            &self.http,
            method,
            format!("{}{path_and_query}", self.base_url),
            ("Authorization", format!("Bearer {}", self.token)),
            body.map(|bytes| ("application/json", bytes)),
            &self.token,
        )
        .await
    }

    /// Passes 2xx through and turns anything else into a classified error.
    fn expect_success(&self, resp: HttpResponse) -> Result<HttpResponse, ProviderError> {
        expect_success(resp, |resp| {
            let parsed = serde_json::from_slice::<ErrorEnvelope>(&resp.body)
                .ok()
                .map(|ErrorEnvelope { error }| (error.code, error.message));
            response_error(resp, parsed, classify, &self.token)
        })
    }
}

/// Hetzner server ids are decimal integers; checking that also keeps a
/// hostile id from steering the request path (`1/../../`).
fn check_id(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(ProviderError::new(
            ProviderErrorKind::InvalidConfig,
            None,
            "invalid_server_id",
            format!(
                "'{}' is not a Hetzner server id",
                id.chars().take(40).collect::<String>()
            ),
        ))
    }
}

// ---- Wire shapes (private: callers only see the types above) ----

#[derive(Serialize)]
struct CreateServerBody<'a> {
    name: &'a str,
    server_type: &'a str,
    location: &'a str,
    image: &'a str,
    user_data: &'a str,
    labels: &'a BTreeMap<String, String>,
    start_after_create: bool,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

/// Ids arrive as JSON numbers from Hetzner; strings are accepted too so a
/// stand-in that sends them still works.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireId {
    Number(u64),
    Text(String),
}

impl From<WireId> for String {
    fn from(id: WireId) -> Self {
        match id {
            WireId::Number(n) => n.to_string(),
            WireId::Text(s) => s,
        }
    }
}

#[derive(Deserialize)]
struct ServerEnvelope {
    server: WireServer,
}

#[derive(Deserialize)]
struct WireServer {
    id: WireId,
    name: String,
    status: String,
    #[serde(default)]
    created: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    public_net: Option<WirePublicNet>,
}

#[derive(Deserialize)]
struct ActionEnvelope {
    action: WireAction,
}

#[derive(Deserialize)]
struct WireAction {
    id: WireId,
    command: String,
    status: String,
}

impl From<WireAction> for PowerAction {
    fn from(a: WireAction) -> Self {
        PowerAction {
            id: a.id.into(),
            command: a.command,
            status: a.status,
        }
    }
}

#[derive(Deserialize)]
struct WirePublicNet {
    #[serde(default)]
    ipv4: Option<WireIp>,
}

#[derive(Deserialize)]
struct WireIp {
    ip: String,
}

impl From<WireServer> for Server {
    fn from(s: WireServer) -> Self {
        Server {
            id: s.id.into(),
            name: s.name,
            status: s.status,
            ipv4: s.public_net.and_then(|n| n.ipv4).map(|ip| ip.ip),
            labels: s.labels,
            created: s.created,
        }
    }
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    next_page: Option<u32>,
}

trait Paged {
    fn meta(&self) -> Option<&Meta>;
    fn next_page(&self) -> Option<u32> {
        self.meta()?.pagination.as_ref()?.next_page
    }
}

#[derive(Deserialize)]
struct ServersPage {
    servers: Vec<WireServer>,
    #[serde(default)]
    meta: Option<Meta>,
}

impl Paged for ServersPage {
    fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }
}

#[derive(Deserialize)]
struct WireServerType {
    id: WireId,
    name: String,
    #[serde(default)]
    description: String,
    cores: u32,
    memory: f64,
    disk: u64,
    #[serde(default)]
    architecture: String,
    /// Older field: a plain flag.
    #[serde(default)]
    deprecated: Option<bool>,
    /// Newer field: an object (announcement dates) when deprecated, else null.
    #[serde(default)]
    deprecation: Option<serde_json::Value>,
}

impl From<WireServerType> for ServerTypeInfo {
    fn from(t: WireServerType) -> Self {
        let deprecated =
            t.deprecated.unwrap_or(false) || t.deprecation.is_some_and(|d| !d.is_null());
        ServerTypeInfo {
            id: t.id.into(),
            name: t.name,
            description: t.description,
            cores: t.cores,
            memory_gb: t.memory,
            disk_gb: t.disk,
            architecture: t.architecture,
            deprecated,
        }
    }
}

#[derive(Deserialize)]
struct ServerTypesPage {
    server_types: Vec<WireServerType>,
    #[serde(default)]
    meta: Option<Meta>,
}

impl Paged for ServerTypesPage {
    fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }
}

#[derive(Deserialize)]
struct WireLocation {
    id: WireId,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    network_zone: String,
}

impl From<WireLocation> for LocationInfo {
    fn from(l: WireLocation) -> Self {
        LocationInfo {
            id: l.id.into(),
            name: l.name,
            description: l.description,
            country: l.country,
            city: l.city,
            network_zone: l.network_zone,
        }
    }
}

#[derive(Deserialize)]
struct LocationsPage {
    locations: Vec<WireLocation>,
    #[serde(default)]
    meta: Option<Meta>,
}

impl Paged for LocationsPage {
    fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_numeric() {
        assert!(check_id("42").is_ok());
        for bad in ["", "1/../2", "abc", "1?x=2", &"9".repeat(21)] {
            let err = check_id(bad).unwrap_err();
            assert_eq!(err.kind, ProviderErrorKind::InvalidConfig, "{bad}");
        }
    }

    #[test]
    fn server_without_public_ipv4_parses() {
        let raw = r#"{"server":{"id":7,"name":"n","status":"initializing",
            "created":"2026-01-01T00:00:00+00:00","labels":{},
            "public_net":{"ipv4":null,"ipv6":null}}}"#;
        let parsed: ServerEnvelope = serde_json::from_str(raw).unwrap();
        let server = Server::from(parsed.server);
        assert_eq!(server.id, "7");
        assert_eq!(server.ipv4, None);
    }

    #[test]
    fn deprecation_object_marks_server_type_deprecated() {
        let raw = r#"{"id":1,"name":"cx11","cores":1,"memory":2.0,"disk":20,
            "architecture":"x86","deprecation":{"announced":"2024-01-01T00:00:00+00:00"}}"#;
        let t: WireServerType = serde_json::from_str(raw).unwrap();
        assert!(ServerTypeInfo::from(t).deprecated);
    }
}
