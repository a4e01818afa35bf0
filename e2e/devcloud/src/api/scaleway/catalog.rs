//! What this fake Scaleway "sells": zones, commercial types and images
//! (by label, as SAM names them), plus `GET /products/servers`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};

use super::super::AppState;
use super::error::ScwError;

pub(crate) const ZONES: &[&str] = &["fr-par-1", "fr-par-2", "nl-ams-1", "pl-waw-1"];

pub(crate) struct CommercialType {
    pub name: &'static str,
    pub ncpus: u32,
    pub ram_gib: u64,
    /// Size of the local root volume, in GB (10^9 bytes, as Scaleway counts).
    pub disk_gb: u64,
    /// Hourly price in ten-thousandths of a euro.
    hourly_e4: u64,
}

pub(crate) const COMMERCIAL_TYPES: &[CommercialType] = &[
    CommercialType {
        name: "DEV1-S",
        ncpus: 2,
        ram_gib: 2,
        disk_gb: 20,
        hourly_e4: 88,
    },
    CommercialType {
        name: "DEV1-M",
        ncpus: 3,
        ram_gib: 4,
        disk_gb: 40,
        hourly_e4: 198,
    },
    CommercialType {
        name: "DEV1-L",
        ncpus: 4,
        ram_gib: 8,
        disk_gb: 80,
        hourly_e4: 420,
    },
    CommercialType {
        name: "GP1-XS",
        ncpus: 4,
        ram_gib: 16,
        disk_gb: 150,
        hourly_e4: 910,
    },
];

pub(crate) struct Image {
    pub label: &'static str,
    pub id: &'static str,
    pub name: &'static str,
}

pub(crate) const IMAGES: &[Image] = &[
    Image {
        label: "ubuntu_noble",
        id: "5ca1e1a6-0000-4000-8000-000000002404",
        name: "Ubuntu 24.04 Noble Numbat",
    },
    Image {
        label: "ubuntu_jammy",
        id: "5ca1e1a6-0000-4000-8000-000000002204",
        name: "Ubuntu 22.04 Jammy Jellyfish",
    },
    Image {
        label: "debian_bookworm",
        id: "5ca1e1a6-0000-4000-8000-000000000012",
        name: "Debian Bookworm",
    },
];

pub(crate) fn zone(name: &str) -> Result<&'static str, ScwError> {
    ZONES.iter().copied().find(|z| *z == name).ok_or_else(|| {
        ScwError::invalid_argument(
            "zone",
            format!(
                "unknown zone '{name}', expected one of {}",
                ZONES.join(", ")
            ),
        )
    })
}

pub(crate) fn commercial_type(name: &str) -> Option<&'static CommercialType> {
    COMMERCIAL_TYPES.iter().find(|t| t.name == name)
}

/// By label or by id, like the real API's `image` field.
pub(crate) fn image(label_or_id: &str) -> Option<&'static Image> {
    IMAGES
        .iter()
        .find(|i| i.label == label_or_id || i.id.eq_ignore_ascii_case(label_or_id))
}

pub(crate) fn image_by_label(label: &str) -> Option<&'static Image> {
    IMAGES.iter().find(|i| i.label == label)
}

impl CommercialType {
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.disk_gb * 1_000_000_000
    }

    #[allow(clippy::cast_precision_loss)] // small fixed prices
    fn to_json(&self) -> Value {
        let hourly = self.hourly_e4 as f64 / 10_000.0;
        json!({
            "alt_names": [],
            "arch": "x86_64",
            "ncpus": self.ncpus,
            "ram": self.ram_gib * 1024 * 1024 * 1024,
            "gpu": 0,
            "hourly_price": hourly,
            "monthly_price": (hourly * 730.0 * 100.0).round() / 100.0,
            "baremetal": false,
            "volumes_constraint": {
                "min_size": self.disk_bytes(),
                "max_size": self.disk_bytes(),
            },
            "per_volume_constraint": {
                "l_ssd": { "min_size": 1_000_000_000_u64, "max_size": self.disk_bytes() },
            },
            "network": { "sum_internal_bandwidth": 200_000_000_u64, "ipv6_support": true },
            "end_of_service": false,
        })
    }
}

pub(crate) async fn products(
    State(_): State<AppState>,
    Path(zone_name): Path<String>,
) -> Result<Json<Value>, ScwError> {
    zone(&zone_name)?;
    let servers: Map<String, Value> = COMMERCIAL_TYPES
        .iter()
        .map(|t| (t.name.to_owned(), t.to_json()))
        .collect();
    Ok(Json(json!({ "servers": servers })))
}
