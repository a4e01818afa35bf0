//! Settings read from `[vars]` and secrets that both the API Worker and
//! the Durable Objects need (an alarm acts on a node with the same
//! timings and provider endpoints as a request does).

use sam_control::cloud::ProviderUrls;
use sam_domain::lifecycle::LifecycleConfig;
use worker::Env;

/// A `[vars]` value; empty counts as unset.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A secret (or, locally, a var of that name); empty counts as unset.
pub fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|v| v.to_string())
        .or_else(|| var(env, name))
        .filter(|v| !v.is_empty())
}

/// A numeric var, `default` when unset.
pub fn number<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> Result<T, String> {
    match var(env, name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| format!("configuration variable {name} is not a number")),
    }
}

fn seconds_ms(env: &Env, name: &str, default_secs: i64) -> Result<i64, String> {
    Ok(number::<i64>(env, name, default_secs)?.saturating_mul(1000))
}

/// Node lifecycle timings (`NODE_*_SECS`); each must be positive (a zero
/// backoff or timeout would make alarms ring back to back).
pub fn lifecycle_config(env: &Env) -> Result<LifecycleConfig, String> {
    let defaults = LifecycleConfig::default();
    let config = LifecycleConfig {
        boot_timeout_ms: seconds_ms(env, "NODE_BOOT_TIMEOUT_SECS", 900)?,
        warm_timeout_ms: seconds_ms(env, "NODE_WARM_TIMEOUT_SECS", 30 * 60)?,
        max_lifetime_ms: seconds_ms(env, "NODE_MAX_LIFETIME_SECS", 24 * 3600)?,
        heartbeat_stale_ms: seconds_ms(env, "NODE_HEARTBEAT_STALE_SECS", 180)?,
        destroy_backoff_base_ms: number(
            env,
            "NODE_DESTROY_BACKOFF_BASE_MS",
            defaults.destroy_backoff_base_ms,
        )?,
        destroy_backoff_max_ms: number(
            env,
            "NODE_DESTROY_BACKOFF_MAX_MS",
            defaults.destroy_backoff_max_ms,
        )?,
    };
    let all = [
        ("NODE_BOOT_TIMEOUT_SECS", config.boot_timeout_ms),
        ("NODE_WARM_TIMEOUT_SECS", config.warm_timeout_ms),
        ("NODE_MAX_LIFETIME_SECS", config.max_lifetime_ms),
        ("NODE_HEARTBEAT_STALE_SECS", config.heartbeat_stale_ms),
        (
            "NODE_DESTROY_BACKOFF_BASE_MS",
            config.destroy_backoff_base_ms,
        ),
        ("NODE_DESTROY_BACKOFF_MAX_MS", config.destroy_backoff_max_ms),
    ];
    if let Some((name, _)) = all.iter().find(|(_, value)| *value <= 0) {
        return Err(format!("configuration variable {name} must be positive"));
    }
    Ok(config)
}

/// Cloud provider API roots (the local stand-ins take their place in dev).
pub fn provider_urls(env: &Env) -> ProviderUrls {
    ProviderUrls {
        hetzner: var(env, "HETZNER_API_URL")
            .unwrap_or_else(|| sam_providers::HETZNER_API_BASE.to_owned()),
        scaleway: var(env, "SCALEWAY_API_URL")
            .unwrap_or_else(|| sam_providers::SCALEWAY_API_BASE.to_owned()),
    }
}

/// The vault's credential key ring (secret `CREDENTIAL_KEYS`, `kid:key,...`).
pub fn credential_keys(env: &Env) -> Result<sam_vault::CredentialKeys, String> {
    let raw = secret(env, "CREDENTIAL_KEYS")
        .ok_or_else(|| "the CREDENTIAL_KEYS secret is not set".to_owned())?;
    sam_vault::CredentialKeys::parse(&raw).map_err(|e| format!("CREDENTIAL_KEYS: {e}"))
}
