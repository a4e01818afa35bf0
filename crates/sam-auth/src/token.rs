//! Issuing and verifying scoped tokens.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use ed25519_compact::PublicKey;
use jwt_compact::alg::Ed25519;
use jwt_compact::{
    AlgorithmExt as _, Claims, Header, TimeOptions, UntrustedToken, ValidationError,
};
use serde::{Deserialize, Serialize};

use crate::keys::{JwkSet, SigningKey};

/// Clock skew tolerated between the control plane and a node.
const LEEWAY_SECS: i64 = 30;

/// What a token may be used for. Each audience is accepted by exactly one
/// family of endpoints, so a token leaked from one channel opens no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// vm-agent → API calls about its own node (`/api/nodes/{id}/ready`, heartbeats).
    NodeCallback,
    /// API → vm-agent management calls.
    NodeManagement,
    /// vm-agent → API calls about one workspace (ready, failed, git
    /// credentials, boot log); scoped to that workspace.
    WorkspaceCallback,
    /// A browser's short-lived ticket into one workspace (`ws-<id>.`),
    /// which the vm-agent exchanges for its own cookie.
    Terminal,
    /// A browser's short-lived ticket to one forwarded port of one
    /// workspace (`ws-<id>--<port>.`).
    PortAccess,
    /// The Worker's proxy vouching, on one request, for a port of a
    /// workspace whose ports are public (`X-Sam-Port-Access`). Its own
    /// audience, so a browser's single-use ticket can never be replayed
    /// as one.
    PublicPort,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::NodeCallback => "node-callback",
            Audience::NodeManagement => "node-management",
            Audience::WorkspaceCallback => "workspace-callback",
            Audience::Terminal => "terminal",
            Audience::PortAccess => "port-access",
            Audience::PublicPort => "public-port",
        }
    }
}

/// What to put into a new token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub audience: Audience,
    /// The node the token is scoped to.
    pub node_id: String,
    /// The workspace (on that node) it is further scoped to, if any.
    pub workspace_id: Option<String>,
    /// The forwarded port it is scoped to (port-access tokens).
    pub port: Option<u16>,
    /// Lifetime in seconds.
    pub ttl_secs: i64,
}

impl Grant {
    /// A token about a whole node.
    pub fn node(audience: Audience, node_id: &str, ttl_secs: i64) -> Self {
        Self {
            audience,
            node_id: node_id.to_owned(),
            workspace_id: None,
            port: None,
            ttl_secs,
        }
    }

    /// A token about one workspace on a node.
    pub fn workspace(audience: Audience, node_id: &str, workspace_id: &str, ttl_secs: i64) -> Self {
        Self {
            workspace_id: Some(workspace_id.to_owned()),
            ..Self::node(audience, node_id, ttl_secs)
        }
    }
}

/// Claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub iss: String,
    pub aud: String,
    /// Subject: `node:<id>` or `workspace:<id>`.
    pub sub: String,
    /// Scope kind: `node` or `workspace`.
    pub scope: String,
    /// The node this token is scoped to.
    pub node: String,
    /// The workspace this token is scoped to, for workspace scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The forwarded port this token is scoped to, for port-access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Expiry in Unix milliseconds; filled in by [`Verifier::verify`] from
    /// the standard `exp` claim (not a claim of its own).
    #[serde(skip)]
    pub expires_at_ms: i64,
}

/// Why a token was refused. Each variant maps to a stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token uses an unsupported algorithm")]
    WrongAlgorithm,
    #[error("token was signed by an unknown key")]
    UnknownKey { kid: Option<String> },
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not for this audience")]
    WrongAudience,
    #[error("token was not issued by this control plane")]
    WrongIssuer,
}

impl TokenError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed | TokenError::WrongAlgorithm => "token_malformed",
            TokenError::UnknownKey { .. } => "token_unknown_key",
            TokenError::BadSignature => "token_invalid_signature",
            TokenError::Expired => "token_expired",
            TokenError::WrongAudience => "token_wrong_audience",
            TokenError::WrongIssuer => "token_wrong_issuer",
        }
    }
}

fn at(now_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(now_ms).unwrap_or_default()
}

impl SigningKey {
    /// Signs a token for `grant`, issued at `now_ms`, by `issuer`.
    pub fn issue(&self, issuer: &str, grant: &Grant, now_ms: i64) -> String {
        let time = TimeOptions::new(Duration::seconds(LEEWAY_SECS), move || at(now_ms));
        let claims = Claims::new(TokenClaims {
            iss: issuer.to_owned(),
            aud: grant.audience.as_str().to_owned(),
            sub: match &grant.workspace_id {
                Some(workspace) => format!("workspace:{workspace}"),
                None => format!("node:{}", grant.node_id),
            },
            scope: if grant.workspace_id.is_some() {
                "workspace"
            } else {
                "node"
            }
            .to_owned(),
            node: grant.node_id.clone(),
            workspace: grant.workspace_id.clone(),
            port: grant.port,
            expires_at_ms: 0,
        })
        .set_duration_and_issuance(&time, Duration::seconds(grant.ttl_secs));
        let header = Header::empty().with_key_id(self.kid.clone());
        // Ed25519 signing cannot fail for a well-formed key; the only error
        // jwt-compact reports here is claims serialisation, which our plain
        // struct cannot trigger.
        Ed25519
            .token(&header, &claims, &self.secret)
            .unwrap_or_default()
    }
}

/// Verifies tokens against a key set.
#[derive(Debug, Clone)]
pub struct Verifier {
    issuer: String,
    keys: HashMap<String, PublicKey>,
}

impl Verifier {
    /// A verifier trusting every usable key of `jwks`; unusable keys are skipped.
    pub fn new(issuer: &str, jwks: &JwkSet) -> Self {
        let keys = jwks
            .keys
            .iter()
            .filter_map(|jwk| jwk.public_key().ok().map(|k| (jwk.kid.clone(), k)))
            .collect();
        Self {
            issuer: issuer.to_owned(),
            keys,
        }
    }

    /// A verifier for tokens signed by `key` (used by the issuer itself).
    pub fn for_key(issuer: &str, key: &SigningKey) -> Self {
        Self::new(issuer, &key.jwks())
    }

    /// Whether the key set has a key with this id.
    pub fn knows_kid(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The key id a token claims to be signed with, if it parses at all.
    pub fn kid_of(token: &str) -> Option<String> {
        UntrustedToken::new(token).ok()?.header().key_id.clone()
    }

    /// Checks signature, issuer, audience and expiry at `now_ms`.
    pub fn verify(
        &self,
        token: &str,
        audience: Audience,
        now_ms: i64,
    ) -> Result<TokenClaims, TokenError> {
        let untrusted = UntrustedToken::new(token).map_err(|_| TokenError::Malformed)?;
        if untrusted.algorithm() != "EdDSA" {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = untrusted.header().key_id.clone();
        let key = kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(TokenError::UnknownKey { kid: kid.clone() })?;
        let verified = Ed25519
            .validator::<TokenClaims>(key)
            .validate(&untrusted)
            .map_err(|err| match err {
                ValidationError::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed,
            })?;
        let claims = verified.claims();
        let time = TimeOptions::new(Duration::seconds(LEEWAY_SECS), move || at(now_ms));
        claims.validate_expiration(&time).map_err(|err| match err {
            ValidationError::Expired => TokenError::Expired,
            _ => TokenError::Malformed,
        })?;
        let custom = &claims.custom;
        if custom.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if custom.aud != audience.as_str() {
            return Err(TokenError::WrongAudience);
        }
        let mut verified = custom.clone();
        verified.expires_at_ms = claims.expiration.map_or(0, |exp| exp.timestamp_millis());
        Ok(verified)
    }

    /// Authenticates a vm-agent's callback: a Bearer node-callback token
    /// that verifies and is scoped to `path_node_id`.
    pub fn authorize_node_callback(
        &self,
        authorization: Option<&str>,
        path_node_id: &str,
        now_ms: i64,
    ) -> Result<TokenClaims, CallbackAuthError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(CallbackAuthError::Missing)?;
        let claims = self
            .verify(token, Audience::NodeCallback, now_ms)
            .map_err(CallbackAuthError::Token)?;
        if claims.node != path_node_id || claims.workspace.is_some() {
            return Err(CallbackAuthError::ScopeMismatch);
        }
        Ok(claims)
    }

    /// Authenticates a vm-agent's call about a workspace: a Bearer
    /// workspace-callback token that verifies and is scoped to
    /// `path_workspace_id`. A node's token opens no workspace endpoint.
    pub fn authorize_workspace_callback(
        &self,
        authorization: Option<&str>,
        path_workspace_id: &str,
        now_ms: i64,
    ) -> Result<TokenClaims, CallbackAuthError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(CallbackAuthError::Missing)?;
        let claims = self
            .verify(token, Audience::WorkspaceCallback, now_ms)
            .map_err(CallbackAuthError::Token)?;
        if claims.workspace.as_deref() != Some(path_workspace_id) {
            return Err(CallbackAuthError::ScopeMismatch);
        }
        Ok(claims)
    }
}

/// Why a node callback was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackAuthError {
    #[error("send the node callback token as a Bearer token")]
    Missing,
    #[error(transparent)]
    Token(TokenError),
    #[error("this token is for a different node")]
    ScopeMismatch,
}

impl CallbackAuthError {
    /// HTTP status: 401 when the caller is not authenticated, 403 when it
    /// is, but for another node.
    pub fn status(&self) -> u16 {
        match self {
            CallbackAuthError::Missing | CallbackAuthError::Token(_) => 401,
            CallbackAuthError::ScopeMismatch => 403,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            CallbackAuthError::Missing => "token_missing",
            CallbackAuthError::Token(e) => e.code(),
            CallbackAuthError::ScopeMismatch => "token_scope_mismatch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "http://api.localhost:8787";
    const NOW: i64 = 1_800_000_000_000;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_seed([byte; 32])
    }

    fn grant(audience: Audience) -> Grant {
        Grant {
            audience,
            node_id: "01HZX3Y0000000000000000000".to_owned(),
            workspace_id: None,
            port: None,
            ttl_secs: 3600,
        }
    }

    #[test]
    fn issued_token_verifies_with_scope() {
        let k = key(1);
        let token = k.issue(ISSUER, &grant(Audience::NodeCallback), NOW);
        let claims = Verifier::for_key(ISSUER, &k)
            .verify(&token, Audience::NodeCallback, NOW + 1000)
            .unwrap();
        assert_eq!(claims.node, "01HZX3Y0000000000000000000");
        assert_eq!(claims.scope, "node");
        assert_eq!(Verifier::kid_of(&token).as_deref(), Some(k.kid()));
    }

    #[test]
    fn each_kind_of_bad_token_has_its_own_error() {
        let k = key(1);
        let v = Verifier::for_key(ISSUER, &k);
        let token = k.issue(ISSUER, &grant(Audience::NodeCallback), NOW);

        let expired = v.verify(&token, Audience::NodeCallback, NOW + 3_700_000);
        assert_eq!(expired, Err(TokenError::Expired));

        let wrong_aud = v.verify(&token, Audience::NodeManagement, NOW);
        assert_eq!(wrong_aud, Err(TokenError::WrongAudience));

        let other_issuer = Verifier::for_key("http://api.evil", &k);
        assert_eq!(
            other_issuer.verify(&token, Audience::NodeCallback, NOW),
            Err(TokenError::WrongIssuer)
        );

        // Same kid claimed, different key: a forgery.
        let forged = {
            let mut t = key(2).issue(ISSUER, &grant(Audience::NodeCallback), NOW);
            let (head, _) = token.split_once('.').unwrap();
            let rest = t.split_off(t.find('.').unwrap());
            format!("{head}{rest}")
        };
        assert_eq!(
            v.verify(&forged, Audience::NodeCallback, NOW),
            Err(TokenError::BadSignature)
        );

        let other_key = key(3).issue(ISSUER, &grant(Audience::NodeCallback), NOW);
        assert!(matches!(
            v.verify(&other_key, Audience::NodeCallback, NOW),
            Err(TokenError::UnknownKey { .. })
        ));

        for garbage in ["", "a.b", "a.b.c", "not a token at all"] {
            assert_eq!(
                v.verify(garbage, Audience::NodeCallback, NOW),
                Err(TokenError::Malformed),
                "{garbage}"
            );
        }
    }

    #[test]
    fn tampered_claims_fail_signature() {
        let k = key(1);
        let token = k.issue(ISSUER, &grant(Audience::NodeCallback), NOW);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let other = k.issue(
            ISSUER,
            &Grant {
                node_id: "01HZX3Y9999999999999999999".to_owned(),
                ..grant(Audience::NodeCallback)
            },
            NOW,
        );
        parts[1] = other.split('.').nth(1).unwrap().to_owned();
        assert_eq!(
            Verifier::for_key(ISSUER, &k).verify(&parts.join("."), Audience::NodeCallback, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn seeds_round_trip_through_base64_and_reject_bad_input() {
        let seed = [9u8; 32];
        let encoded = SigningKey::encode_seed(seed);
        let k = SigningKey::from_seed_base64(&encoded).unwrap();
        assert_eq!(k.kid(), SigningKey::from_seed(seed).kid());
        assert_eq!(
            SigningKey::from_seed_base64("c2hvcnQ").unwrap_err(),
            crate::KeyError::BadLength(5)
        );
        assert_eq!(
            SigningKey::from_seed_base64("!!!").unwrap_err(),
            crate::KeyError::NotBase64
        );
        assert!(!format!("{k:?}").contains(&encoded));
    }

    #[test]
    fn verified_claims_carry_the_expiry() {
        let k = key(1);
        let token = k.issue(ISSUER, &grant(Audience::NodeCallback), NOW);
        let claims = Verifier::for_key(ISSUER, &k)
            .verify(&token, Audience::NodeCallback, NOW)
            .unwrap();
        assert_eq!(claims.expires_at_ms, NOW + 3_600_000);
    }

    #[test]
    fn node_callbacks_need_a_bearer_token_for_the_path_node() {
        let k = key(1);
        let v = Verifier::for_key(ISSUER, &k);
        let token = k.issue(ISSUER, &grant(Audience::NodeCallback), NOW);
        let node = "01HZX3Y0000000000000000000";
        let bearer = format!("Bearer {token}");
        assert_eq!(
            v.authorize_node_callback(Some(&bearer), node, NOW)
                .unwrap()
                .node,
            node
        );
        let cases = [
            (None, node, 401, "token_missing"),
            (Some("Basic abc"), node, 401, "token_missing"),
            (Some("Bearer "), node, 401, "token_missing"),
            (Some("Bearer x.y.z"), node, 401, "token_malformed"),
            (
                Some(bearer.as_str()),
                "01HZX3Y9999999999999999999",
                403,
                "token_scope_mismatch",
            ),
        ];
        for (header, path, status, code) in cases {
            let err = v.authorize_node_callback(header, path, NOW).unwrap_err();
            assert_eq!((err.status(), err.code()), (status, code), "{header:?}");
        }
    }

    #[test]
    fn jwks_round_trips_through_json() {
        let k = key(4);
        let json = serde_json::to_string(&k.jwks()).unwrap();
        assert!(json.contains(r#""use":"sig""#));
        let parsed: JwkSet = serde_json::from_str(&json).unwrap();
        let v = Verifier::new(ISSUER, &parsed);
        assert!(v.knows_kid(k.kid()));
        let token = k.issue(ISSUER, &grant(Audience::NodeManagement), NOW);
        assert!(v.verify(&token, Audience::NodeManagement, NOW).is_ok());
    }

    #[test]
    fn workspace_tokens_open_only_their_workspace() {
        let k = key(1);
        let v = Verifier::for_key(ISSUER, &k);
        let node = "01HZX3Y0000000000000000000";
        let ws =
            |audience, id: &str| k.issue(ISSUER, &Grant::workspace(audience, node, id, 600), NOW);
        let header = |t: &str| format!("Bearer {t}");
        let mine = ws(Audience::WorkspaceCallback, "WS1");
        let claims = v
            .authorize_workspace_callback(Some(&header(&mine)), "WS1", NOW)
            .unwrap();
        assert_eq!(
            (
                claims.scope.as_str(),
                claims.sub.as_str(),
                claims.workspace.as_deref()
            ),
            ("workspace", "workspace:WS1", Some("WS1"))
        );
        // Another workspace's path, a node token, a terminal ticket, expiry.
        let refusals = [
            (header(&mine), "WS2", NOW, "token_scope_mismatch"),
            (
                header(&k.issue(ISSUER, &Grant::node(Audience::NodeCallback, node, 600), NOW)),
                "WS1",
                NOW,
                "token_wrong_audience",
            ),
            (
                header(&ws(Audience::Terminal, "WS1")),
                "WS1",
                NOW,
                "token_wrong_audience",
            ),
            (header(&mine), "WS1", NOW + 3_600_000, "token_expired"),
        ];
        for (auth, path, now, code) in refusals {
            let err = v
                .authorize_workspace_callback(Some(&auth), path, now)
                .unwrap_err();
            assert_eq!(err.code(), code, "{path}");
        }
        // A workspace token opens no node endpoint either.
        let err = v
            .authorize_node_callback(Some(&header(&ws(Audience::NodeCallback, "WS1"))), node, NOW)
            .unwrap_err();
        assert_eq!(err.code(), "token_scope_mismatch");
    }
}
