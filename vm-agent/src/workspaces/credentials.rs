//! Git credentials for workspaces, without ever writing a token down.
//!
//! Git is told to use `vm-agent git-credential --workspace <ID> --socket
//! <path>` as its only credential helper. That process (the same binary,
//! started by git) reads git's request on stdin, asks the running agent over
//! a Unix socket, and prints the answer for git. The agent fetches a fresh
//! short-lived token from the control plane for each request and hands it
//! over only for the host (and protocol) of the workspace's clone URL, so a
//! submodule or redirect pointing elsewhere gets nothing.
//!
//! The socket lives in a 0700 directory (`<fs_root>/run/sam/`), is itself
//! 0600, and the agent also checks that the peer runs as its own user.
//!
//! The protocol, one request per connection, both ways `key=value` lines
//! ended by an empty line:
//!
//! ```text
//! → sam-git-credential 1        ← status=ok
//!   action=get                    username=x-access-token
//!   workspace=<ID>                password=<token>
//!   protocol=https
//!   host=github.com             ← status=error
//!                                 code=<code>
//!                                 message=<text>
//! ```

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

use super::model::Secret;

/// First line of a request.
const MAGIC: &str = "sam-git-credential 1";
/// The user name GitHub (and our stand-ins) expect with an installation token.
pub const GIT_USERNAME: &str = "x-access-token";
/// Largest request or reply, in bytes.
const MAX_MESSAGE: usize = 16 * 1024;
/// How long the agent waits for a request once connected.
const SERVER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the helper waits for the agent (which may be retrying the
/// control plane).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// A credential request from the helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredentialRequest {
    pub(crate) workspace: String,
    pub(crate) protocol: String,
    pub(crate) host: String,
}

/// Why the agent gave no credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CredentialError {
    #[error("malformed request")]
    BadRequest,
    #[error("no such workspace")]
    UnknownWorkspace,
    #[error("credentials are only given for the workspace's repository host")]
    HostMismatch,
    #[error("no git token: {0}")]
    TokenUnavailable(String),
}

impl CredentialError {
    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownWorkspace => "unknown_workspace",
            Self::HostMismatch => "host_mismatch",
            Self::TokenUnavailable(_) => "token_unavailable",
        }
    }
}

/// Parses `key=value` lines (the first `=` splits); later keys win.
fn parse_pairs<'a>(lines: impl Iterator<Item = &'a str>) -> HashMap<&'a str, &'a str> {
    lines.filter_map(|line| line.split_once('=')).collect()
}

/// Reads a request (everything up to the empty line).
fn parse_request(text: &str) -> Result<CredentialRequest, CredentialError> {
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(CredentialError::BadRequest);
    }
    let pairs = parse_pairs(lines.take_while(|l| !l.is_empty()));
    let get = |key: &str| {
        pairs
            .get(key)
            .map(|v| (*v).to_owned())
            .filter(|v| !v.is_empty())
            .ok_or(CredentialError::BadRequest)
    };
    if pairs.get("action") != Some(&"get") {
        return Err(CredentialError::BadRequest);
    }
    Ok(CredentialRequest {
        workspace: get("workspace")?,
        protocol: get("protocol")?,
        host: get("host")?,
    })
}

fn format_request(request: &CredentialRequest) -> String {
    format!(
        "{MAGIC}\naction=get\nworkspace={}\nprotocol={}\nhost={}\n\n",
        request.workspace, request.protocol, request.host
    )
}

fn format_reply(reply: &Result<Secret, CredentialError>) -> String {
    match reply {
        Ok(token) => format!(
            "status=ok\nusername={GIT_USERNAME}\npassword={}\n\n",
            token.expose()
        ),
        Err(err) => format!("status=error\ncode={}\nmessage={err}\n\n", err.code()),
    }
}

/// Creates the socket's directory (0700, owned by us) and binds the socket
/// (0600), replacing a stale one.
pub(crate) fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the socket path has no directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != rustix::process::getuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory of the agent's user",
            dir.display()
        )));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves one connection: reads the request, checks the peer, answers with
/// what `answer` says.
pub(crate) async fn serve_connection<F, Fut>(stream: tokio::net::UnixStream, answer: F)
where
    F: FnOnce(CredentialRequest) -> Fut,
    Fut: Future<Output = Result<Secret, CredentialError>>,
{
    let same_user = stream
        .peer_cred()
        .is_ok_and(|cred| cred.uid() == rustix::process::getuid().as_raw());
    let (read, mut write) = stream.into_split();
    let reply = if same_user {
        match tokio::time::timeout(SERVER_READ_TIMEOUT, read_message(read)).await {
            Ok(Some(text)) => match parse_request(&text) {
                Ok(request) => answer(request).await,
                Err(err) => Err(err),
            },
            _ => Err(CredentialError::BadRequest),
        }
    } else {
        tracing::warn!("refused a git credential request from another user");
        Err(CredentialError::BadRequest)
    };
    if let Err(err) = &reply {
        tracing::info!(code = err.code(), %err, "git credential request refused");
    }
    let _ = write.write_all(format_reply(&reply).as_bytes()).await;
    let _ = write.shutdown().await;
}

/// Reads lines up to the first empty one (or EOF), at most [`MAX_MESSAGE`].
async fn read_message(read: tokio::net::unix::OwnedReadHalf) -> Option<String> {
    let mut reader = tokio::io::BufReader::new(read.take(MAX_MESSAGE as u64));
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await.ok()?;
        if n == 0 || line == "\n" {
            return Some(text);
        }
        text.push_str(&line);
    }
}

/// The helper's arguments.
#[derive(Debug, PartialEq, Eq)]
struct HelperArgs {
    workspace: String,
    socket: PathBuf,
    action: String,
}

fn parse_args(args: &[OsString]) -> Option<HelperArgs> {
    let mut workspace = None;
    let mut socket = None;
    let mut action = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("--workspace") => workspace = Some(iter.next()?.to_str()?.to_owned()),
            Some("--socket") => socket = Some(PathBuf::from(iter.next()?)),
            Some(other) if !other.starts_with('-') && action.is_none() => {
                action = Some(other.to_owned());
            }
            _ => return None,
        }
    }
    Some(HelperArgs {
        workspace: workspace?,
        socket: socket?,
        action: action?,
    })
}

/// `vm-agent git-credential --workspace <ID> --socket <path> <get|store|erase>`:
/// the credential helper git runs. Returns the process exit code. Only `get`
/// does anything; `store` and `erase` are acknowledged (the agent keeps no
/// credentials), other actions ignored, as git's helper protocol asks.
pub fn git_credential_main(
    args: &[OsString],
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let Some(args) = parse_args(args) else {
        let _ = writeln!(
            stderr,
            "usage: vm-agent git-credential --workspace <ID> --socket <path> <get|store|erase>"
        );
        return 2;
    };
    // Git's request: `key=value` lines up to an empty line or EOF.
    let mut request = String::new();
    for line in BufReader::new(stdin.take(MAX_MESSAGE as u64)).lines() {
        let Ok(line) = line else { break };
        if line.is_empty() {
            break;
        }
        request.push_str(&line);
        request.push('\n');
    }
    if args.action != "get" {
        return 0;
    }
    let pairs = parse_pairs(request.lines());
    let field = |key: &str| {
        pairs
            .get(key)
            .map(|v| (*v).to_owned())
            .filter(|v| !v.is_empty())
    };
    let (Some(protocol), Some(host)) = (field("protocol"), field("host")) else {
        let _ = writeln!(
            stderr,
            "vm-agent git-credential: git sent no protocol and host"
        );
        return 1;
    };
    let request = CredentialRequest {
        workspace: args.workspace,
        protocol,
        host,
    };
    if [&request.workspace, &request.protocol, &request.host]
        .iter()
        .any(|v| v.contains(['\n', '\r', '\0']))
    {
        let _ = writeln!(stderr, "vm-agent git-credential: malformed request");
        return 1;
    }
    match ask_agent(&args.socket, &request) {
        Ok(token) => {
            let written = write!(
                stdout,
                "username={GIT_USERNAME}\npassword={}\n",
                token.expose()
            );
            if written.and_then(|()| stdout.flush()).is_err() {
                return 1;
            }
            0
        }
        Err(message) => {
            let _ = writeln!(stderr, "vm-agent git-credential: {message}");
            1
        }
    }
}

/// Sends `request` to the agent and reads its answer.
fn ask_agent(socket: &Path, request: &CredentialRequest) -> Result<Secret, String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|err| format!("cannot reach the agent at {}: {err}", socket.display()))?;
    let io = |err: std::io::Error| format!("talking to the agent failed: {err}");
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    stream
        .write_all(format_request(request).as_bytes())
        .map_err(io)?;
    let mut reply = String::new();
    stream
        .take(MAX_MESSAGE as u64)
        .read_to_string(&mut reply)
        .map_err(io)?;
    let pairs = parse_pairs(reply.lines().take_while(|l| !l.is_empty()));
    match pairs.get("status") {
        Some(&"ok") => pairs
            .get("password")
            .filter(|p| !p.is_empty())
            .map(|p| Secret::new(*p))
            .ok_or_else(|| "the agent sent no password".to_owned()),
        Some(&"error") => Err(format!(
            "the agent refused: {} ({})",
            pairs.get("message").unwrap_or(&"no message"),
            pairs.get("code").unwrap_or(&"unknown")
        )),
        _ => Err("the agent sent a malformed reply".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn helper_arguments_end_with_git_s_action() {
        assert_eq!(
            parse_args(&os(&[
                "--workspace",
                "01J",
                "--socket",
                "/run/s.sock",
                "get"
            ])),
            Some(HelperArgs {
                workspace: "01J".to_owned(),
                socket: PathBuf::from("/run/s.sock"),
                action: "get".to_owned(),
            })
        );
        for bad in [
            &["--workspace", "01J", "get"][..],
            &["--socket", "/s", "get"],
            &["--workspace", "01J", "--socket", "/s"],
            &["--workspace", "01J", "--socket", "/s", "get", "extra"],
            &["--workspace", "01J", "--socket", "/s", "--bogus", "get"],
            &["--workspace"],
        ] {
            assert_eq!(parse_args(&os(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn requests_round_trip_and_junk_is_refused() {
        let request = CredentialRequest {
            workspace: "01JAB3C4D5E6F7G8H9J0K1M2N3".to_owned(),
            protocol: "https".to_owned(),
            host: "github.com:8443".to_owned(),
        };
        assert_eq!(parse_request(&format_request(&request)), Ok(request));
        for junk in [
            "",
            "action=get\nworkspace=x\nprotocol=https\nhost=h\n\n",
            "sam-git-credential 1\naction=store\nworkspace=x\nprotocol=https\nhost=h\n\n",
            "sam-git-credential 1\naction=get\nworkspace=x\nprotocol=https\n\n",
            "sam-git-credential 1\naction=get\nworkspace=x\nprotocol=\nhost=h\n\n",
        ] {
            assert_eq!(
                parse_request(junk),
                Err(CredentialError::BadRequest),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn replies_carry_the_token_or_the_reason() {
        assert_eq!(
            format_reply(&Ok(Secret::new("tok"))),
            "status=ok\nusername=x-access-token\npassword=tok\n\n"
        );
        assert_eq!(
            format_reply(&Err(CredentialError::HostMismatch)),
            "status=error\ncode=host_mismatch\nmessage=credentials are only given for the workspace's repository host\n\n"
        );
    }

    #[test]
    fn store_erase_and_unknown_actions_do_nothing() {
        for action in ["store", "erase", "frobnicate"] {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let code = git_credential_main(
                &os(&["--workspace", "W", "--socket", "/nonexistent.sock", action]),
                &mut "protocol=https\nhost=h\nusername=u\npassword=p\n\n".as_bytes(),
                &mut out,
                &mut err,
            );
            assert_eq!(code, 0, "{action}");
            assert!(out.is_empty() && err.is_empty(), "{action}");
        }
    }

    #[test]
    fn get_without_an_agent_fails_without_output() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = git_credential_main(
            &os(&[
                "--workspace",
                "W",
                "--socket",
                "/nonexistent/agent.sock",
                "get",
            ]),
            &mut "protocol=https\nhost=github.com\n\n".as_bytes(),
            &mut out,
            &mut err,
        );
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(String::from_utf8_lossy(&err).contains("cannot reach the agent"));
        // Bad usage is exit code 2.
        assert_eq!(
            git_credential_main(&[], &mut "".as_bytes(), &mut out, &mut err),
            2
        );
    }

    #[tokio::test]
    async fn the_helper_gets_the_token_the_agent_answers_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/sam/git-credential.sock");
        let listener = bind(&path).unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                serve_connection(stream, |req: CredentialRequest| async move {
                    if req.host == "github.com" && req.protocol == "https" && req.workspace == "W1"
                    {
                        Ok(Secret::new("ghs_tokenvalue"))
                    } else {
                        Err(CredentialError::HostMismatch)
                    }
                })
                .await;
            }
        });
        let socket = path.clone();
        let (ok, refused) = tokio::task::spawn_blocking(move || {
            let run = |host: &str| {
                let mut out = Vec::new();
                let mut err = Vec::new();
                let code = git_credential_main(
                    &[
                        "--workspace".into(),
                        "W1".into(),
                        "--socket".into(),
                        socket.clone().into_os_string(),
                        "get".into(),
                    ],
                    &mut format!("protocol=https\nhost={host}\nwwwauth[]=Basic realm=\"x\"\n\n")
                        .as_bytes(),
                    &mut out,
                    &mut err,
                );
                (
                    code,
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(err).unwrap(),
                )
            };
            (run("github.com"), run("evil.example"))
        })
        .await
        .unwrap();
        server.await.unwrap();
        assert_eq!(
            ok,
            (
                0,
                "username=x-access-token\npassword=ghs_tokenvalue\n".to_owned(),
                String::new()
            )
        );
        assert_eq!(refused.0, 1);
        assert!(refused.1.is_empty());
        assert!(refused.2.contains("host_mismatch"), "{}", refused.2);

        // Binding again replaces the stale socket.
        drop(bind(&path).unwrap());
    }
}
