//! `curl` as cloud-init scripts use it to fetch a binary: the download is
//! performed by devcloud itself, with curl's semantics for the usual flags
//! (`-f`, `-L`, `-o`, `-O`, `--retry`, `-H`, `-m`, `--create-dirs`, ...).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

use super::console::Console;
use super::net::Http;
use super::rootfs::RootFs;

/// `--retry` and friends.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Retry {
    pub count: u32,
    pub delay: Option<Duration>,
    pub on_connrefused: bool,
    pub on_all_errors: bool,
}

/// Where the body goes.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Output {
    /// No `-o`/`-O`: curl prints the body.
    #[default]
    Stdout,
    /// `-o PATH` (a guest path).
    Path(String),
    /// `-O`: the URL's file name in the working directory.
    RemoteName,
}

/// A parsed curl command line.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Curl {
    pub url: String,
    pub output: Output,
    pub fail: bool,
    pub follow: bool,
    pub create_dirs: bool,
    pub retry: Retry,
    pub max_time: Option<Duration>,
    pub headers: Vec<(String, String)>,
}

/// Flags that take no value and change nothing here (output/TLS/verbosity).
const INERT_FLAGS: &[&str] = &[
    "-s",
    "--silent",
    "-S",
    "--show-error",
    "-v",
    "--verbose",
    "-#",
    "--progress-bar",
    "--compressed",
    "-k",
    "--insecure",
    "-4",
    "--ipv4",
    "-6",
    "--ipv6",
    "--http1.1",
    "--http2",
    "--tlsv1.2",
    "--tlsv1.3",
    "-N",
    "--no-buffer",
    "-q",
];

/// Flags that take a value that changes nothing here.
const INERT_VALUED: &[&str] = &[
    "--proto",
    "--proto-redir",
    "--cacert",
    "--retry-max-time",
    "--connect-timeout",
    "-A",
    "--user-agent",
    "-w",
    "--write-out",
];

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0 && s.is_finite())
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("curl: {flag} expects seconds, got {value:?}"))
}

impl Curl {
    /// Parses curl's arguments (without the program name).
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut curl = Curl::default();
        let mut urls = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].as_str();
            i += 1;
            // Expand bundled short flags (`-fsSLo file`) into single ones.
            let flags: Vec<(String, Option<String>)> =
                if arg.starts_with('-') && !arg.starts_with("--") && arg.len() > 2 {
                    let mut out = Vec::new();
                    let chars: Vec<char> = arg[1..].chars().collect();
                    for (pos, c) in chars.iter().enumerate() {
                        let flag = format!("-{c}");
                        if matches!(c, 'o' | 'H' | 'm' | 'A' | 'w') {
                            let rest: String = chars[pos + 1..].iter().collect();
                            out.push((flag, (!rest.is_empty()).then_some(rest)));
                            break;
                        }
                        out.push((flag, None));
                    }
                    out
                } else if let Some((flag, value)) =
                    arg.split_once('=').filter(|_| arg.starts_with("--"))
                {
                    vec![(flag.to_owned(), Some(value.to_owned()))]
                } else {
                    vec![(arg.to_owned(), None)]
                };
            for (flag, inline) in flags {
                let mut value = || -> Result<String, String> {
                    if let Some(v) = inline.clone() {
                        return Ok(v);
                    }
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or_else(|| format!("curl: option {flag} needs a value"))?;
                    i += 1;
                    Ok(v)
                };
                match flag.as_str() {
                    "-f" | "--fail" | "--fail-with-body" => curl.fail = true,
                    "-L" | "--location" => curl.follow = true,
                    "--create-dirs" => curl.create_dirs = true,
                    "-O" | "--remote-name" => curl.output = Output::RemoteName,
                    "--retry-connrefused" => curl.retry.on_connrefused = true,
                    "--retry-all-errors" => curl.retry.on_all_errors = true,
                    "-o" | "--output" => curl.output = Output::Path(value()?),
                    "--retry" => {
                        let v = value()?;
                        curl.retry.count =
                            v.parse().map_err(|_| format!("curl: bad --retry {v:?}"))?;
                    }
                    "--retry-delay" => curl.retry.delay = Some(seconds(&flag, &value()?)?),
                    "-m" | "--max-time" => curl.max_time = Some(seconds(&flag, &value()?)?),
                    "-H" | "--header" => {
                        let v = value()?;
                        let (name, val) = v
                            .split_once(':')
                            .ok_or_else(|| format!("curl: bad header {v:?}"))?;
                        curl.headers
                            .push((name.trim().to_owned(), val.trim().to_owned()));
                    }
                    f if INERT_FLAGS.contains(&f) => {}
                    f if INERT_VALUED.contains(&f) => {
                        value()?;
                    }
                    f if f.starts_with('-') && f.len() > 1 => {
                        return Err(format!("curl: option {f} is not emulated"));
                    }
                    _ => urls.push(flag),
                }
            }
        }
        match urls.as_slice() {
            [url] => curl.url.clone_from(url),
            [] => return Err("curl: no URL given".into()),
            _ => return Err("curl: several URLs are not emulated".into()),
        }
        Ok(curl)
    }

    fn target(&self) -> Option<String> {
        match &self.output {
            Output::Stdout => None,
            Output::Path(path) => Some(path.clone()),
            Output::RemoteName => {
                let path = self.url.split(['?', '#']).next().unwrap_or_default();
                let name = path.rsplit('/').next().unwrap_or_default();
                Some(format!("/{name}"))
            }
        }
    }
}

/// One attempt's outcome; `transient` says whether `--retry` may repeat it.
struct Failure {
    message: String,
    transient: bool,
}

/// Runs the download, honouring retries. Output goes to the rebased path,
/// or to the console when curl would print to stdout.
pub(crate) async fn run(
    curl: &Curl,
    http: &Http,
    rootfs: &RootFs,
    console: &Console,
) -> Result<(), String> {
    let mut attempt = 0;
    loop {
        match attempt_once(curl, http, rootfs, console).await {
            Ok(()) => return Ok(()),
            Err(f) if f.transient && attempt < curl.retry.count => {
                // curl's default: 1 s, doubling each retry, capped at 10 min.
                let delay = curl.retry.delay.unwrap_or_else(|| {
                    Duration::from_secs(1u64 << attempt.min(9)).min(Duration::from_mins(10))
                });
                attempt += 1;
                console.line(format!(
                    "curl: {} (retry {attempt}/{} in {delay:?})",
                    f.message, curl.retry.count
                ));
                tokio::time::sleep(delay).await;
            }
            Err(f) => return Err(f.message),
        }
    }
}

async fn attempt_once(
    curl: &Curl,
    http: &Http,
    rootfs: &RootFs,
    console: &Console,
) -> Result<(), Failure> {
    let client = if curl.follow {
        &http.follow
    } else {
        &http.no_follow
    };
    let mut request = client.get(&curl.url);
    for (name, value) in &curl.headers {
        request = request.header(name, value);
    }
    if let Some(max) = curl.max_time {
        request = request.timeout(max);
    }
    let transport = |e: reqwest::Error| Failure {
        transient: curl.retry.on_all_errors
            || e.is_timeout()
            || (curl.retry.on_connrefused && e.is_connect()),
        message: format!("({}) {e}", curl.url),
    };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status();
    if curl.fail && (status.is_client_error() || status.is_server_error()) {
        return Err(Failure {
            message: format!(
                "(22) The requested URL returned error: {} for {}",
                status.as_u16(),
                curl.url
            ),
            transient: curl.retry.on_all_errors || is_transient_status(status),
        });
    }

    let Some(target) = curl.target() else {
        let body = response.bytes().await.map_err(transport)?;
        match std::str::from_utf8(&body) {
            Ok(text) if body.len() <= 4096 => console.line(format!("curl output: {text}")),
            _ => console.line(format!("curl: wrote {} bytes to stdout", body.len())),
        }
        return Ok(());
    };

    let path: PathBuf = rootfs.host_path(&target);
    let io_failure = |e: std::io::Error| Failure {
        message: format!("(23) writing {target}: {e}"),
        transient: false,
    };
    if curl.create_dirs
        && let Some(parent) = path.parent()
    {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io_failure)?;
    }
    let mut file = tokio::fs::File::create(&path).await.map_err(io_failure)?;
    let mut written = 0usize;
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        file.write_all(&chunk).await.map_err(io_failure)?;
        written += chunk.len();
    }
    file.flush().await.map_err(io_failure)?;
    console.line(format!(
        "curl: {} -> {target} ({written} bytes, HTTP {})",
        curl.url,
        status.as_u16()
    ));
    Ok(())
}

/// The HTTP statuses curl's `--retry` treats as transient.
fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Curl, String> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        Curl::parse(&args)
    }

    #[test]
    fn bundled_and_long_flags() {
        let c = parse("-fsSLo /usr/local/bin/agent --retry 5 --retry-delay 2 http://x/a").unwrap();
        assert!(c.fail && c.follow);
        assert_eq!(c.output, Output::Path("/usr/local/bin/agent".into()));
        assert_eq!(c.retry.count, 5);
        assert_eq!(c.retry.delay, Some(Duration::from_secs(2)));
        assert_eq!(c.url, "http://x/a");

        let c = parse("--fail --location --output=/tmp/f -H Authorization:Bearer%20x http://y")
            .unwrap();
        assert!(c.fail && c.follow);
        assert_eq!(c.output, Output::Path("/tmp/f".into()));
        assert_eq!(
            c.headers,
            [("Authorization".to_owned(), "Bearer%20x".to_owned())]
        );

        let c = parse("-s -o /a http://z --proto =https -m 30").unwrap();
        assert!(!c.fail && !c.follow);
        assert_eq!(c.max_time, Some(Duration::from_secs(30)));
    }

    #[test]
    fn remote_name_uses_url_basename() {
        let c = parse("-O http://h/dl/agent-x86_64?sig=1").unwrap();
        assert_eq!(c.target().as_deref(), Some("/agent-x86_64"));
    }

    #[test]
    fn refuses_what_it_cannot_emulate() {
        assert!(parse("-fsSL").is_err());
        assert!(parse("--data x http://h").is_err());
        assert!(parse("-o").is_err());
        assert!(parse("http://a http://b").is_err());
    }
}
