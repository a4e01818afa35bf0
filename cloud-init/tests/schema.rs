//! Validates rendered user-data with cloud-init's own schema checker.
//!
//! This needs the `cloud-init` command (Debian package `cloud-init`,
//! installed by `cargo xtask setup`). Its absence is a failure, not a skip:
//! a check that silently passes on machines without the tool checks nothing.

use std::io::Write as _;
use std::process::{Command, Output};

use sam_cloud_init::{NodeBootstrap, render};

fn typical() -> NodeBootstrap<'static> {
    NodeBootstrap {
        node_id: "01HZY8J3K4M5N6P7Q8R9S0T1V2",
        hostname: "sam-dev-box",
        control_plane_url: "http://api.localhost:8787",
        agent_download_url: "http://api.localhost:8787/api/agent/download?arch=x86_64",
        callback_token: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJub2RlIn0.c2lnbmF0dXJl",
        heartbeat_interval_secs: 30,
        vm_agent_port: 8443,
        app_origin: "http://app.localhost:8787",
    }
}

/// Runs `cloud-init schema --config-file` on `doc`; returns success and
/// the combined output.
fn cloud_init_schema(doc: &str) -> (bool, String) {
    let mut file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("create temp file");
    file.write_all(doc.as_bytes()).expect("write temp file");
    file.flush().expect("flush temp file");

    let output: Output = match Command::new("cloud-init")
        .arg("schema")
        .arg("--config-file")
        .arg(file.path())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "the `cloud-init` command is missing, so user-data cannot be validated; \
             run `cargo xtask setup` or install the Debian package with \
             `apt-get install -y cloud-init`"
        ),
        Err(e) => panic!("could not run `cloud-init schema`: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Deprecation notices are printed even for valid documents, so the exit
    // status decides; the error marker is a second guard in case a version
    // ever reports errors with status 0.
    let ok = output.status.success() && !text.contains("schema errors");
    (ok, text)
}

#[test]
fn rendered_user_data_passes_cloud_init_schema() {
    let (ok, output) = cloud_init_schema(&render(&typical()).unwrap());
    assert!(
        ok,
        "cloud-init schema rejected the rendered user-data:\n{output}"
    );
}

#[test]
fn cloud_init_schema_rejects_a_broken_document() {
    // Proves the check above can fail: without this, a validator that
    // accepts everything would look like a passing test.
    let (ok, output) = cloud_init_schema("#cloud-config\nwrite_files: 5\n");
    assert!(
        !ok,
        "cloud-init schema accepted a broken document:\n{output}"
    );
}
