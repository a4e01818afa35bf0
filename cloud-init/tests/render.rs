//! Behaviour of `render`: the exact document (snapshot), its structure as
//! a YAML reader sees it, input validation and the size limit.

use sam_cloud_init::{CloudInitError, MAX_USER_DATA_BYTES, NodeBootstrap, render};
use serde_yaml_ng::Value;

const TOKEN: &str =
    "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIwMUhaWThKM0s0TTVONlA3UThSOVMwVDFWMiJ9.c2lnbmF0dXJl";

fn typical() -> NodeBootstrap<'static> {
    NodeBootstrap {
        node_id: "01HZY8J3K4M5N6P7Q8R9S0T1V2",
        hostname: "sam-dev-box",
        control_plane_url: "http://api.localhost:8787",
        agent_download_url: "http://api.localhost:8787/api/agent/download?arch=x86_64",
        callback_token: TOKEN,
        heartbeat_interval_secs: 30,
        vm_agent_port: 8443,
        app_origin: "http://app.localhost:8787",
    }
}

fn parse(doc: &str) -> Value {
    serde_yaml_ng::from_str(doc).expect("rendered user-data is valid YAML")
}

fn file<'v>(doc: &'v Value, path: &str) -> &'v Value {
    doc["write_files"]
        .as_sequence()
        .expect("write_files is a list")
        .iter()
        .find(|f| f["path"].as_str() == Some(path))
        .unwrap_or_else(|| panic!("{path} is written"))
}

fn content<'v>(doc: &'v Value, path: &str) -> &'v str {
    file(doc, path)["content"]
        .as_str()
        .expect("content is a string")
}

#[test]
fn typical_render_matches_snapshot() {
    insta::assert_snapshot!(render(&typical()).unwrap());
}

#[test]
fn starts_with_the_cloud_config_marker() {
    // cloud-init ignores user-data without this exact first line.
    assert!(render(&typical()).unwrap().starts_with("#cloud-config\n"));
}

#[test]
fn round_trip_has_the_expected_files_and_settings() {
    let doc = parse(&render(&typical()).unwrap());
    assert_eq!(doc["hostname"].as_str(), Some("sam-dev-box"));
    assert_eq!(doc["package_update"].as_bool(), Some(false));
    assert_eq!(doc["package_upgrade"].as_bool(), Some(false));

    let paths: Vec<&str> = doc["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/etc/sam/vm-agent.env",
            "/etc/sam/callback-token",
            "/etc/systemd/journald.conf.d/sam.conf",
            "/etc/systemd/system/vm-agent.service",
        ]
    );
    // Permissions must stay strings: a bare 0600 is octal to YAML 1.1 but
    // decimal 600 to YAML 1.2, and the difference is a world-readable secret.
    for (path, mode) in [
        ("/etc/sam/vm-agent.env", "0600"),
        ("/etc/sam/callback-token", "0600"),
        ("/etc/systemd/system/vm-agent.service", "0644"),
    ] {
        assert_eq!(
            file(&doc, path)["permissions"].as_str(),
            Some(mode),
            "{path}"
        );
    }

    assert_eq!(
        content(&doc, "/etc/sam/vm-agent.env"),
        "SAM_NODE_ID=01HZY8J3K4M5N6P7Q8R9S0T1V2\n\
         SAM_CONTROL_PLANE_URL=http://api.localhost:8787\n\
         SAM_CALLBACK_TOKEN_FILE=/etc/sam/callback-token\n\
         SAM_HEARTBEAT_INTERVAL_SECS=30\n\
         SAM_VM_AGENT_PORT=8443\n\
         SAM_APP_ORIGIN=http://app.localhost:8787\n"
    );
    assert_eq!(content(&doc, "/etc/sam/callback-token"), TOKEN);
}

#[test]
fn round_trip_has_the_journald_limits_and_agent_unit() {
    let doc = parse(&render(&typical()).unwrap());
    let journald = content(&doc, "/etc/systemd/journald.conf.d/sam.conf");
    for line in [
        "[Journal]",
        "SystemMaxUse=200M",
        "SystemMaxFileSize=50M",
        "MaxRetentionSec=7day",
    ] {
        assert!(journald.lines().any(|l| l == line), "journald lacks {line}");
    }
    assert!(journald.lines().any(|l| l.starts_with("RateLimitBurst=")));
    assert!(
        journald
            .lines()
            .any(|l| l.starts_with("RateLimitIntervalSec="))
    );

    let unit = content(&doc, "/etc/systemd/system/vm-agent.service");
    for line in [
        "[Unit]",
        "After=network-online.target",
        "Wants=network-online.target",
        "[Service]",
        "EnvironmentFile=/etc/sam/vm-agent.env",
        "ExecStart=/usr/local/bin/vm-agent",
        "Restart=always",
        "RestartSec=2",
        "[Install]",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
}

#[test]
fn round_trip_has_runcmd_in_list_form() {
    let doc = parse(&render(&typical()).unwrap());
    let runcmd: Vec<Vec<&str>> = doc["runcmd"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|cmd| {
            cmd.as_sequence()
                .expect("every command is in list form (no shell)")
                .iter()
                .map(|arg| arg.as_str().expect("every argument is a string"))
                .collect()
        })
        .collect();
    assert_eq!(
        runcmd,
        [
            vec![
                "curl",
                "-fsSL",
                "--retry",
                "5",
                "--retry-delay",
                "2",
                "-o",
                "/usr/local/bin/vm-agent",
                "http://api.localhost:8787/api/agent/download?arch=x86_64",
            ],
            vec!["chmod", "0755", "/usr/local/bin/vm-agent"],
            vec!["systemctl", "restart", "systemd-journald"],
            vec!["systemctl", "daemon-reload"],
            vec!["systemctl", "enable", "--now", "vm-agent.service"],
        ]
    );
}

#[test]
fn the_callback_token_is_the_only_secret_and_appears_once() {
    let out = render(&typical()).unwrap();
    assert_eq!(out.matches(TOKEN).count(), 1);
}

#[test]
fn oversized_output_is_rejected_with_its_size() {
    // A token is the one field without its own length cap, so it is the
    // natural way to push the document past the provider limit.
    let token = format!(
        "{}.{}.{}",
        "a".repeat(11_000),
        "b".repeat(11_000),
        "c".repeat(11_000)
    );
    let input = NodeBootstrap {
        callback_token: &token,
        ..typical()
    };
    let err = render(&input).unwrap_err();
    assert_eq!(err.code(), "user_data_too_large");
    match err {
        CloudInitError::TooLarge { bytes } => assert!(bytes > MAX_USER_DATA_BYTES, "{bytes}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(!render(&input).unwrap_err().to_string().contains(&token));
}

#[test]
fn output_just_under_the_limit_is_accepted() {
    let base = render(&typical()).unwrap().len();
    // Grow the token by exactly the head-room left below the limit.
    let extra = MAX_USER_DATA_BYTES - base;
    let token = format!("{TOKEN}{}", "x".repeat(extra));
    let out = render(&NodeBootstrap {
        callback_token: &token,
        ..typical()
    })
    .unwrap();
    assert_eq!(out.len(), MAX_USER_DATA_BYTES);
}

fn code_of(input: &NodeBootstrap<'_>) -> &'static str {
    render(input).map_or_else(|e| e.code(), |_| "ok")
}

#[test]
fn node_ids_are_restricted() {
    for bad in ["", "a b", "a\nb", "../x", "a=b", "é", &"A".repeat(65)] {
        let input = NodeBootstrap {
            node_id: bad,
            ..typical()
        };
        assert_eq!(code_of(&input), "invalid_node_id", "{bad:?}");
    }
    for good in ["node_1", "01HZY8J3K4M5N6P7Q8R9S0T1V2", &"A".repeat(64)] {
        let input = NodeBootstrap {
            node_id: good,
            ..typical()
        };
        assert_eq!(code_of(&input), "ok", "{good:?}");
    }
}

#[test]
fn hostnames_are_restricted() {
    let bad = [
        "",
        "-box",
        "box-",
        "a..b",
        "a.-b",
        "1box",
        "box_1",
        "box 1",
        "box\n",
        "yes",
        "OFF",
        "Null",
        &"a".repeat(64),
    ];
    for bad in bad {
        let input = NodeBootstrap {
            hostname: bad,
            ..typical()
        };
        assert_eq!(code_of(&input), "invalid_hostname", "{bad:?}");
    }
    for good in [
        "box",
        "sam-01hzy8j3",
        "node.example.com",
        "Box-1",
        &"a".repeat(63),
    ] {
        let input = NodeBootstrap {
            hostname: good,
            ..typical()
        };
        assert_eq!(code_of(&input), "ok", "{good:?}");
    }
}

#[test]
fn urls_are_restricted() {
    let bad = [
        "",
        "api.localhost:8787",
        "ftp://api.localhost",
        "http://",
        "https:///path",
        "http://api.localhost/ x",
        "http://api.localhost/\nEvil=1",
        "http://api.localhost/\t",
        "http://api.localhost/$HOME",
        "http://api.localhost/\"",
        "http://api.localhost/\\",
        "http://api.localhost/é",
    ];
    for bad in bad {
        let input = NodeBootstrap {
            control_plane_url: bad,
            ..typical()
        };
        assert_eq!(code_of(&input), "invalid_url", "control plane {bad:?}");
        let input = NodeBootstrap {
            agent_download_url: bad,
            ..typical()
        };
        assert_eq!(code_of(&input), "invalid_url", "download {bad:?}");
    }
    for good in [
        "https://api.example.com",
        "http://127.0.0.1:8787/a?b=c&d=e#f",
    ] {
        let input = NodeBootstrap {
            control_plane_url: good,
            agent_download_url: good,
            ..typical()
        };
        assert_eq!(code_of(&input), "ok", "{good:?}");
    }
}

#[test]
fn callback_tokens_are_restricted_and_never_echoed() {
    let bad = [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "a..c",
        ".b.c",
        "a.b c.d",
        "a.b.c\n",
        "a.b+/.c",
        "a.b.c=",
        "secret-password.with-a space.x",
    ];
    for bad in bad {
        let input = NodeBootstrap {
            callback_token: bad,
            ..typical()
        };
        let err = render(&input).unwrap_err();
        assert_eq!(err.code(), "invalid_callback_token", "{bad:?}");
        if !bad.is_empty() {
            assert!(!err.to_string().contains(bad), "token echoed: {err}");
        }
    }
}

#[test]
fn the_app_origin_must_be_a_bare_origin() {
    for bad in [
        "app.localhost:8787",
        "http://app.localhost:8787/path",
        "https://app.example.com/?q=1",
        "https://user@app.example.com",
        "http://app.localhost:8787\nSAM_NODE_ID=x",
    ] {
        let input = NodeBootstrap {
            app_origin: bad,
            ..typical()
        };
        assert_eq!(code_of(&input), "invalid_url", "{bad}");
    }
    let out = render(&typical()).unwrap();
    assert!(out.contains("SAM_APP_ORIGIN=http://app.localhost:8787\n"));
}

#[test]
fn heartbeat_and_port_must_be_non_zero() {
    let input = NodeBootstrap {
        heartbeat_interval_secs: 0,
        ..typical()
    };
    assert_eq!(code_of(&input), "invalid_heartbeat_interval");
    let input = NodeBootstrap {
        vm_agent_port: 0,
        ..typical()
    };
    assert_eq!(code_of(&input), "invalid_port");
}

#[test]
fn echoed_input_is_clipped() {
    let long = format!("http://{}", "a b".repeat(10_000));
    let message = render(&NodeBootstrap {
        control_plane_url: &long,
        ..typical()
    })
    .unwrap_err()
    .to_string();
    assert!(message.len() < 200, "{message}");
}
