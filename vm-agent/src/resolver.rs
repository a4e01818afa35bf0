//! Name resolution for the agent's outgoing requests.
//!
//! RFC 6761 reserves `localhost` and every name under `.localhost` for the
//! loopback interface, but glibc only resolves the bare name, so the
//! development control plane at `api.localhost` would be unreachable. This
//! resolver answers those names itself and hands every other name to the
//! system resolver.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The loopback address for `localhost` and `*.localhost` (any case, with or
/// without the trailing root dot); `None` for every other name.
pub fn loopback_addr(host: &str) -> Option<IpAddr> {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let is_local = host == "localhost"
        || host
            .strip_suffix(".localhost")
            .is_some_and(|label| !label.is_empty() && !label.ends_with('.'));
    // IPv4 only: the local control plane and stand-ins listen on 127.0.0.1,
    // and not every host has `::1` configured.
    is_local.then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A reqwest resolver applying [`loopback_addr`] before the system resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalhostResolver;

impl Resolve for LocalhostResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if let Some(ip) = loopback_addr(&host) {
                // Port 0 means "the URL's port"; reqwest fills it in.
                let addrs: Addrs = Box::new(std::iter::once(SocketAddr::new(ip, 0)));
                return Ok(addrs);
            }
            // Same system lookup reqwest does by default (getaddrinfo on the
            // blocking pool).
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));

    #[test]
    fn localhost_names_map_to_loopback() {
        for name in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "api.localhost",
            "API.LocalHost",
            "api.localhost.",
            "a.b.localhost",
        ] {
            assert_eq!(loopback_addr(name), LOOPBACK, "{name}");
        }
    }

    #[test]
    fn other_names_are_left_alone() {
        for name in [
            "example.com",
            "localhost.example.com",
            "notlocalhost",
            "api-localhost",
            ".localhost",
            "a..localhost",
            "localhostx",
            "",
        ] {
            assert_eq!(loopback_addr(name), None, "{name}");
        }
    }

    #[tokio::test]
    async fn resolver_answers_localhost_names_without_the_system() {
        let addrs: Vec<SocketAddr> = LocalhostResolver
            .resolve(Name::from_str("api.localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(
            addrs,
            vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)]
        );
    }

    #[tokio::test]
    async fn resolver_delegates_other_names() {
        // An IP literal goes through the system path without needing DNS.
        let addrs: Vec<SocketAddr> = LocalhostResolver
            .resolve(Name::from_str("127.0.0.2").unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(addrs, vec!["127.0.0.2:0".parse().unwrap()]);
    }
}
