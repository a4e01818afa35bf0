//! Files and git changes of a workspace through the Worker's `ws-<id>`
//! proxy, as the workspace page uses them: list, view, raw (type, ETag,
//! 304), download, upload (multipart, streamed through the Worker), git
//! status and diffs; and paths that try to leave the checkout.

use std::time::Duration;

use sam_e2e::Platform;
use sam_e2e::workspace_host::{WorkspaceHost, read_until, type_into};
use serde_json::Value;

use crate::workspaces::{running_workspace, workspace_setup};

/// A 1×1 PNG.
const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

const BOUNDARY: &str = "sam-e2e-boundary-7c1f";

/// A `multipart/form-data` body with one part per `(file name, bytes)`.
fn multipart(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(host: &WorkspaceHost, dir: &str, files: &[(&str, &[u8])]) -> reqwest::Response {
    host.client
        .post(host.url(&format!("/files/upload?path={dir}")))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(files))
        .send()
        .await
        .unwrap()
}

async fn json(host: &WorkspaceHost, path: &str) -> (u16, Value) {
    let resp = host.client.get(host.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn j17_files_and_diff() {
    let p = Platform::from_env();
    let s = workspace_setup(&p, "j17-owner").await;
    let ws = running_workspace(&p, &s, "j17").await;
    let host = WorkspaceHost::open(&p, &s.client, &ws.id).await.unwrap();

    // The checkout's root.
    let (status, root) = json(&host, "/files?path=").await;
    assert_eq!(status, 200, "{root}");
    let names: Vec<&str> = root["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"README.md") && names.contains(&".git"),
        "{root}"
    );

    // Upload through the Worker: a new text file, an image, a new README.
    let readme = "# j17\n\nRewritten from the browser.\n";
    let resp = upload(
        &host,
        "",
        &[
            ("notes.txt", b"first line\nsecond line\n"),
            ("pixel.png", PIXEL_PNG),
            ("README.md", readme.as_bytes()),
        ],
    )
    .await;
    assert_eq!(resp.status(), 201);
    let uploaded: Value = resp.json().await.unwrap();
    assert_eq!(uploaded["files"].as_array().unwrap().len(), 3, "{uploaded}");

    // View, raw with its type and ETag, download.
    let (status, notes) = json(&host, "/files/content?path=notes.txt").await;
    assert_eq!(status, 200);
    assert_eq!(notes["text"], "first line\nsecond line\n");
    assert_eq!(notes["binary"], false);
    let (_, pixel) = json(&host, "/files/content?path=pixel.png").await;
    assert_eq!(pixel["binary"], true, "{pixel}");
    let raw = host
        .client
        .get(host.url("/files/raw?path=pixel.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["content-type"], "image/png");
    assert_eq!(raw.headers()["x-content-type-options"], "nosniff");
    let etag = raw.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(raw.bytes().await.unwrap().as_ref(), PIXEL_PNG);
    let again = host
        .client
        .get(host.url("/files/raw?path=pixel.png"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let download = host
        .client
        .get(host.url("/files/download?path=notes.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
    );

    // Git: the changed README and the new files, per file and whole tree.
    let (status, git) = json(&host, "/git/status").await;
    assert_eq!(status, 200, "{git}");
    assert_eq!(git["branch"], "sam/j17");
    let changed = |path: &str| {
        git["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(changed("README.md")["worktree"], "M", "{git}");
    assert_eq!(changed("notes.txt")["worktree"], "?", "{git}");
    let (status, diff) = json(&host, "/git/diff?path=README.md").await;
    assert_eq!(status, 200);
    let text = diff["diff"].as_str().unwrap();
    assert!(text.contains("+Rewritten from the browser."), "{text}");
    assert!(text.lines().any(|l| l.starts_with("-#")), "{text}");
    assert!(!text.contains("notes.txt"), "{text}");
    let (_, whole) = json(&host, "/git/diff").await;
    let text = whole["diff"].as_str().unwrap();
    assert!(
        text.contains("README.md") && text.contains("+second line"),
        "{text}"
    );

    // Paths that try to leave the checkout, in the query and in the URL.
    for (path, code) in [
        ("/files/content?path=../../etc/passwd", "path_invalid"),
        ("/files/content?path=%2Fetc%2Fpasswd", "path_invalid"),
        ("/files/content?path=notes.txt%00.png", "path_invalid"),
        ("/files?path=..", "path_invalid"),
        ("/git/diff?path=../../../etc/passwd", "path_invalid"),
    ] {
        let (status, body) = json(&host, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["code"], code, "{path}: {body}");
    }
    // Request lines sent as they are (an HTTP client would resolve the
    // dot segments itself): nothing steps out of the workspace's prefix
    // to the vm-agent's other routes.
    for target in [
        "/../../health",
        "/%2e%2e/%2e%2e/health",
        "/..%2f..%2fhealth",
        "/..%2F..%2Fsystem-info",
        "/.%2e/.%2e/logs",
    ] {
        let (status, body) = raw_get(&p, &host, target).await;
        assert_eq!(status, 404, "{target}: {body}");
        assert!(
            !body.contains("node_id") && !body.contains("\"lines\""),
            "{target}: {body}"
        );
    }
    // A symlink made inside the workspace that points outside it.
    let tid = host.new_terminal().await.unwrap();
    let mut term = host.attach(&tid).await.unwrap();
    type_into(
        &mut term,
        "ln -s /etc/passwd leak && echo linked-$((2*4))\r",
    )
    .await
    .unwrap();
    read_until(&mut term, "linked-8", Duration::from_secs(15))
        .await
        .unwrap();
    let (status, body) = json(&host, "/files/content?path=leak").await;
    assert_eq!(body["code"], "path_outside_workspace", "{status} {body}");
    let resp = host
        .client
        .get(host.url("/files/raw?path=leak"))
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), 200);
    assert!(!resp.text().await.unwrap().contains("root:"));

    // Upload limits hold through the Worker: one file over 25 MiB is
    // refused and nothing is written.
    let big = vec![b'x'; 25 * 1024 * 1024 + 1];
    let resp = upload(&host, "", &[("big.bin", &big)]).await;
    assert_eq!(resp.status(), 413);
    let (status, _) = json(&host, "/files/content?path=big.bin").await;
    assert_eq!(status, 404);

    // Another user cannot even get a ticket; without the cookie, nothing.
    let stranger = p.signed_in("j17-stranger").await.unwrap();
    let resp = stranger
        .post(p.api(&format!("/api/workspaces/{}/terminal-ticket", ws.id)))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = reqwest_without_cookie(&p, &host)
        .get(host.url("/files?path="))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// `GET <target>` on the workspace host with its cookie, the request line
/// exactly as given; returns the status and the body.
async fn raw_get(p: &Platform, host: &WorkspaceHost, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", p.port))
        .await
        .unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nConnection: close\r\n\r\n",
        host.host, host.cookie
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn reqwest_without_cookie(p: &Platform, host: &WorkspaceHost) -> reqwest::Client {
    let name = host.host.split(':').next().unwrap().to_owned();
    sam_e2e::workspace_host::browser_client(p, &[&name])
}
