//! Interpreting user-data: a `#cloud-config` document's `write_files` and
//! `runcmd`, in cloud-init's order. Other modules are reported on the
//! console as not emulated. The first failing step fails the boot, which
//! leaves a running machine with no agent — what a control plane must
//! detect on real VMs too.

use serde_yaml_ng::{Mapping, Value};

use super::commands::{self, Guest, Services};
use super::words;
use super::write_files::{WriteFile, scalar_text};

/// A `runcmd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Argv(Vec<String>),
    /// A string entry needing a real shell (pipes, redirects, expansions).
    Shell(String),
}

fn runcmd_entry(value: &Value) -> Result<Command, String> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .map(|v| scalar_text(v).ok_or_else(|| format!("runcmd: non-scalar argument {v:?}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Command::Argv),
        Value::String(line) => {
            const SHELL_SYNTAX: &[&str] = &["&&", "||", "|", ";", ">", "<", "$", "`", "*", "\n"];
            if SHELL_SYNTAX.iter().any(|s| line.contains(s)) {
                Ok(Command::Shell(line.clone()))
            } else {
                words::split(line)
                    .map(Command::Argv)
                    .map_err(|e| e.to_string())
            }
        }
        other => Err(format!("runcmd: unsupported entry {other:?}")),
    }
}

/// Runs user-data. `Ok` also covers user-data that is not cloud-config:
/// cloud-init would ignore parts it does not handle, and so does devcloud.
pub(crate) async fn run<S: Services>(user_data: &str, guest: &Guest<'_, S>) -> Result<(), String> {
    let console = guest.console;
    if user_data.trim().is_empty() {
        console.line("no user-data");
        return Ok(());
    }
    if !user_data.starts_with("#cloud-config") {
        let kind = if user_data.starts_with("#!") {
            "shell-script user-data"
        } else {
            "user-data that is not #cloud-config"
        };
        console.line(format!("not emulated: {kind}"));
        return Ok(());
    }
    let doc: Value = serde_yaml_ng::from_str(user_data)
        .map_err(|e| format!("cloud-config is not valid YAML: {e}"))?;
    let config = match doc {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        _ => return Err("cloud-config is not a mapping".into()),
    };

    for key in config.keys() {
        let name = scalar_text(key).unwrap_or_default();
        if !matches!(name.as_str(), "write_files" | "runcmd") {
            console.line(format!("not emulated: cloud-config module {name:?}"));
        }
    }

    if let Some(files) = config.get("write_files") {
        let files: Vec<WriteFile> =
            serde_yaml_ng::from_value(files.clone()).map_err(|e| format!("write_files: {e}"))?;
        // Non-deferred files are written in the init stage, deferred ones in
        // the final stage; both precede runcmd.
        for file in files
            .iter()
            .filter(|f| !f.defer)
            .chain(files.iter().filter(|f| f.defer))
        {
            file.apply(guest.rootfs, console)?;
        }
    }

    if let Some(runcmd) = config.get("runcmd") {
        let Value::Sequence(entries) = runcmd else {
            return Err("runcmd is not a list".into());
        };
        for entry in entries {
            match runcmd_entry(entry)? {
                Command::Argv(argv) => {
                    console.line(format!("runcmd: {}", argv.join(" ")));
                    commands::run(guest, &argv).await?;
                }
                Command::Shell(line) => {
                    console.line(format!("not emulated: {line}"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(yaml: &str) -> Command {
        runcmd_entry(&serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn runcmd_forms() {
        assert_eq!(
            entry("[chmod, '0755', /usr/local/bin/a]"),
            Command::Argv(vec![
                "chmod".into(),
                "0755".into(),
                "/usr/local/bin/a".into()
            ])
        );
        assert_eq!(
            entry("\"systemctl enable --now 'sam agent'\""),
            Command::Argv(vec![
                "systemctl".into(),
                "enable".into(),
                "--now".into(),
                "sam agent".into()
            ])
        );
        assert!(matches!(entry("\"curl x | sh\""), Command::Shell(_)));
        assert!(matches!(entry("\"echo $HOME\""), Command::Shell(_)));
    }

    #[test]
    fn unquoted_octal_survives_yaml() {
        // Whatever number type the YAML parser picks, the digits the author
        // wrote must reach chmod unchanged.
        assert_eq!(
            entry("[chmod, 0755, /x]"),
            Command::Argv(vec!["chmod".into(), "0755".into(), "/x".into()])
        );
    }
}
