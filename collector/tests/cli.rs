//! The collector binary's command line: the flags it composes from ingest and analytics are all
//! there, and bad input is one clear error line with a non-zero exit (nothing is started).
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scanscope-collector"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run the collector");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_takes_the_flags_of_both_halves() {
    let (code, help, _) = run(&["serve", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--data",
        "--flush-secs",
        "--token-file",
        "--max-batch-bytes",
        "--no-auto-rollup",
        "--rollup-grace-secs",
        "--rollup-config",
        "--mmdb",
        "--rdns-server",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
}

#[test]
fn bad_input_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let data = data.to_str().unwrap();
    let (code, _, err) = run(&["serve", "--data", data, "--flush-secs", "0"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "error: --flush-secs must be between 0.05 and 86400"
    );
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# none yet\n").unwrap();
    let (code, _, err) = run(&[
        "serve",
        "--data",
        data,
        "--token-file",
        tokens.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("holds no token"), "{err}");
    let cfg = dir.path().join("rollup.toml");
    std::fs::write(&cfg, "[scanner]\nwide_breadth = 11\n").unwrap();
    let (code, _, err) = run(&[
        "rollup",
        "--data",
        data,
        "--rollup-config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "error: rollup config: scanner.wide_breadth must be 1..=10"
    );
    let (code, _, err) = run(&["report", "--data", data, "--date", "2026-11-20"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: no rollup for 2026-11-20 in ip_daily"),
        "{err}"
    );
    assert!(
        !std::path::Path::new(data).join("_state/lock").exists(),
        "serve never started"
    );
}

#[test]
fn an_exposed_address_needs_tls_and_credentials_or_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let data = data.to_str().unwrap();
    let (code, _, err) = run(&["serve", "--data", data, "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without TLS"),
        "{err}"
    );
    // The old token-file format (a bare token) names no sensor: refused.
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "bare-token\n").unwrap();
    let (code, _, err) = run(&[
        "serve",
        "--data",
        data,
        "--token-file",
        tokens.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("line 1: expected `sensor-id token`"), "{err}");
}
