//! The workspace file routes through the agent's real router: listing,
//! viewing, raw bytes with ETags, downloads and uploads, and their refusals.

// Test helpers outside `#[test]` functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/workspace_fs.rs"]
mod workspace_fs;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use workspace_fs::{WS, Workspace, hash_tree};

fn write(ws: &Workspace, rel: &str, content: impl AsRef<[u8]>) {
    let path = ws.repo.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Names of the entries in a checkout directory (no temporary leftovers).
fn names(ws: &Workspace, rel: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(ws.repo.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn every_route_needs_a_credential_and_a_known_workspace() {
    let ws = Workspace::start().await;
    write(&ws, "a.txt", "a");
    for route in [
        "files",
        "files/content",
        "files/raw",
        "files/download",
        "git/status",
        "git/diff",
    ] {
        let uri = format!("/workspaces/{WS}/{route}?path=a.txt");
        let reply = ws
            .send(Request::get(&uri).body(Body::empty()).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{route}");
        assert_eq!(reply.code(), "token_missing", "{route}");

        // A malformed id and a workspace the registry does not know are
        // not found.
        let bad = ws
            .get(&format!("/workspaces/not-a-ulid/{route}?path=a.txt"))
            .await;
        assert_eq!(bad.status, StatusCode::NOT_FOUND, "{route}");
        let other = ws
            .get(&format!(
                "/workspaces/01JAB3C4D5E6F7G8H9J0K1M2N4/{route}?path=a.txt"
            ))
            .await;
        assert_eq!(other.status, StatusCode::NOT_FOUND, "{route}");
        assert_eq!(other.code(), "not_found");
    }
    // The id is accepted in any case.
    let lower = ws
        .get(&format!("/workspaces/{}/files", WS.to_lowercase()))
        .await;
    assert_eq!(lower.status, StatusCode::OK);

    let anonymous = ws
        .send(
            Request::post(Workspace::url("files/upload", ""))
                .header(header::CONTENT_TYPE, "multipart/form-data; boundary=x")
                .body(Body::from("--x--\r\n"))
                .unwrap(),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn listings_are_sorted_typed_and_include_hidden_entries() {
    let ws = Workspace::start().await;
    write(&ws, "b.txt", "bb");
    write(&ws, ".hidden", "h");
    write(&ws, "src/main.rs", "fn main() {}\n");
    write(&ws, ".git/HEAD", "ref: refs/heads/main\n");
    symlink("src/main.rs", ws.repo.join("a-link")).unwrap();
    symlink(&ws.outside, ws.repo.join("z-out")).unwrap();

    let reply = ws.get(&Workspace::url("files", "")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["path"], "");
    assert_eq!(body["truncated"], false);
    let entries: Vec<(String, String)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        (".git", "dir"),
        (".hidden", "file"),
        ("a-link", "symlink"),
        ("b.txt", "file"),
        ("src", "dir"),
        ("z-out", "symlink"),
    ];
    assert_eq!(entries, expected.map(|(n, k)| (n.to_owned(), k.to_owned())));
    let b = &body["entries"][3];
    assert_eq!(b["size"], 2);
    assert!(b["modified"].as_i64().unwrap() > 1_600_000_000_000);

    // A subdirectory, and the root spelled `.`; `.git` can be listed.
    let src = ws.get(&Workspace::url("files", "src/")).await.json();
    assert_eq!(src["path"], "src");
    assert_eq!(src["entries"][0]["name"], "main.rs");
    assert_eq!(
        ws.get(&Workspace::url("files", ".")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        ws.get(&Workspace::url("files", ".git")).await.status,
        StatusCode::OK
    );

    // Refusals, each with its code.
    for (path, status, code) in [
        ("b.txt", StatusCode::BAD_REQUEST, "not_a_directory"),
        ("nope", StatusCode::NOT_FOUND, "not_found"),
        ("z-out", StatusCode::FORBIDDEN, "path_outside_workspace"),
        ("../..", StatusCode::BAD_REQUEST, "path_invalid"),
        ("/etc", StatusCode::BAD_REQUEST, "path_invalid"),
        ("src//x", StatusCode::BAD_REQUEST, "path_invalid"),
    ] {
        let reply = ws.get(&Workspace::url("files", path)).await;
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(reply.code(), code, "{path}");
    }
    // `%2e%2e` sent raw is decoded once, to `..`: refused.
    let raw = ws.get(&format!("/workspaces/{WS}/files?path=%2e%2e")).await;
    assert_eq!(raw.code(), "path_invalid");
    // Encoded twice, it is decoded once, to a name: merely missing.
    let twice = ws
        .get(&format!("/workspaces/{WS}/files?path=%252e%252e"))
        .await;
    assert_eq!(twice.code(), "not_found");
}

#[tokio::test]
async fn content_views_text_binary_and_long_files() {
    let ws = Workspace::start().await;
    write(&ws, "dir/hello world.txt", "héllo\n");
    write(&ws, "bin.dat", [0u8, 1, 2, 3]);
    write(&ws, "latin1.txt", [b'c', b'a', b'f', 0xe9]);
    let long = "x".repeat(1024 * 1024 + 10);
    write(&ws, "long.txt", &long);
    symlink("dir/hello world.txt", ws.repo.join("link.txt")).unwrap();

    let text = ws
        .get(&Workspace::url("files/content", "dir/hello world.txt"))
        .await;
    assert_eq!(text.status, StatusCode::OK);
    assert_eq!(
        text.json(),
        json!({"path": "dir/hello world.txt", "size": 7, "text": "héllo\n", "binary": false, "truncated": false})
    );
    let through_link = ws.get(&Workspace::url("files/content", "link.txt")).await;
    assert_eq!(through_link.json()["text"], "héllo\n");

    for binary in ["bin.dat", "latin1.txt"] {
        let body = ws
            .get(&Workspace::url("files/content", binary))
            .await
            .json();
        assert_eq!(body["binary"], true, "{binary}");
        assert!(body.get("text").is_none(), "{binary}");
    }
    let body = ws
        .get(&Workspace::url("files/content", "long.txt"))
        .await
        .json();
    assert_eq!(body["truncated"], true);
    assert_eq!(body["size"], long.len());
    assert_eq!(body["text"].as_str().unwrap().len(), 1024 * 1024);

    let dir = ws.get(&Workspace::url("files/content", "dir")).await;
    assert_eq!(dir.status, StatusCode::BAD_REQUEST);
    assert_eq!(dir.code(), "not_a_file");
}

#[tokio::test]
async fn raw_bytes_are_typed_guarded_and_revalidated() {
    let ws = Workspace::start().await;
    write(&ws, "notes.txt", "plain\n");
    write(&ws, "pic.png", b"\x89PNG\r\n\x1a\nfake");
    write(&ws, "page.html", "<script>alert(1)</script>");
    write(&ws, "draw.svg", "<svg onload=alert(1)/>");
    write(&ws, "résumé final.bin", [1u8, 2, 3]);

    let txt = ws.get(&Workspace::url("files/raw", "notes.txt")).await;
    assert_eq!(txt.status, StatusCode::OK);
    assert_eq!(&txt.body[..], b"plain\n");
    assert_eq!(
        txt.header(header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );
    assert!(
        txt.header(header::CONTENT_DISPOSITION)
            .starts_with("inline")
    );
    assert_eq!(txt.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(txt.header(header::CONTENT_LENGTH), "6");
    assert!(
        txt.header(header::CONTENT_SECURITY_POLICY)
            .contains("sandbox")
    );

    let png = ws.get(&Workspace::url("files/raw", "pic.png")).await;
    assert_eq!(png.header(header::CONTENT_TYPE), "image/png");
    assert!(
        png.header(header::CONTENT_DISPOSITION)
            .starts_with("inline")
    );

    for (name, mime) in [("page.html", "text/html"), ("draw.svg", "image/svg+xml")] {
        let reply = ws.get(&Workspace::url("files/raw", name)).await;
        assert_eq!(reply.header(header::CONTENT_TYPE), mime, "{name}");
        assert!(
            reply
                .header(header::CONTENT_DISPOSITION)
                .starts_with("attachment"),
            "{name}"
        );
    }
    let odd = ws
        .get(&Workspace::url("files/raw", "résumé final.bin"))
        .await;
    assert_eq!(odd.header(header::CONTENT_TYPE), "application/octet-stream");
    assert_eq!(
        odd.header(header::CONTENT_DISPOSITION),
        "attachment; filename=\"r_sum_ final.bin\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20final.bin"
    );

    // ETag: strong, stable while the file is unchanged, 304 when matched.
    let etag = txt.header(header::ETAG);
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "{etag}"
    );
    let again = ws.get(&Workspace::url("files/raw", "notes.txt")).await;
    assert_eq!(again.header(header::ETAG), etag);
    let cached = ws
        .get_with(
            &Workspace::url("files/raw", "notes.txt"),
            header::IF_NONE_MATCH,
            &format!("\"other\", {etag}"),
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header(header::ETAG), etag);

    // A changed file (here: replaced through an upload) has a new tag.
    assert_eq!(
        ws.upload("", &[("notes.txt", b"changed\n")]).await.status,
        StatusCode::CREATED
    );
    let stale = ws
        .get_with(
            &Workspace::url("files/raw", "notes.txt"),
            header::IF_NONE_MATCH,
            &etag,
        )
        .await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(&stale.body[..], b"changed\n");
    assert_ne!(stale.header(header::ETAG), etag);

    // Downloads are always attachments.
    let download = ws.get(&Workspace::url("files/download", "pic.png")).await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(&download.body[..], b"\x89PNG\r\n\x1a\nfake");
    assert!(
        download
            .header(header::CONTENT_DISPOSITION)
            .starts_with("attachment; filename=\"pic.png\"")
    );
    assert_eq!(download.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
}

#[tokio::test]
async fn uploads_write_files_atomically_and_keep_permissions() {
    let ws = Workspace::start().await;
    write(&ws, "bin/run.sh", "#!/bin/sh\necho old\n");
    std::fs::set_permissions(
        ws.repo.join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    let reply = ws
        .upload(
            "bin",
            &[
                ("run.sh", b"#!/bin/sh\necho new\n"),
                ("new file.txt", b"hi"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
    assert_eq!(
        reply.json(),
        json!({"files": [
            {"name": "run.sh", "path": "bin/run.sh", "size": 19},
            {"name": "new file.txt", "path": "bin/new file.txt", "size": 2},
        ]})
    );
    assert_eq!(
        std::fs::read_to_string(ws.repo.join("bin/run.sh")).unwrap(),
        "#!/bin/sh\necho new\n"
    );
    let mode = std::fs::metadata(ws.repo.join("bin/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read(ws.repo.join("bin/new file.txt")).unwrap(),
        b"hi"
    );
    // No temporary file is left behind.
    assert_eq!(names(&ws, "bin"), ["new file.txt", "run.sh"]);

    // New files belong to the directory's owner, replaced ones keep theirs
    // (when the agent may give files away: as root).
    let shared = ws.repo.join("shared");
    std::fs::create_dir(&shared).unwrap();
    if std::os::unix::fs::chown(&shared, Some(4321), Some(4322)).is_ok() {
        std::fs::write(shared.join("theirs.txt"), "old").unwrap();
        std::os::unix::fs::chown(shared.join("theirs.txt"), Some(4444), Some(4445)).unwrap();
        let reply = ws
            .upload("shared", &[("new.txt", b"n"), ("theirs.txt", b"t")])
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        let owner = |name: &str| {
            let m = std::fs::metadata(shared.join(name)).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner("new.txt"), (4321, 4322));
        assert_eq!(owner("theirs.txt"), (4444, 4445));
    }

    // Into the root; a link in the target is replaced, never written through.
    symlink(ws.outside.join("victim"), ws.repo.join("trap")).unwrap();
    std::fs::write(ws.outside.join("victim"), "untouched").unwrap();
    let reply = ws.upload("", &[("trap", b"mine")]).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        std::fs::read_to_string(ws.outside.join("victim")).unwrap(),
        "untouched"
    );
    let trap = std::fs::symlink_metadata(ws.repo.join("trap")).unwrap();
    assert!(trap.is_file());
}

/// Target directory, files, expected status and code.
type Refusal<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, StatusCode, &'a str);

#[tokio::test]
async fn uploads_are_refused_whole() {
    let ws = Workspace::start().await;
    write(&ws, "dir/sub/keep.txt", "keep");
    write(&ws, ".git/config", "[core]\n");
    symlink(&ws.outside, ws.repo.join("out")).unwrap();
    symlink(".git", ws.repo.join("gitlink")).unwrap();
    let before = hash_tree(ws.tmp.path());

    let refusals: Vec<Refusal> = vec![
        // A directory is never replaced; the other file is not written either.
        (
            "dir",
            vec![("ok.txt", b"x"), ("sub", b"x")],
            StatusCode::CONFLICT,
            "is_a_directory",
        ),
        (
            ".git",
            vec![("x", b"x")],
            StatusCode::FORBIDDEN,
            "path_read_only",
        ),
        (
            ".GIT",
            vec![("x", b"x")],
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "gitlink",
            vec![("x", b"x")],
            StatusCode::FORBIDDEN,
            "path_read_only",
        ),
        (
            "",
            vec![(".git", b"x")],
            StatusCode::FORBIDDEN,
            "path_read_only",
        ),
        (
            "out",
            vec![("x", b"x")],
            StatusCode::FORBIDDEN,
            "path_outside_workspace",
        ),
        (
            "missing",
            vec![("x", b"x")],
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "dir/sub/keep.txt",
            vec![("x", b"x")],
            StatusCode::BAD_REQUEST,
            "not_a_directory",
        ),
        (
            "",
            vec![("a/b", b"x")],
            StatusCode::BAD_REQUEST,
            "path_invalid",
        ),
        (
            "",
            vec![("..", b"x")],
            StatusCode::BAD_REQUEST,
            "path_invalid",
        ),
        (
            "",
            vec![("a\\b", b"x")],
            StatusCode::BAD_REQUEST,
            "path_invalid",
        ),
        (
            "",
            vec![("tab\there", b"x")],
            StatusCode::BAD_REQUEST,
            "path_invalid",
        ),
        ("", vec![], StatusCode::BAD_REQUEST, "upload_invalid"),
    ];
    for (dir, files, status, code) in refusals {
        let reply = ws.upload(dir, &files).await;
        assert_eq!(reply.status, status, "{dir} {files:?}: {:?}", reply.json());
        assert_eq!(reply.code(), code, "{dir} {files:?}");
    }
    let not_multipart = ws
        .send(
            Request::builder()
                .method(Method::POST)
                .uri(Workspace::url("files/upload", ""))
                .header(header::AUTHORIZATION, format!("Bearer {}", ws.token))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(not_multipart.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_multipart.code(), "upload_invalid");
    assert_eq!(
        hash_tree(ws.tmp.path()),
        before,
        "a refused upload changed files"
    );
    assert_eq!(names(&ws, "dir"), ["sub"]);
}

#[tokio::test]
async fn uploads_are_limited_per_file_and_per_request() {
    let ws = Workspace::start().await;
    let before = hash_tree(&ws.repo);
    let mib = 1024 * 1024;

    // One byte over the per-file limit, after a file that was fine.
    let big = vec![b'x'; 25 * mib + 1];
    let reply = ws
        .upload("", &[("small.txt", b"ok"), ("big.bin", &big)])
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "upload_too_large");
    assert_eq!(hash_tree(&ws.repo), before);

    // Exactly at the per-file limit is fine.
    let limit = vec![b'y'; 25 * mib];
    let reply = ws.upload("", &[("limit.bin", &limit)]).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        std::fs::metadata(ws.repo.join("limit.bin")).unwrap().len(),
        25 * mib as u64
    );
    std::fs::remove_file(ws.repo.join("limit.bin")).unwrap();

    // Five files of 20.5 MiB: each fine, together over 100 MiB.
    let part = vec![b'z'; 20 * mib + mib / 2];
    let files: Vec<(String, &[u8])> = (0..5).map(|i| (format!("p{i}"), &part[..])).collect();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    let reply = ws.upload("", &files).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "upload_too_large");
    assert_eq!(hash_tree(&ws.repo), before);

    // A declared length far over the limit is refused before reading.
    let reply = ws
        .send(
            Request::builder()
                .method(Method::POST)
                .uri(Workspace::url("files/upload", ""))
                .header(header::AUTHORIZATION, format!("Bearer {}", ws.token))
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={}", workspace_fs::BOUNDARY),
                )
                .header(header::CONTENT_LENGTH, (200 * mib).to_string())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "upload_too_large");
}

#[tokio::test]
async fn links_out_of_the_checkout_are_never_followed() {
    let ws = Workspace::start().await;
    std::fs::write(ws.outside.join("secret.txt"), "TOP-SECRET").unwrap();
    // The registry's own `workspace.json`, next to the checkout, holds the
    // workspace's callback token.
    let ws_json = ws.repo.parent().unwrap().join("workspace.json");
    let record = std::fs::read_to_string(&ws_json).unwrap();
    assert!(record.contains(&ws.callback_token));
    symlink(ws.outside.join("secret.txt"), ws.repo.join("abs")).unwrap();
    symlink("../workspace.json", ws.repo.join("rel")).unwrap();
    symlink(&ws.outside, ws.repo.join("dir")).unwrap();
    symlink("/", ws.repo.join("slash")).unwrap();

    for route in ["files", "files/content", "files/raw", "files/download"] {
        for path in [
            "abs",
            "rel",
            "dir",
            "dir/secret.txt",
            "slash/etc/passwd",
            "dir/missing",
        ] {
            let reply = ws.get(&Workspace::url(route, path)).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{route} {path}");
            assert_eq!(reply.code(), "path_outside_workspace", "{route} {path}");
            let body = String::from_utf8_lossy(&reply.body);
            assert!(!body.contains("TOP-SECRET"));
            assert!(!body.contains(&ws.callback_token));
        }
    }
    let value: Value = ws.get(&Workspace::url("files", "")).await.json();
    assert_eq!(value["entries"].as_array().unwrap().len(), 4);
}

/// A second workspace, for the one test that creates one.
const NEW: &str = "01JAB3C4D5E6F7G8H9J0K1M2N5";

#[tokio::test]
async fn files_are_served_while_the_workspace_exists_and_is_not_changing() {
    let ws = Workspace::start().await;
    write(&ws, "a.txt", "still here\n");
    let routes = |id: &str| {
        [
            format!("/workspaces/{id}/files"),
            format!("/workspaces/{id}/files/content?path=a.txt"),
            format!("/workspaces/{id}/files/raw?path=a.txt"),
            format!("/workspaces/{id}/files/download?path=a.txt"),
            format!("/workspaces/{id}/git/diff"),
        ]
    };

    // Stopped: still readable (and writable).
    let reply = ws.post(&format!("/workspaces/{WS}/stop")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["workspace"]["status"], "stopped");
    for uri in &routes(WS)[..4] {
        assert_eq!(ws.get(uri).await.status, StatusCode::OK, "{uri}");
    }
    assert_eq!(
        ws.upload("", &[("b.txt", b"b")]).await.status,
        StatusCode::CREATED
    );

    // Being created: its checkout is not complete yet (a slow git server
    // holds the clone).
    ws.source.git.set_delay(std::time::Duration::from_secs(3));
    let body = ws.source.create_body(&ws.cp, &ws.key, NEW);
    let reply = ws.post_json("/workspaces", &body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    for uri in routes(NEW)
        .iter()
        .chain([&format!("/workspaces/{NEW}/git/status")])
    {
        let reply = ws.get(uri).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{uri}");
        assert_eq!(reply.code(), "workspace_not_ready", "{uri}");
    }
    let upload = ws
        .upload_to(
            &format!("/workspaces/{NEW}/files/upload?path="),
            &[("x.txt", b"x")],
        )
        .await;
    assert_eq!(upload.code(), "workspace_not_ready");
    // (Deleting it cancels the creation.)
    assert_eq!(
        ws.delete(&format!("/workspaces/{NEW}")).await.status,
        StatusCode::NO_CONTENT
    );
    ws.source.git.set_delay(std::time::Duration::ZERO);

    // Being deleted: going away. A process that ignores SIGTERM in the
    // checkout holds the deletion for the runtime's grace period.
    let mut stubborn = std::process::Command::new("/bin/sh")
        .args(["-c", "trap '' TERM; exec sleep 60"])
        .current_dir(&ws.repo)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let this = format!("/workspaces/{WS}");
    let delete = ws.delete(&this);
    let watch = async {
        let mut seen = Vec::new();
        for _ in 0..100 {
            let reply = ws.get(&routes(WS)[0]).await;
            if reply.code() == "workspace_not_ready" {
                for uri in &routes(WS) {
                    let reply = ws.get(uri).await;
                    seen.push((uri.clone(), reply.status, reply.code()));
                }
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        seen
    };
    let (deleted, seen) = tokio::join!(delete, watch);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(seen.len(), 5, "never saw the deletion: {seen:?}");
    for (uri, status, code) in seen {
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::CONFLICT, "workspace_not_ready"),
            "{uri}"
        );
    }
    assert!(!stubborn.wait().unwrap().success());

    // Gone: not found.
    for uri in &routes(WS) {
        let reply = ws.get(uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(reply.code(), "not_found", "{uri}");
    }
}
