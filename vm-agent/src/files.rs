//! A workspace's files over HTTP, confined to its checkout (see
//! [`crate::confine`] for how paths are checked and opened).
//!
//! Every route first authorises the request for the workspace
//! ([`authorize_workspace`]); then `?path=` (percent-decoded exactly once by
//! the query extractor, and never again) is resolved under the checkout the
//! workspace registry names ([`workspace_checkout`]: an unknown workspace is
//! 404 `not_found`, one being created or deleted 409 `workspace_not_ready`).
//!
//! - `GET /workspaces/{id}/files?path=<dir>` lists a directory (the root if
//!   `path` is absent or empty): `{path, entries: [{name, kind, size,
//!   modified}], truncated}`, sorted by name, hidden entries included.
//!   `kind` is `file`, `dir`, `symlink` (the link itself, not followed) or
//!   `other`; `size` is in bytes; `modified` is Unix milliseconds. At most
//!   [`MAX_ENTRIES`] entries; `truncated` says whether there were more.
//! - `GET …/files/content?path=` a text file as JSON: `{path, size, text?,
//!   binary, truncated}`; at most [`MAX_VIEW_BYTES`] are read (`truncated`
//!   if the file is longer); `text` is absent when the content is binary (a
//!   NUL byte or invalid UTF-8).
//! - `GET …/files/raw?path=` the bytes, typed by extension, `inline` only
//!   for images and plain text, `attachment` otherwise; with `nosniff`, a
//!   sandboxing CSP, and a strong `ETag` (honouring `If-None-Match` → 304).
//! - `GET …/files/download?path=` the same, always as an attachment.
//! - `POST …/files/upload?path=<dir>` `multipart/form-data`: every part with
//!   a file name is written into the existing directory `path` under that
//!   name (one component: no separators, no control characters). Each file
//!   goes to a temporary file in the same directory first; only when the
//!   whole request has been received (and no target is a directory) are
//!   they renamed into place, so a reader never sees half a file and a
//!   request refused for its content, size or targets writes nothing. An
//!   existing file is replaced (keeping its permissions and owner; a new
//!   file gets the directory's owner when the agent may give it away), a
//!   directory never; a link is replaced itself, never written through. Limits: [`MAX_UPLOAD_FILE_BYTES`] per file and
//!   [`MAX_UPLOAD_REQUEST_BYTES`] per request (413 `upload_too_large`).
//!   → 201 `{files: [{name, path, size}]}`.
//!
//! `.git` (in any case, at any depth) can be listed and read but never
//! written (403 `path_read_only`). Errors are the API's JSON bodies with
//! stable codes: `path_invalid` (400), `path_outside_workspace` (403),
//! `not_found` (404), `not_a_directory`/`not_a_file` (400),
//! `is_a_directory` (409), `upload_too_large` (413), `upload_invalid` (400).

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{File, Metadata};
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::access::authorize_workspace;
use crate::confine::{self, ConfineError, RelPath, Resolve, Root};
use crate::server::{ApiError, AppState};
use crate::workspaces::WorkspaceStatus;

/// A listing stops after this many entries.
pub const MAX_ENTRIES: usize = 10_000;
/// `/files/content` reads at most this much.
pub const MAX_VIEW_BYTES: u64 = 1024 * 1024;
pub const MAX_UPLOAD_FILE_BYTES: u64 = 25 * 1024 * 1024;
pub const MAX_UPLOAD_REQUEST_BYTES: u64 = 100 * 1024 * 1024;
/// Room for multipart boundaries and part headers on top of the payload.
const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

/// The checkout of workspace `id` (already normalised), as the workspace
/// registry knows it: 404 `not_found` for a workspace it does not know, 409
/// `workspace_not_ready` while the workspace is being created (its checkout
/// is not complete) or deleted (it is going away). A stopped or failed
/// workspace's files stay readable.
pub(crate) async fn workspace_checkout(state: &AppState, id: &str) -> Result<PathBuf, ApiError> {
    let info = state.workspaces.get(id).await.ok_or_else(no_workspace)?;
    match info.view.status {
        status @ (WorkspaceStatus::Creating | WorkspaceStatus::Deleting) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "workspace_not_ready",
            &format!("the workspace is {}", status.as_str()),
        )),
        WorkspaceStatus::Running | WorkspaceStatus::Stopped | WorkspaceStatus::Error => {
            Ok(info.repo_dir)
        }
    }
}

/// The file routes, to merge into the agent's router.
pub(crate) fn routes() -> Router<AppState> {
    let body_limit =
        usize::try_from(MAX_UPLOAD_REQUEST_BYTES + MULTIPART_OVERHEAD).unwrap_or(usize::MAX);
    Router::new()
        .route("/workspaces/{id}/files", get(list))
        .route("/workspaces/{id}/files/content", get(content))
        .route("/workspaces/{id}/files/raw", get(raw))
        .route("/workspaces/{id}/files/download", get(download))
        .route(
            "/workspaces/{id}/files/upload",
            post(upload).layer(DefaultBodyLimit::max(body_limit)),
        )
}

#[derive(Deserialize)]
struct PathQuery {
    path: Option<String>,
}

/// Authorises the request, then opens the workspace's checkout and parses
/// `?path=`. The id and the query are looked at only after the token.
async fn open_request(
    state: &AppState,
    headers: &HeaderMap,
    raw_id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<(PathBuf, RelPath), ApiError> {
    let raw_id = raw_id.map_or_else(|_| String::new(), |UrlPath(id)| id);
    let id = authorize_workspace(state, headers, &raw_id).await?;
    let Query(query) = query.map_err(|rejection| invalid_query(&rejection))?;
    let rel = RelPath::parse(query.path.as_deref().unwrap_or("")).map_err(confine_error)?;
    let root = workspace_checkout(state, &id).await?;
    Ok((root, rel))
}

fn no_workspace() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such workspace")
}

pub(crate) fn invalid_query(rejection: &QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        &rejection.body_text(),
    )
}

/// The API error for a refused or failed path.
pub(crate) fn confine_error(err: ConfineError) -> ApiError {
    let (code, message) = (err.code(), err.to_string());
    let status = match err {
        ConfineError::Invalid(_) | ConfineError::NotADirectory | ConfineError::NotAFile => {
            StatusCode::BAD_REQUEST
        }
        ConfineError::Outside | ConfineError::PermissionDenied => StatusCode::FORBIDDEN,
        ConfineError::NotFound => StatusCode::NOT_FOUND,
        ConfineError::Io(io) => {
            // The message may name host paths: logged, never returned.
            tracing::warn!(error = %io, "file system error in a workspace");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    ApiError::new(status, code, &message)
}

fn read_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "path_read_only",
        "the .git directory is never written through the file routes",
    )
}

fn internal() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the request failed",
    )
}

/// Runs blocking file system work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| internal())?
}

// ---------------------------------------------------------------- listing

#[derive(Serialize)]
struct Listing {
    path: String,
    entries: Vec<Entry>,
    truncated: bool,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    kind: &'static str,
    size: u64,
    modified: i64,
}

async fn list(
    State(state): State<AppState>,
    raw_id: Result<UrlPath<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<Json<Listing>, ApiError> {
    let (root, rel) = open_request(&state, &headers, raw_id, query).await?;
    blocking(move || list_dir(&root, &rel).map_err(confine_error))
        .await
        .map(Json)
}

fn list_dir(root: &Path, rel: &RelPath) -> Result<Listing, ConfineError> {
    let root = Root::open(root)?;
    let resolved = root.resolve(rel, Resolve::Existing)?;
    let dir = root.open_dir(&resolved)?;
    let mut entries = Vec::new();
    let mut truncated = false;
    for entry in rustix::fs::Dir::read_from(&dir)? {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            truncated = true;
            break;
        }
        // Gone since the directory was read: skip it.
        let Some(metadata) = confine::entry_metadata(&dir, name)? else {
            continue;
        };
        entries.push(Entry {
            name: name.to_string_lossy().into_owned(),
            kind: kind(&metadata),
            size: metadata.len(),
            modified: modified_ms(&metadata),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Listing {
        path: rel.as_str(),
        entries,
        truncated,
    })
}

fn kind(metadata: &Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_dir() {
        "dir"
    } else if file_type.is_file() {
        "file"
    } else {
        "other"
    }
}

fn modified_ms(metadata: &Metadata) -> i64 {
    metadata
        .mtime()
        .saturating_mul(1000)
        .saturating_add(metadata.mtime_nsec() / 1_000_000)
}

// ---------------------------------------------------------------- viewing

#[derive(Serialize)]
struct Content {
    path: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    binary: bool,
    truncated: bool,
}

async fn content(
    State(state): State<AppState>,
    raw_id: Result<UrlPath<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<Json<Content>, ApiError> {
    let (root, rel) = open_request(&state, &headers, raw_id, query).await?;
    blocking(move || view(&root, &rel).map_err(confine_error))
        .await
        .map(Json)
}

fn view(root: &Path, rel: &RelPath) -> Result<Content, ConfineError> {
    let (file, metadata) = open_existing_file(root, rel)?;
    let mut bytes = Vec::new();
    file.take(MAX_VIEW_BYTES).read_to_end(&mut bytes)?;
    let truncated = metadata.len() > MAX_VIEW_BYTES;
    let text = decode_text(bytes, truncated);
    Ok(Content {
        path: rel.as_str(),
        size: metadata.len(),
        binary: text.is_none(),
        text,
        truncated,
    })
}

/// The text in `bytes`, or `None` if they look binary: a NUL, or invalid
/// UTF-8 anywhere but a character cut off by truncation at the very end.
fn decode_text(mut bytes: Vec<u8>, truncated: bool) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    match std::str::from_utf8(&bytes) {
        Ok(_) => {}
        Err(err) if truncated && err.error_len().is_none() => bytes.truncate(err.valid_up_to()),
        Err(_) => return None,
    }
    String::from_utf8(bytes).ok()
}

fn open_existing_file(root: &Path, rel: &RelPath) -> Result<(File, Metadata), ConfineError> {
    let root = Root::open(root)?;
    let resolved = root.resolve(rel, Resolve::Existing)?;
    root.open_file(&resolved)
}

// ---------------------------------------------------------------- raw bytes

async fn raw(
    State(state): State<AppState>,
    raw_id: Result<UrlPath<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    serve(&state, raw_id, &headers, query, Disposition::BySafety).await
}

async fn download(
    State(state): State<AppState>,
    raw_id: Result<UrlPath<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    serve(&state, raw_id, &headers, query, Disposition::Attachment).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Disposition {
    BySafety,
    Attachment,
}

async fn serve(
    state: &AppState,
    raw_id: Result<UrlPath<String>, PathRejection>,
    headers: &HeaderMap,
    query: Result<Query<PathQuery>, QueryRejection>,
    disposition: Disposition,
) -> Result<Response, ApiError> {
    let (root, rel) = open_request(state, headers, raw_id, query).await?;
    let name = rel.components().last().cloned().unwrap_or_default();
    let (file, metadata) =
        blocking(move || open_existing_file(&root, &rel).map_err(confine_error)).await?;
    let etag = etag(&metadata);
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let size = metadata.len();
        let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), size);
        let mut response =
            Body::from_stream(tokio_util::io::ReaderStream::new(reader)).into_response();
        let mime = mime_guess::from_path(&name).first_or_octet_stream();
        let inline = disposition == Disposition::BySafety && safe_inline(&mime);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, content_type(&mime));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        headers.insert(
            header::CONTENT_DISPOSITION,
            content_disposition(inline, &name),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Whatever a file is, it never runs as a page of the workspace's origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

/// A strong validator for the file's current version: a digest of its
/// identity (device, inode), size and modification time. An upload replaces
/// a file by rename (a new inode), and an edit changes mtime.
fn etag(metadata: &Metadata) -> String {
    let mut hash = Sha256::new();
    for part in [
        metadata.dev(),
        metadata.ino(),
        metadata.size(),
        metadata.mtime().cast_unsigned(),
        metadata.mtime_nsec().cast_unsigned(),
        metadata.ctime().cast_unsigned(),
        metadata.ctime_nsec().cast_unsigned(),
    ] {
        hash.update(part.to_le_bytes());
    }
    format!("\"{}\"", hex::encode(&hash.finalize()[..16]))
}

/// Whether `If-None-Match` matches `etag` (weak comparison, as RFC 9110
/// prescribes for this header).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// Types a browser may show in place without running anything: raster
/// images and plain text. (SVG can carry script, so it is not one.)
fn safe_inline(mime: &mime_guess::Mime) -> bool {
    matches!(
        mime.essence_str(),
        "text/plain"
            | "image/png"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/avif"
            | "image/bmp"
            | "image/x-icon"
            | "image/vnd.microsoft.icon"
    )
}

fn content_type(mime: &mime_guess::Mime) -> HeaderValue {
    let value = if mime.essence_str() == "text/plain" {
        "text/plain; charset=utf-8".to_owned()
    } else {
        mime.essence_str().to_owned()
    };
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// `inline` or `attachment`, with the file name both as a plain ASCII
/// fallback and RFC 8187-encoded.
fn content_disposition(inline: bool, name: &str) -> HeaderValue {
    let kind = if inline { "inline" } else { "attachment" };
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    let value = if name.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

// ---------------------------------------------------------------- uploads

#[derive(Serialize)]
struct Uploaded {
    files: Vec<UploadedFile>,
}

#[derive(Serialize)]
struct UploadedFile {
    name: String,
    path: String,
    size: u64,
}

/// A file received into a temporary name in the target directory.
struct Staged {
    temp: OsString,
    name: String,
    file: Option<File>,
    size: u64,
}

fn too_large(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        &format!(
            "{what}: at most {} MiB per file and {} MiB per request",
            MAX_UPLOAD_FILE_BYTES >> 20,
            MAX_UPLOAD_REQUEST_BYTES >> 20
        ),
    )
}

fn invalid_upload(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "upload_invalid", message)
}

fn multipart_error(err: &MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large("the request is too large")
    } else {
        invalid_upload(&err.body_text())
    }
}

async fn upload(
    State(state): State<AppState>,
    raw_id: Result<UrlPath<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<PathQuery>, QueryRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let (root, rel) = open_request(&state, &headers, raw_id, query).await?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_UPLOAD_REQUEST_BYTES + MULTIPART_OVERHEAD) {
        return Err(too_large("the request is too large"));
    }
    let mut multipart = multipart.map_err(|rejection| invalid_upload(&rejection.body_text()))?;
    let dir = blocking(move || {
        let root = Root::open(&root).map_err(confine_error)?;
        let resolved = root
            .resolve(&rel, Resolve::Existing)
            .map_err(confine_error)?;
        if resolved.in_git_dir() {
            return Err(read_only());
        }
        let dir = root.open_dir(&resolved).map_err(confine_error)?;
        Ok((rel, Arc::new(dir)))
    })
    .await;
    let (rel, dir) = dir?;

    let mut staged = Vec::new();
    let received = receive(&mut multipart, &dir, &rel, &mut staged).await;
    let committed = match received {
        Ok(()) if staged.is_empty() => Err(invalid_upload("no file in the request")),
        Ok(()) => {
            let dir = Arc::clone(&dir);
            let rel = rel.clone();
            blocking(move || commit(&dir, &rel, staged)).await
        }
        Err(err) => {
            let dir = Arc::clone(&dir);
            let temps = staged.into_iter().map(|s| s.temp).collect();
            // Best effort: a leftover temporary name is harmless.
            let _ = blocking(move || {
                discard(&dir, temps);
                Ok(())
            })
            .await;
            Err(err)
        }
    };
    committed.map(|files| (StatusCode::CREATED, Json(Uploaded { files })).into_response())
}

/// Receives every file part into a temporary file in `dir`, recording each
/// in `staged` as soon as it exists (so a failure can remove it).
async fn receive(
    multipart: &mut Multipart,
    dir: &Arc<OwnedFd>,
    rel: &RelPath,
    staged: &mut Vec<Staged>,
) -> Result<(), ApiError> {
    let mut total = 0u64;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|err| multipart_error(&err))?
    {
        // Parts without a file name are form fields, not files.
        let Some(name) = field.file_name().map(str::to_owned) else {
            continue;
        };
        let path = rel.join_new(&name).map_err(confine_error)?;
        if name.eq_ignore_ascii_case(".git") {
            return Err(read_only());
        }
        let target = Arc::clone(dir);
        let (temp, file) = blocking(move || create_temp(&target).map_err(confine_error)).await?;
        staged.push(Staged {
            temp,
            name,
            file: None,
            size: 0,
        });
        let mut writer = tokio::fs::File::from_std(file);
        let mut size = 0u64;
        while let Some(chunk) = field.chunk().await.map_err(|err| multipart_error(&err))? {
            let len = chunk.len() as u64;
            size += len;
            total += len;
            if size > MAX_UPLOAD_FILE_BYTES {
                return Err(too_large(&format!("{} is too large", path.as_str())));
            }
            if total > MAX_UPLOAD_REQUEST_BYTES {
                return Err(too_large("the request is too large"));
            }
            writer.write_all(&chunk).await.map_err(|err| {
                tracing::warn!(error = %err, "writing an upload failed");
                internal()
            })?;
        }
        writer.flush().await.map_err(|_| internal())?;
        let file = writer.into_std().await;
        if let Some(last) = staged.last_mut() {
            last.file = Some(file);
            last.size = size;
        }
    }
    Ok(())
}

/// Creates a fresh temporary file in `dir` (never following a link).
fn create_temp(dir: &OwnedFd) -> Result<(OsString, File), ConfineError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let temp = OsString::from(format!(
            ".sam-upload-{}-{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match rustix::fs::openat(
            dir,
            temp.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        ) {
            Ok(fd) => return Ok((temp, File::from(fd))),
            Err(rustix::io::Errno::EXIST) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Moves every staged file to its name: first checks that none would
/// replace a directory, then syncs and renames each.
fn commit(
    dir: &OwnedFd,
    rel: &RelPath,
    staged: Vec<Staged>,
) -> Result<Vec<UploadedFile>, ApiError> {
    let temps = |staged: Vec<Staged>| staged.into_iter().map(|s| s.temp).collect();
    let mut existing = Vec::with_capacity(staged.len());
    let mut refusal = None;
    for item in &staged {
        match confine::entry_metadata(dir, OsStr::new(&item.name)) {
            Ok(Some(metadata)) if metadata.is_dir() => {
                refusal = Some(is_a_directory(&item.name));
                break;
            }
            Ok(metadata) => existing.push(metadata),
            Err(err) => {
                refusal = Some(confine_error(err));
                break;
            }
        }
    }
    if let Some(refusal) = refusal {
        discard(dir, temps(staged));
        return Err(refusal);
    }
    // New files belong to whoever owns the directory (the workspace's user,
    // when the agent runs as root).
    let dir_owner = rustix::fs::fstat(dir)
        .map(|stat| (stat.st_uid, stat.st_gid))
        .ok();
    let mut done = Vec::with_capacity(staged.len());
    let mut staged = staged.into_iter();
    while let Some(item) = staged.next() {
        let existing = existing.get(done.len()).and_then(Option::as_ref);
        if let Err(err) = finish(dir, &item, existing, dir_owner) {
            let mut left: Vec<OsString> = temps(staged.collect());
            left.push(item.temp);
            discard(dir, left);
            return Err(err);
        }
        done.push(UploadedFile {
            path: rel.join_new(&item.name).map_err(confine_error)?.as_str(),
            name: item.name,
            size: item.size,
        });
    }
    Ok(done)
}

fn is_a_directory(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "is_a_directory",
        &format!("{name} is a directory"),
    )
}

fn finish(
    dir: &OwnedFd,
    item: &Staged,
    existing: Option<&Metadata>,
    dir_owner: Option<(u32, u32)>,
) -> Result<(), ApiError> {
    let io_failed = |err: std::io::Error| confine_error(ConfineError::from(err));
    if let Some(file) = &item.file {
        // A replaced regular file keeps its permissions (an executable
        // script stays executable) and its owner.
        let existing = existing.filter(|m| m.is_file());
        let owner = existing.map(|m| (m.uid(), m.gid())).or(dir_owner);
        if let (Some((uid, gid)), Ok(metadata)) = (owner, file.metadata())
            && (metadata.uid(), metadata.gid()) != (uid, gid)
        {
            // Only a privileged agent may give a file away; otherwise the
            // file stays the agent's, which is then the workspace's user.
            if let Err(err) = rustix::fs::fchown(
                file,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            ) {
                tracing::debug!(error = %err, "could not hand an upload to its owner");
            }
        }
        // After the owner: giving a file away clears set-id bits.
        if let Some(existing) = existing {
            file.set_permissions(existing.permissions())
                .map_err(io_failed)?;
        }
        file.sync_all().map_err(io_failed)?;
    }
    rustix::fs::renameat(dir, item.temp.as_os_str(), dir, item.name.as_str()).map_err(|errno| {
        match errno {
            rustix::io::Errno::ISDIR | rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST => {
                is_a_directory(&item.name)
            }
            other => confine_error(other.into()),
        }
    })
}

fn discard(dir: &OwnedFd, temps: Vec<OsString>) {
    for temp in temps {
        let _ = rustix::fs::unlinkat(dir, temp.as_os_str(), rustix::fs::AtFlags::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_told_from_binary() {
        assert_eq!(
            decode_text(b"hello\n".to_vec(), false).as_deref(),
            Some("hello\n")
        );
        assert_eq!(decode_text(b"a\0b".to_vec(), false), None);
        assert_eq!(decode_text(vec![0xff, 0xfe], false), None);
        // A multi-byte character cut by truncation is dropped, not binary.
        let mut cut = "é".repeat(3).into_bytes();
        cut.pop();
        assert_eq!(decode_text(cut.clone(), true).as_deref(), Some("éé"));
        assert_eq!(decode_text(cut, false), None);
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(if_none_match(&headers, "\"a\""));
        assert!(if_none_match(&headers, "\"b\""));
        assert!(!if_none_match(&headers, "\"c\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&headers, "\"c\""));
    }

    #[test]
    fn dispositions_are_safe_header_values() {
        let value = content_disposition(false, "r\u{e9}sum\u{e9} \"1\"\n.pdf");
        assert_eq!(
            value.to_str().unwrap(),
            "attachment; filename=\"r_sum_ _1__.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22%0A.pdf"
        );
        assert_eq!(
            content_disposition(true, "a.png").to_str().unwrap(),
            "inline; filename=\"a.png\"; filename*=UTF-8''a.png"
        );
        assert!(safe_inline(
            &mime_guess::from_path("a.png").first_or_octet_stream()
        ));
        assert!(safe_inline(
            &mime_guess::from_path("a.txt").first_or_octet_stream()
        ));
        for name in ["a.svg", "a.html", "a.js", "a", "a.pdf"] {
            assert!(
                !safe_inline(&mime_guess::from_path(name).first_or_octet_stream()),
                "{name}"
            );
        }
    }
}
