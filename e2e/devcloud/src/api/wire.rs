//! Records rendered as Hetzner JSON objects, with every field a client may
//! read present (unused features as empty lists or `null`, as the real API
//! sends them).

use serde_json::{Value, json};

use crate::catalog;
use crate::state::{ActionRecord, ActionStatus, ServerRecord};

/// Hetzner's default reverse DNS name for an address.
fn default_ptr(ip: std::net::Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("static.{d}.{c}.{b}.{a}.clients.your-server.de")
}

pub(crate) fn server(record: &ServerRecord) -> Value {
    let server_type = catalog::server_type(&record.server_type);
    let location = catalog::location(&record.location);
    let architecture = server_type.map_or("x86", |t| t.architecture);
    // Documentation prefix (RFC 3849), unique per server.
    let ipv6 = format!(
        "2001:db8:{:x}:{:x}::/64",
        record.id >> 16,
        record.id & 0xffff
    );
    json!({
        "id": record.id,
        "name": record.name,
        "status": record.status.as_str(),
        "created": record.created,
        "public_net": {
            "ipv4": {
                "id": 100_000 + record.id * 2,
                "ip": record.ipv4.to_string(),
                "blocked": false,
                "dns_ptr": default_ptr(record.ipv4),
            },
            "ipv6": {
                "id": 100_001 + record.id * 2,
                "ip": ipv6,
                "blocked": false,
                "dns_ptr": [],
            },
            "floating_ips": [],
            "firewalls": [],
        },
        "private_net": [],
        "server_type": server_type.map(catalog::ServerType::to_json),
        "datacenter": location.map(catalog::Location::datacenter_json),
        "location": location.map(catalog::Location::to_json),
        "image": catalog::image(&record.image).map(|i| i.to_json(architecture)),
        "iso": null,
        "rescue_enabled": false,
        "locked": false,
        "backup_window": null,
        "outgoing_traffic": 0,
        "ingoing_traffic": 0,
        "included_traffic": location.map(catalog::included_traffic),
        "protection": { "delete": false, "rebuild": false },
        "labels": record.labels,
        "volumes": [],
        "load_balancers": [],
        "primary_disk_size": server_type.map(|t| t.disk_gb),
        "placement_group": null,
    })
}

/// Emulated actions never fail: a broken boot is invisible to the API,
/// exactly like a failed cloud-init on a real VM.
pub(crate) fn action(record: &ActionRecord) -> Value {
    let (status, progress) = match record.status {
        ActionStatus::Running => ("running", 0),
        ActionStatus::Success => ("success", 100),
    };
    json!({
        "id": record.id,
        "command": record.command,
        "status": status,
        "progress": progress,
        "started": record.started,
        "finished": record.finished,
        "resources": [{ "id": record.server_id, "type": "server" }],
        "error": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_dns_reverses_octets() {
        assert_eq!(
            default_ptr(std::net::Ipv4Addr::new(127, 1, 2, 3)),
            "static.3.2.1.127.clients.your-server.de"
        );
    }
}
