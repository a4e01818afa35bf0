//! What this fake Hetzner "sells": server types, locations, datacenters and
//! images, with the fields real clients read.
//!
//! IDs are stable within devcloud but are not Hetzner's real IDs; clients
//! are expected to use names, as SAM does.

use serde_json::{Value, json};

pub(crate) struct ServerType {
    pub id: u64,
    pub name: &'static str,
    pub cores: u32,
    pub memory_gb: u32,
    pub disk_gb: u32,
    /// Hetzner's spelling: `x86` or `arm`.
    pub architecture: &'static str,
    /// Monthly net price in ten-thousandths of a euro.
    monthly_net_e4: u64,
    hourly_net_e4: u64,
}

pub(crate) const SERVER_TYPES: &[ServerType] = &[
    ServerType {
        id: 101,
        name: "cx23",
        cores: 2,
        memory_gb: 4,
        disk_gb: 40,
        architecture: "x86",
        monthly_net_e4: 34_900,
        hourly_net_e4: 56,
    },
    ServerType {
        id: 102,
        name: "cx33",
        cores: 4,
        memory_gb: 8,
        disk_gb: 80,
        architecture: "x86",
        monthly_net_e4: 54_900,
        hourly_net_e4: 88,
    },
    ServerType {
        id: 103,
        name: "cx43",
        cores: 8,
        memory_gb: 16,
        disk_gb: 160,
        architecture: "x86",
        monthly_net_e4: 94_900,
        hourly_net_e4: 152,
    },
    ServerType {
        id: 104,
        name: "cx53",
        cores: 16,
        memory_gb: 32,
        disk_gb: 320,
        architecture: "x86",
        monthly_net_e4: 174_900,
        hourly_net_e4: 280,
    },
    ServerType {
        id: 45,
        name: "cax11",
        cores: 2,
        memory_gb: 4,
        disk_gb: 40,
        architecture: "arm",
        monthly_net_e4: 37_900,
        hourly_net_e4: 61,
    },
    ServerType {
        id: 93,
        name: "cax21",
        cores: 4,
        memory_gb: 8,
        disk_gb: 80,
        architecture: "arm",
        monthly_net_e4: 64_900,
        hourly_net_e4: 104,
    },
];

pub(crate) struct Location {
    pub id: u64,
    pub name: &'static str,
    description: &'static str,
    country: &'static str,
    city: &'static str,
    latitude: f64,
    longitude: f64,
    pub network_zone: &'static str,
    pub datacenter_id: u64,
    pub datacenter: &'static str,
    datacenter_description: &'static str,
}

pub(crate) const LOCATIONS: &[Location] = &[
    Location {
        id: 1,
        name: "fsn1",
        description: "Falkenstein DC Park 1",
        country: "DE",
        city: "Falkenstein",
        latitude: 50.47612,
        longitude: 12.370_071,
        network_zone: "eu-central",
        datacenter_id: 4,
        datacenter: "fsn1-dc14",
        datacenter_description: "Falkenstein 1 virtual DC 14",
    },
    Location {
        id: 2,
        name: "nbg1",
        description: "Nuremberg DC Park 1",
        country: "DE",
        city: "Nuremberg",
        latitude: 49.452_102,
        longitude: 11.076_665,
        network_zone: "eu-central",
        datacenter_id: 2,
        datacenter: "nbg1-dc3",
        datacenter_description: "Nuremberg 1 virtual DC 3",
    },
    Location {
        id: 3,
        name: "hel1",
        description: "Helsinki DC Park 1",
        country: "FI",
        city: "Helsinki",
        latitude: 60.169_855,
        longitude: 24.938_379,
        network_zone: "eu-central",
        datacenter_id: 3,
        datacenter: "hel1-dc2",
        datacenter_description: "Helsinki 1 virtual DC 2",
    },
    Location {
        id: 4,
        name: "ash",
        description: "Ashburn, VA",
        country: "US",
        city: "Ashburn, VA",
        latitude: 39.045_821,
        longitude: -77.487_073,
        network_zone: "us-east",
        datacenter_id: 5,
        datacenter: "ash-dc1",
        datacenter_description: "Ashburn virtual DC 1",
    },
    Location {
        id: 5,
        name: "hil",
        description: "Hillsboro, OR",
        country: "US",
        city: "Hillsboro, OR",
        latitude: 45.542_22,
        longitude: -122.951_924,
        network_zone: "us-west",
        datacenter_id: 6,
        datacenter: "hil-dc1",
        datacenter_description: "Hillsboro virtual DC 1",
    },
];

pub(crate) struct Image {
    /// ID of the x86 build; the arm build is `id + 1`.
    pub id: u64,
    pub name: &'static str,
    description: &'static str,
    os_flavor: &'static str,
    os_version: &'static str,
}

pub(crate) const IMAGES: &[Image] = &[
    Image {
        id: 161_547_268,
        name: "ubuntu-24.04",
        description: "Ubuntu 24.04",
        os_flavor: "ubuntu",
        os_version: "24.04",
    },
    Image {
        id: 67_794_396,
        name: "ubuntu-22.04",
        description: "Ubuntu 22.04",
        os_flavor: "ubuntu",
        os_version: "22.04",
    },
    Image {
        id: 114_690_386,
        name: "debian-12",
        description: "Debian 12",
        os_flavor: "debian",
        os_version: "12",
    },
    Image {
        id: 243_280_662,
        name: "debian-13",
        description: "Debian 13",
        os_flavor: "debian",
        os_version: "13",
    },
];

/// Finds a server type by name or numeric ID, as Hetzner accepts either.
pub(crate) fn server_type(key: &str) -> Option<&'static ServerType> {
    SERVER_TYPES
        .iter()
        .find(|t| t.name == key || t.id.to_string() == key)
}

pub(crate) fn location(key: &str) -> Option<&'static Location> {
    LOCATIONS
        .iter()
        .find(|l| l.name == key || l.id.to_string() == key)
}

pub(crate) fn location_by_datacenter(key: &str) -> Option<&'static Location> {
    LOCATIONS
        .iter()
        .find(|l| l.datacenter == key || l.datacenter_id.to_string() == key)
}

/// Finds an image by name or by the ID of either architecture's build.
pub(crate) fn image(key: &str) -> Option<&'static Image> {
    IMAGES
        .iter()
        .find(|i| i.name == key || i.id.to_string() == key || (i.id + 1).to_string() == key)
}

fn price(e4: u64) -> String {
    format!("{}.{:04}", e4 / 10_000, e4 % 10_000)
}

/// Net and gross (19 % VAT, as for a German customer) price object.
fn price_pair(net_e4: u64) -> Value {
    let gross_e4 = (net_e4 * 119 + 50) / 100;
    json!({ "net": price(net_e4), "gross": price(gross_e4) })
}

impl Location {
    fn included_traffic(&self) -> u64 {
        const TB: u64 = 1 << 40;
        if self.network_zone == "eu-central" {
            20 * TB
        } else {
            TB
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "country": self.country,
            "city": self.city,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "network_zone": self.network_zone,
        })
    }

    pub(crate) fn datacenter_json(&self) -> Value {
        let ids: Vec<u64> = SERVER_TYPES.iter().map(|t| t.id).collect();
        json!({
            "id": self.datacenter_id,
            "name": self.datacenter,
            "description": self.datacenter_description,
            "location": self.to_json(),
            "server_types": {
                "supported": ids,
                "available": ids,
                "available_for_migration": ids,
            },
        })
    }
}

impl ServerType {
    pub(crate) fn to_json(&self) -> Value {
        let prices: Vec<Value> = LOCATIONS
            .iter()
            .map(|l| {
                json!({
                    "location": l.name,
                    "price_hourly": price_pair(self.hourly_net_e4),
                    "price_monthly": price_pair(self.monthly_net_e4),
                    "included_traffic": l.included_traffic(),
                    "price_per_tb_traffic": price_pair(10_000),
                })
            })
            .collect();
        let locations: Vec<Value> = LOCATIONS
            .iter()
            .map(|l| json!({ "id": l.id, "name": l.name, "deprecation": null }))
            .collect();
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.name.to_uppercase(),
            "cores": self.cores,
            // Hetzner sends memory as a JSON float (GB).
            "memory": f64::from(self.memory_gb),
            "disk": self.disk_gb,
            "deprecated": false,
            "deprecation": null,
            "prices": prices,
            "storage_type": "local",
            "cpu_type": "shared",
            "category": "cost_optimized",
            "architecture": self.architecture,
            "locations": locations,
        })
    }
}

impl Image {
    pub(crate) fn id_for(&self, architecture: &str) -> u64 {
        if architecture == "arm" {
            self.id + 1
        } else {
            self.id
        }
    }

    pub(crate) fn to_json(&self, architecture: &str) -> Value {
        json!({
            "id": self.id_for(architecture),
            "type": "system",
            "status": "available",
            "name": self.name,
            "description": self.description,
            "image_size": null,
            "disk_size": 5,
            "created": "2024-04-25T00:00:00+00:00",
            "created_from": null,
            "bound_to": null,
            "os_flavor": self.os_flavor,
            "os_version": self.os_version,
            "rapid_deploy": true,
            "protection": { "delete": false },
            "deprecated": null,
            "deleted": null,
            "labels": {},
            "architecture": architecture,
        })
    }
}

/// Monthly traffic included with a server in `location`.
pub(crate) fn included_traffic(location: &Location) -> u64 {
    location.included_traffic()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_accept_names_and_ids() {
        assert_eq!(server_type("cx23").unwrap().id, 101);
        assert_eq!(server_type("101").unwrap().name, "cx23");
        assert!(server_type("cx99").is_none());
        assert_eq!(location("hel1").unwrap().id, 3);
        assert_eq!(location_by_datacenter("nbg1-dc3").unwrap().name, "nbg1");
        let img = image("ubuntu-24.04").unwrap();
        assert_eq!(
            image(&(img.id + 1).to_string()).unwrap().name,
            "ubuntu-24.04"
        );
    }

    #[test]
    fn prices_are_formatted_with_vat() {
        let v = price_pair(34_900);
        assert_eq!(v["net"], "3.4900");
        assert_eq!(v["gross"], "4.1531");
    }
}
