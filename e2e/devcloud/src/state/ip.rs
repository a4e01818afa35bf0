//! Loopback addresses standing in for each server's public IPv4.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so every
//! address there is bindable without configuration. Servers get addresses
//! from 127.1.0.1 upwards, skipping host parts 0 and 255 so they look like
//! ordinary unicast addresses, and never 127.0.0.1 (that one is shared with
//! everything else on the machine).

use std::net::Ipv4Addr;

const HOSTS_PER_SUBNET: u32 = 254;

/// The `n`th server address (0-based).
pub(super) fn nth_address(n: u32) -> Ipv4Addr {
    let subnet = n / HOSTS_PER_SUBNET;
    let host = n % HOSTS_PER_SUBNET + 1;
    let second = 1 + subnet / 256;
    let third = subnet % 256;
    // Beyond 127.254.255.254 we would wrap into 127.255/16; 16 million
    // servers is far more than a dev machine will ever create.
    let second = u8::try_from(second.min(254)).unwrap_or(254);
    let third = u8::try_from(third).unwrap_or(0);
    let host = u8::try_from(host).unwrap_or(1);
    Ipv4Addr::new(127, second, third, host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn first_addresses_skip_network_and_broadcast_parts() {
        assert_eq!(nth_address(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(nth_address(253), Ipv4Addr::new(127, 1, 0, 254));
        assert_eq!(nth_address(254), Ipv4Addr::new(127, 1, 1, 1));
        assert_eq!(nth_address(254 * 256), Ipv4Addr::new(127, 2, 0, 1));
    }

    #[test]
    fn addresses_are_unique_and_never_localhost() {
        let mut seen = HashSet::new();
        for n in 0..100_000 {
            let ip = nth_address(n);
            assert_ne!(ip, Ipv4Addr::LOCALHOST);
            assert!(ip.is_loopback());
            assert!(seen.insert(ip), "duplicate {ip}");
        }
    }
}
