//! Records rendered as Scaleway Instance API JSON objects, with the fields
//! clients read present (unused features as empty lists or `null`).

use serde_json::{Value, json};

use super::catalog;
use crate::clock::now_rfc3339;
use crate::state::{ScalewayMeta, ScalewayVolume, ServerRecord, ServerStatus};

/// What kind of object a generated UUID names (its first group).
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdKind {
    Server = 1,
    Volume = 2,
    Ip = 3,
    Task = 4,
}

/// A well-formed (version 4, RFC 4122 variant) UUID derived from a
/// persisted counter: unique, never reused, and readable in logs
/// (`5ca1e001-…-00000000002a` is server 42).
pub(crate) fn uuid(kind: IdKind, n: u64) -> String {
    format!("5ca1e{:03x}-0000-4000-8000-{n:012x}", kind as u16)
}

const SECURITY_GROUP_ID: &str = "5ca1e5e6-0000-4000-8000-000000000001";

pub(crate) fn state(status: ServerStatus) -> &'static str {
    match status {
        ServerStatus::Off => "stopped",
        ServerStatus::Initializing | ServerStatus::Starting => "starting",
        ServerStatus::Running => "running",
        ServerStatus::Stopping => "stopping",
    }
}

fn state_detail(status: ServerStatus) -> &'static str {
    match status {
        ServerStatus::Off => "",
        ServerStatus::Initializing | ServerStatus::Starting => "provisioning node",
        ServerStatus::Running => "booted",
        ServerStatus::Stopping => "stopping",
    }
}

/// The actions devcloud emulates, as the real API lists them per state.
fn allowed_actions(status: ServerStatus) -> Vec<&'static str> {
    match status {
        ServerStatus::Off => vec!["poweron"],
        ServerStatus::Initializing | ServerStatus::Starting => vec!["poweroff"],
        ServerStatus::Running => vec!["poweroff", "reboot", "terminate"],
        ServerStatus::Stopping => vec![],
    }
}

/// A volume; `server` is `(uuid, name)` while attached.
pub(crate) fn volume(volume: &ScalewayVolume, server: Option<(&str, &str)>) -> Value {
    json!({
        "id": volume.uuid,
        "name": volume.name,
        "volume_type": "l_ssd",
        "size": volume.size_bytes,
        "export_uri": null,
        "organization": volume.project,
        "project": volume.project,
        "server": server.map(|(id, name)| json!({ "id": id, "name": name })),
        "state": if server.is_some() { "in_use" } else { "available" },
        "tags": [],
        "creation_date": volume.created,
        "modification_date": volume.created,
        "zone": volume.zone,
    })
}

pub(crate) fn server(record: &ServerRecord, meta: &ScalewayMeta) -> Value {
    let image = catalog::image_by_label(&record.image);
    let ip = json!({
        "id": uuid(IdKind::Ip, record.id),
        "address": record.ipv4.to_string(),
        "dynamic": true,
        "family": "inet",
        "provisioning_mode": "dhcp",
        "gateway": "62.210.0.1",
        "netmask": "32",
        "state": "attached",
        "tags": [],
        "ipam_id": uuid(IdKind::Ip, record.id),
    });
    let [_, _, b, c] = record.ipv4.octets();
    json!({
        "id": meta.uuid,
        "name": record.name,
        "hostname": record.name,
        "organization": meta.project,
        "project": meta.project,
        "allowed_actions": allowed_actions(record.status),
        "tags": meta.tags,
        "commercial_type": record.server_type,
        "creation_date": record.created,
        "modification_date": meta.modified,
        "dynamic_ip_required": true,
        "routed_ip_enabled": true,
        "enable_ipv6": false,
        "image": image.map(|i| json!({
            "id": i.id,
            "name": i.name,
            "arch": "x86_64",
            "public": true,
            "state": "available",
            "zone": meta.zone,
        })),
        "protected": false,
        "private_ip": null,
        "public_ip": ip,
        "public_ips": [ip],
        "mac_address": format!("de:00:00:{:02x}:{b:02x}:{c:02x}", record.id & 0xff),
        "state": state(record.status),
        "state_detail": state_detail(record.status),
        "boot_type": "local",
        "volumes": {
            "0": volume(&meta.volume, Some((&meta.uuid, &record.name))),
        },
        "security_group": { "id": SECURITY_GROUP_ID, "name": "Default security group" },
        "maintenances": [],
        "location": null,
        "ipv6": null,
        "arch": "x86_64",
        "placement_group": null,
        "private_nics": [],
        "zone": meta.zone,
        "end_of_service": false,
        "filesystems": [],
    })
}

pub(crate) fn task(number: u64, action: &str, server_uuid: &str, zone: &str) -> Value {
    json!({
        "task": {
            "id": uuid(IdKind::Task, number),
            "description": format!("server_{action}"),
            "status": "pending",
            "href_from": format!("/servers/{server_uuid}/action"),
            "href_result": format!("/servers/{server_uuid}"),
            "progress": 0,
            "started_at": now_rfc3339(),
            "terminated_at": null,
            "zone": zone,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_well_formed_and_distinct_per_kind() {
        assert_eq!(
            uuid(IdKind::Server, 42),
            "5ca1e001-0000-4000-8000-00000000002a"
        );
        assert_ne!(uuid(IdKind::Server, 1), uuid(IdKind::Volume, 1));
        let groups: Vec<usize> = uuid(IdKind::Task, u64::from(u32::MAX))
            .split('-')
            .map(str::len)
            .collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
    }
}
