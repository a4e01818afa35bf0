//! cloud-init's `write_files` module: files with content, encoding,
//! permissions and append, written under the server's root.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::console::Console;
use super::rootfs::RootFs;

/// One `write_files` entry. `owner` (and any other key) is accepted and
/// ignored: everything on a devcloud server belongs to the devcloud user.
#[derive(Debug, Deserialize)]
pub(crate) struct WriteFile {
    path: String,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    permissions: Option<Value>,
    #[serde(default)]
    append: bool,
    /// Deferred files are written in cloud-init's final stage, which still
    /// precedes runcmd; only the order among files changes.
    #[serde(default)]
    pub defer: bool,
}

/// A YAML scalar as the string cloud-init would see.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Parses an octal mode given as `"0600"`, `"600"`, `"0o600"` or an
/// unquoted YAML number (whose digits are read as octal, which is what
/// the author of `permissions: 0644` meant).
pub(crate) fn parse_mode(raw: &str) -> Option<u32> {
    let digits = raw.trim().trim_start_matches("0o");
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

impl WriteFile {
    fn bytes(&self) -> Result<Vec<u8>, String> {
        let content = match &self.content {
            Some(v) => {
                scalar_text(v).ok_or_else(|| format!("{}: content is not text", self.path))?
            }
            None => String::new(),
        };
        match self.encoding.as_deref().unwrap_or("text/plain") {
            "text/plain" => Ok(content.into_bytes()),
            "b64" | "base64" => {
                let compact: String = content.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|e| format!("{}: bad base64 content: {e}", self.path))
            }
            other => Err(format!("{}: encoding {other:?} is not emulated", self.path)),
        }
    }

    fn mode(&self) -> Result<u32, String> {
        match &self.permissions {
            None => Ok(0o644),
            Some(v) => scalar_text(v)
                .as_deref()
                .and_then(parse_mode)
                .ok_or_else(|| format!("{}: bad permissions {v:?}", self.path)),
        }
    }

    pub(crate) fn apply(&self, rootfs: &RootFs, console: &Console) -> Result<(), String> {
        let bytes = self.bytes()?;
        let mode = self.mode()?;
        let host = rootfs.host_path(&self.path);
        let fail = |e: std::io::Error| format!("writing {}: {e}", self.path);
        if let Some(parent) = host.parent() {
            fs::create_dir_all(parent).map_err(fail)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&host)
            .map_err(fail)?;
        file.write_all(&bytes).map_err(fail)?;
        fs::set_permissions(&host, fs::Permissions::from_mode(mode)).map_err(fail)?;
        console.line(format!(
            "write_files: {} ({} bytes, mode {mode:04o}{})",
            self.path,
            bytes.len(),
            if self.append { ", appended" } else { "" }
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(yaml: &str) -> WriteFile {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0600"), Some(0o600));
        assert_eq!(parse_mode("755"), Some(0o755));
        assert_eq!(parse_mode("0o640"), Some(0o640));
        assert_eq!(parse_mode("0999"), None);
        assert_eq!(parse_mode("rw"), None);
        assert_eq!(entry("path: /a\npermissions: 0644").mode(), Ok(0o644));
        assert_eq!(entry("path: /a\npermissions: '0600'").mode(), Ok(0o600));
        assert_eq!(entry("path: /a").mode(), Ok(0o644));
    }

    #[test]
    fn encodings() {
        assert_eq!(entry("path: /a\ncontent: hi").bytes().unwrap(), b"hi");
        assert_eq!(
            entry("path: /a\nencoding: b64\ncontent: aGVs\n  bG8=")
                .bytes()
                .unwrap(),
            b"hello"
        );
        assert!(
            entry("path: /a\nencoding: gzip\ncontent: x")
                .bytes()
                .is_err()
        );
        assert!(
            entry("path: /a\nencoding: base64\ncontent: '!!'")
                .bytes()
                .is_err()
        );
    }

    #[test]
    fn writes_appends_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = RootFs::new(dir.path().join("root"));
        let console = Console::new(dir.path().join("console.log"), 1);
        entry("path: /etc/sam/a.env\ncontent: \"A=1\\n\"\npermissions: '0600'")
            .apply(&rootfs, &console)
            .unwrap();
        entry("path: /etc/sam/a.env\ncontent: \"B=2\\n\"\nappend: true\npermissions: '0600'")
            .apply(&rootfs, &console)
            .unwrap();
        let host = rootfs.host_path("/etc/sam/a.env");
        assert_eq!(fs::read_to_string(&host).unwrap(), "A=1\nB=2\n");
        assert_eq!(
            fs::metadata(&host).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        let log = fs::read_to_string(dir.path().join("console.log")).unwrap();
        assert!(log.contains("write_files: /etc/sam/a.env"), "{log}");
    }
}
