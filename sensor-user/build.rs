//! Embeds the eBPF objects built by `cargo xtask build-ebpf` (target/ebpf/*.bpf.o).
//!
//! When they have not been built, empty placeholders are embedded instead so that a plain
//! `cargo build` / `cargo test` still works; the agent then refuses to start with a clear
//! message and the privileged tests skip with a printed reason.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let dir = match env::var_os("SCANSCOPE_EBPF_DIR") {
        Some(d) => PathBuf::from(d),
        None => manifest
            .parent()
            .ok_or_else(|| anyhow::anyhow!("sensor-user has no parent directory"))?
            .join("target/ebpf"),
    };
    let out = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-env-changed=SCANSCOPE_EBPF_DIR");
    println!("cargo:rerun-if-changed={}", dir.display());
    for name in ["scanscope", "null"] {
        let src = dir.join(format!("{name}.bpf.o"));
        let dst = out.join(format!("{name}.bpf.o"));
        println!("cargo:rerun-if-changed={}", src.display());
        if src.exists() {
            fs::copy(&src, &dst)?;
        } else {
            println!(
                "cargo:warning=eBPF object {} not built; run `cargo xtask build-ebpf` (embedding an empty placeholder)",
                src.display()
            );
            fs::write(&dst, [])?;
        }
    }
    Ok(())
}
