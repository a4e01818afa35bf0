//! Static assets compiled into the binary.
//!
//! The Worker has no filesystem, so assets are `include_bytes!`-ed and looked
//! up in a fixed table. Lookup is by exact name only, which makes path
//! traversal (`../Cargo.toml`) impossible rather than merely filtered.
//!
//! `vendor/…` are third-party browser libraries from the npm packages pinned
//! in the root `package.json` (xterm.js and its fit addon), copied into
//! `OUT_DIR` by `build.rs` with their licences.

/// One servable file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticAsset {
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// Strong ETag (quoted) derived from the content.
    pub etag: String,
}

struct Entry {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const APP_CSS: &[u8] = include_bytes!("../static/app.css");
const CHAT_JS: &[u8] = include_bytes!("../static/chat.js");
const FAVICON_SVG: &[u8] = include_bytes!("../static/favicon.svg");
const FORMS_JS: &[u8] = include_bytes!("../static/forms.js");
const NODE_LIVE_JS: &[u8] = include_bytes!("../static/node-live.js");
const WORKSPACE_JS: &[u8] = include_bytes!("../static/workspace.js");
const XTERM_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vendor/xterm.js"));
const XTERM_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vendor/xterm.css"));
const XTERM_FIT_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vendor/addon-fit.js"));

/// Third-party files, hashed by `build.rs` in this order ([`VENDOR_FNV`]).
const VENDOR_ASSETS: &[Entry] = &[
    Entry {
        name: "vendor/xterm.js",
        content_type: "application/javascript; charset=utf-8",
        body: XTERM_JS,
    },
    Entry {
        name: "vendor/xterm.css",
        content_type: "text/css; charset=utf-8",
        body: XTERM_CSS,
    },
    Entry {
        name: "vendor/addon-fit.js",
        content_type: "application/javascript; charset=utf-8",
        body: XTERM_FIT_JS,
    },
];

const OWN_ASSETS: &[Entry] = &[
    Entry {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: APP_CSS,
    },
    Entry {
        name: "chat.js",
        content_type: "application/javascript; charset=utf-8",
        body: CHAT_JS,
    },
    Entry {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: FAVICON_SVG,
    },
    Entry {
        name: "forms.js",
        content_type: "application/javascript; charset=utf-8",
        body: FORMS_JS,
    },
    Entry {
        name: "node-live.js",
        content_type: "application/javascript; charset=utf-8",
        body: NODE_LIVE_JS,
    },
    Entry {
        name: "workspace.js",
        content_type: "application/javascript; charset=utf-8",
        body: WORKSPACE_JS,
    },
];

include!(concat!(env!("OUT_DIR"), "/vendor/hash.rs"));

fn entries() -> impl Iterator<Item = &'static Entry> {
    VENDOR_ASSETS.iter().chain(OWN_ASSETS)
}

/// Every servable asset name, vendored ones first (`vendor/xterm.js`, …,
/// `app.css`, …).
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    entries().map(|entry| entry.name)
}

/// URL prefix the assets are served under.
pub const STATIC_PREFIX: &str = "/static/";

/// Looks an asset up by its name (`app.css`) or its full path
/// (`/static/app.css`). Anything not in the table is `None`.
pub fn static_asset(path: &str) -> Option<StaticAsset> {
    let name = path.strip_prefix(STATIC_PREFIX).unwrap_or(path);
    entries()
        .find(|entry| entry.name == name)
        .map(|entry| StaticAsset {
            content_type: entry.content_type,
            body: entry.body,
            etag: format!("\"{}\"", hex(fnv1a64(entry.body))),
        })
}

/// Short content hash of all assets together, used as `?v=` on every asset
/// URL so browsers may cache them forever and still pick up every change.
pub fn asset_version() -> &'static str {
    ASSET_VERSION
}

/// FNV-1a, because it is a `const fn` in a few lines: the version is computed
/// at compile time with no dependency. This is cache-busting, not integrity,
/// so a non-cryptographic hash is enough.
const fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_continue(0xcbf2_9ce4_8422_2325, bytes)
}

/// Feeds more bytes into a running FNV-1a hash.
const fn fnv1a64_continue(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

const VERSION_LEN: usize = 12;

const fn hex_prefix(hash: u64) -> [u8; VERSION_LEN] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0_u8; VERSION_LEN];
    let mut i = 0;
    while i < VERSION_LEN {
        let nibble = (hash >> (60 - 4 * i)) & 0xf;
        out[i] = DIGITS[nibble as usize];
        i += 1;
    }
    out
}

/// Every asset in the table, so an edit to any of them changes the version:
/// the vendored files (hashed by `build.rs`), then our own.
const fn assets_hash() -> u64 {
    let mut hash = VENDOR_FNV;
    let mut i = 0;
    while i < OWN_ASSETS.len() {
        hash = fnv1a64_continue(hash, OWN_ASSETS[i].body);
        i += 1;
    }
    hash
}

const ASSET_VERSION_BYTES: [u8; VERSION_LEN] = hex_prefix(assets_hash());

const ASSET_VERSION: &str = match core::str::from_utf8(&ASSET_VERSION_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("hex digits are ASCII"),
};

fn hex(hash: u64) -> String {
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_covers_every_asset() {
        assert_eq!(asset_version().len(), VERSION_LEN);
        let mut all = Vec::new();
        for entry in entries() {
            all.extend_from_slice(entry.body);
        }
        // Hashing the concatenation equals hashing the pieces in sequence.
        assert!(hex(fnv1a64(&all)).starts_with(asset_version()));
    }

    #[test]
    fn fnv_matches_known_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
