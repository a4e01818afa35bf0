//! Copies the vendored browser libraries (xterm.js and its fit addon, from
//! the npm packages pinned in the root `package.json`) into `OUT_DIR`, where
//! `src/assets.rs` includes them into the asset table.
//!
//! The files are taken as npm installed them, with two changes to the
//! JavaScript ones: the package's licence is put in front as a `/*! … */`
//! comment (the minified builds carry none, and the MIT licence asks for its
//! notice in every copy), and the trailing `//# sourceMappingURL=` line is
//! dropped (the maps are not served). The stylesheet keeps its own licence
//! header and is copied unchanged.
//!
//! Without `node_modules` (or with packages that do not match the pinned
//! versions) the build fails and says how to install them.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// One vendored file: npm package, path inside it, name under `vendor/`,
/// and whether it is a script (which gets the licence put in front).
struct Vendored {
    package: &'static str,
    source: &'static str,
    name: &'static str,
    script: bool,
}

const FILES: &[Vendored] = &[
    Vendored {
        package: "@xterm/xterm",
        source: "lib/xterm.js",
        name: "xterm.js",
        script: true,
    },
    Vendored {
        package: "@xterm/xterm",
        source: "css/xterm.css",
        name: "xterm.css",
        script: false,
    },
    Vendored {
        package: "@xterm/addon-fit",
        source: "lib/addon-fit.js",
        name: "addon-fit.js",
        script: true,
    },
];

const HOW_TO_INSTALL: &str = "run `cargo xtask setup` (or `npm ci` in the repository root) first";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("web/ lives in the repository root")
        .to_path_buf();
    let modules = root.join("node_modules");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("vendor");

    let root_manifest = root.join("package.json");
    println!("cargo:rerun-if-changed={}", root_manifest.display());
    println!("cargo:rerun-if-changed=build.rs");

    let pinned = read(&root_manifest);
    // FNV-1a over every vendored file in `FILES` order: where `assets.rs`
    // starts its asset version (hashing half a megabyte in const eval would
    // be slow).
    let mut hash = FNV_OFFSET;
    if let Err(message) = fs::create_dir_all(&out_dir) {
        fail(&format!("cannot create {}: {message}", out_dir.display()));
    }
    for file in FILES {
        let package_dir = modules.join(file.package);
        let source = package_dir.join(file.source);
        let manifest = package_dir.join("package.json");
        let license = package_dir.join("LICENSE");
        for path in [&source, &manifest, &license] {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        if !source.is_file() {
            fail(&format!(
                "{} is missing: the npm package {} is not installed; {HOW_TO_INSTALL}",
                source.display(),
                file.package
            ));
        }
        let want =
            string_value_after(&pinned, &format!("\"{}\"", file.package)).unwrap_or_else(|| {
                fail(&format!(
                    "{} does not pin {} in devDependencies",
                    root_manifest.display(),
                    file.package
                ))
            });
        let have = string_value_after(&read(&manifest), "\"version\"").unwrap_or_default();
        if have != want {
            fail(&format!(
                "node_modules has {} {have:?} but package.json pins {want:?}; {HOW_TO_INSTALL}",
                file.package
            ));
        }
        let body = read(&source);
        let output = if file.script {
            with_license(file.package, &have, &read(&license), &body)
        } else {
            body
        };
        hash = fnv1a64_continue(hash, output.as_bytes());
        write_if_changed(&out_dir.join(file.name), &output);
    }
    write_if_changed(
        &out_dir.join("hash.rs"),
        &format!(
            "/// FNV-1a state after the vendored files, in table order (build.rs).\nconst VENDOR_FNV: u64 = 0x{:04x}_{:04x}_{:04x}_{:04x};\n",
            hash >> 48,
            (hash >> 32) & 0xffff,
            (hash >> 16) & 0xffff,
            hash & 0xffff
        ),
    );
}

/// Unchanged output keeps its timestamp, so nothing downstream rebuilds.
fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).ok().as_deref() == Some(contents) {
        return;
    }
    if let Err(message) = fs::write(path, contents) {
        fail(&format!("cannot write {}: {message}", path.display()));
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, as `src/assets.rs` computes it.
fn fnv1a64_continue(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The script with its package's licence in front and without its source
/// map reference.
fn with_license(package: &str, version: &str, license: &str, script: &str) -> String {
    if license.trim().is_empty() || license.contains("*/") {
        fail(&format!("{package}: unexpected LICENSE file"));
    }
    let code = script.trim_end();
    let code = match code.rfind('\n') {
        Some(at) if code[at + 1..].starts_with("//# sourceMappingURL=") => &code[..at],
        _ => code,
    };
    format!(
        "/*! {package} {version}\n\n{}\n*/\n{}\n",
        license.trim_end(),
        code.trim_end()
    )
}

/// The string value of the first `"key": "value"` after `key` (enough for
/// the flat fields of a `package.json` read here: `version` and one entry of
/// `devDependencies`).
fn string_value_after(json: &str, key: &str) -> Option<String> {
    let rest = &json[json.find(key)? + key.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| {
        fail(&format!(
            "cannot read {}: {e}; {HOW_TO_INSTALL}",
            path.display()
        ))
    })
}

fn fail(message: &str) -> ! {
    eprintln!("error: sam-web vendored assets: {message}");
    panic!("sam-web: {message}");
}
