//! `cargo xtask …`: what cargo alone cannot do.
//!
//! * `build-ebpf` — builds the XDP objects with the nightly toolchain for `bpfel-unknown-none`
//!   and copies them to `target/ebpf/` where `sensor-user` embeds them.
//! * `test` — build-ebpf, then the whole test suite including the privileged tests (test_run on
//!   the real object, network-namespace end-to-end tests with real scanners). Privileged tests
//!   must run here: a skip is an error (`SCANSCOPE_REQUIRE_PRIVILEGED=1`).
//! * `demo` — build-ebpf, then the namespace lab with real scanners (root).
//! * `bench xdp` — per-packet cost of the XDP program through BPF_PROG_TEST_RUN.
//! * `bench ingest` / `bench rollup` — collector ingest rate; daily rollup time and memory.
//! * `bench netflow` — NetFlow/IPFIX flows per second into the WAL, beside nfcapd.
//! * `bench console` — the console's API latency and memory over 30 generated days, beside DuckDB.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the eBPF objects into target/ebpf/.
    BuildEbpf,
    /// Build the eBPF objects and run every test, privileged ones included (as root).
    Test {
        /// Skip `cargo fmt --check` and `cargo clippy`.
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build everything and run the namespace demo lab with real scanners (as root).
    Demo {
        /// Keep the lab's output directory instead of a temporary one.
        #[arg(long)]
        out: Option<PathBuf>,
        /// End after the report instead of serving the console until Ctrl-C.
        #[arg(long)]
        no_console: bool,
    },
    /// Run a benchmark and print its figures.
    Bench {
        /// Which benchmark: `xdp`, `ingest`, `netflow`, `rollup`, `responder`, `console`.
        which: String,
    },
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// A cargo command with the outer cargo's environment removed, so that the nightly toolchain
/// and the eBPF crate's own config apply.
fn clean_cargo(toolchain: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", toolchain, "cargo"]);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_") && k != "CARGO_HOME"
            || k.starts_with("RUSTUP_TOOLCHAIN")
            || k == "RUSTC"
            || k == "RUSTFLAGS"
            || k == "RUSTC_WRAPPER"
            || k == "RUSTDOC"
        {
            cmd.env_remove(&k);
        }
    }
    cmd
}

fn build_ebpf() -> Result<()> {
    let root = root();
    let ebpf = root.join("sensor-ebpf");
    run(clean_cargo("nightly")
        .current_dir(&ebpf)
        .args(["build", "--release", "--bins"]))
    .context(
        "building the eBPF crate (run scripts/setup.sh first: it installs rust-src and bpf-linker)",
    )?;
    let out = root.join("target/ebpf");
    std::fs::create_dir_all(&out)?;
    for name in ["scanscope", "null"] {
        let src = ebpf.join("target/bpfel-unknown-none/release").join(name);
        let dst = out.join(format!("{name}.bpf.o"));
        // Replace only when changed, so cargo does not rebuild the agent needlessly.
        let new = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
        if std::fs::read(&dst).ok().as_deref() != Some(&new[..]) {
            std::fs::write(&dst, &new).with_context(|| format!("writing {}", dst.display()))?;
        }
    }
    eprintln!("eBPF objects in {}", out.display());
    Ok(())
}

/// The workspace's target directory (`CARGO_TARGET_DIR` if set).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::BuildEbpf => build_ebpf(),
        Cmd::Test { no_lint, args } => {
            build_ebpf()?;
            if !no_lint {
                run(cargo().args(["fmt", "--all", "--", "--check"]))?;
                run(clean_cargo("nightly")
                    .current_dir(root().join("sensor-ebpf"))
                    .args(["fmt", "--", "--check"]))?;
                run(cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))?;
            }
            // The end-to-end tests run the binaries of other packages: build them all first
            // (same profile and features as the tests, so nothing is compiled twice).
            run(cargo().args(["build", "--workspace", "--all-targets"]))?;
            run(cargo()
                .args(["test", "--workspace", "--all-targets"])
                .env("SCANSCOPE_REQUIRE_PRIVILEGED", "1")
                .arg("--")
                .args(&args))
        }
        Cmd::Demo { out, no_console } => {
            build_ebpf()?;
            // One cargo invocation for the three binaries: features are unified once and every
            // dependency is compiled once. The dev profile: the lab's traffic needs no
            // optimised build, it compiles in a fraction of the time, and `cargo xtask test`
            // reuses what it built.
            run(cargo().args([
                "build",
                "-p",
                "sensor-user",
                "--bin",
                "scanscope-sensor",
                "-p",
                "scanscope-collector",
                "--bin",
                "scanscope-collector",
                "-p",
                "scanscope-tests",
                "--bin",
                "scanscope-demo",
            ]))?;
            let mut c = Command::new(target_dir().join("debug/scanscope-demo"));
            if let Some(o) = out {
                c.arg("--out").arg(o);
            }
            if no_console {
                c.arg("--no-console");
            }
            run(&mut c)
        }
        Cmd::Bench { which } => match which.as_str() {
            "xdp" => {
                build_ebpf()?;
                run(cargo().args(["bench", "-p", "sensor-user", "--bench", "xdp"]))
            }
            "ingest" => run(cargo().args(["bench", "-p", "scanscope-ingest", "--bench", "ingest"])),
            "netflow" => {
                run(cargo().args(["bench", "-p", "scanscope-ingest", "--bench", "netflow"]))
            }
            "responder" => {
                run(cargo().args(["bench", "-p", "sensor-user", "--bench", "responder"]))
            }
            "rollup" => {
                run(cargo().args([
                    "build",
                    "--release",
                    "-p",
                    "scanscope-collector",
                    "--bin",
                    "scanscope-collector",
                ]))?;
                run(cargo().args(["bench", "-p", "scanscope-analytics", "--bench", "rollup"]))
            }
            "console" => {
                run(cargo().args([
                    "build",
                    "--release",
                    "-p",
                    "scanscope-collector",
                    "--bin",
                    "scanscope-collector",
                ]))?;
                run(cargo().args(["bench", "-p", "scanscope-console", "--bench", "console"]))
            }
            other => bail!(
                "unknown benchmark {other:?} (known: xdp, ingest, netflow, rollup, responder, console)"
            ),
        },
    }
}
