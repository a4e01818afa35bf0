//! The HTTP clients emulated `curl` uses: one following redirects (`-L`),
//! one not, both resolving `localhost` and `*.localhost` to loopback.
//!
//! Browsers and systemd-resolved treat `*.localhost` as loopback (RFC 6761)
//! but glibc does not, and the local stack serves its API as
//! `api.localhost`; a VM booted by devcloud must reach it like a real VM
//! reaches the public name.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;

#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub follow: reqwest::Client,
    pub no_follow: reqwest::Client,
}

impl Http {
    pub(crate) fn new() -> Result<Self, reqwest::Error> {
        let build = |policy| {
            reqwest::Client::builder()
                .dns_resolver(Arc::new(LocalhostAwareResolver))
                // The developer's proxy variables must not reroute
                // loopback traffic of emulated machines.
                .no_proxy()
                .redirect(policy)
                .user_agent("curl/8.5.0 (devcloud)")
                .build()
        };
        Ok(Http {
            follow: build(Policy::limited(50))?,
            no_follow: build(Policy::none())?,
        })
    }
}

fn is_localhost(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

struct LocalhostAwareResolver;

impl Resolve for LocalhostAwareResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if is_localhost(&host) {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
                return Ok(Box::new(std::iter::once(addr)) as Addrs);
            }
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_names() {
        assert!(is_localhost("localhost"));
        assert!(is_localhost("api.localhost"));
        assert!(is_localhost("API.LocalHost."));
        assert!(!is_localhost("localhost.example.com"));
        assert!(!is_localhost("notlocalhost"));
    }

    #[tokio::test]
    async fn resolves_subdomains_of_localhost_to_loopback() {
        let name: Name = "api.localhost".parse().unwrap();
        let addrs: Vec<_> = LocalhostAwareResolver
            .resolve(name)
            .await
            .unwrap()
            .collect();
        assert_eq!(addrs, [SocketAddr::from((Ipv4Addr::LOCALHOST, 0))]);
    }
}
