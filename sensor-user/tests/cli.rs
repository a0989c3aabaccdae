//! The agent's clear one-line errors (no privileges needed: these fail before loading).
use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scanscope-sensor"))
        .args(args)
        .output()
        .expect("run agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_interface_is_a_clear_error() {
    let (code, err) = run(&["--iface", "nosuchif0"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error: interface \"nosuchif0\" does not exist"),
        "{err}"
    );
}

#[test]
fn bad_config_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("scanscope-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[action]\ntcp_syn = \"reject\"\n").expect("write");
    let (code, err) = run(&["--iface", "lo", "--config", cfg.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("action for tcp_syn must be \"pass\" or \"drop\""),
        "{err}"
    );
    let (code, err) = run(&["--iface", "lo", "--config", "/nonexistent/x.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read config file /nonexistent/x.toml"),
        "{err}"
    );
}

#[test]
fn bad_interval_is_refused() {
    let (code, err) = run(&["--iface", "lo", "--interval-secs", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--interval-secs"), "{err}");
}

#[test]
fn a_token_over_plain_http_is_refused_unless_insecure() {
    let dir = std::env::temp_dir().join(format!("scanscope-cli-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").expect("write");
    let token = token.display().to_string();
    let (code, err) = run(&[
        "--iface",
        "lo",
        "--collector",
        "http://127.0.0.1:7878",
        "--token-file",
        &token,
    ]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("refusing to send the bearer token over plain"),
        "{err}"
    );
    let (code, err) = run(&["--iface", "lo", "--sensor-id", "bad id"]);
    assert_eq!(code, 2);
    assert!(err.contains("sensor id \"bad id\""), "{err}");
}

#[test]
fn responder_settings_are_checked_before_anything_loads() {
    let dir = std::env::temp_dir().join(format!("scanscope-cli-respond-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (code, err) = run(&["--iface", "lo", "--respond-config", "/nonexistent/r.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read responder config /nonexistent/r.toml"),
        "{err}"
    );
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "max_sessions = 0\n").expect("write");
    let (code, err) = run(&[
        "--iface",
        "lo",
        "--respond-config",
        bad.to_str().expect("path"),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("max_sessions must be between 1 and 65536"),
        "{err}"
    );
    let in_config = dir.join("in-config.toml");
    std::fs::write(&in_config, "[respond]\nmax_auth = 0\n").expect("write");
    let (code, err) = run(&[
        "--iface",
        "lo",
        "--config",
        in_config.to_str().expect("path"),
    ]);
    assert_eq!(
        code, 2,
        "a [respond] table turns the responder on and is checked: {err}"
    );
    assert!(err.contains("max_auth must be between 1 and 100"), "{err}");
    let drop = dir.join("drop.toml");
    std::fs::write(&drop, "[action]\ntcp_syn = \"drop\"\n").expect("write");
    let (code, err) = run(&[
        "--iface",
        "lo",
        "--respond",
        "--config",
        drop.to_str().expect("path"),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "--respond needs TCP passed to this host: the [action] of tcp_syn is \"drop\""
        ),
        "{err}"
    );
}
