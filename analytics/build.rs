//! Embeds the shipped organisation lists (`data/internet-scanners/`) into the binary.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("data/internet-scanners");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    let mut out = String::from(
        "/// The shipped lists: (file name, contents).\npub static SHIPPED_ORGS: &[(&str, &str)] = &[\n",
    );
    for n in &names {
        println!("cargo:rerun-if-changed={}", dir.join(n).display());
        out.push_str(&format!(
            "    ({n:?}, include_str!({:?})),\n",
            dir.join(n).display().to_string()
        ));
    }
    out.push_str("];\n");
    fs::write(
        PathBuf::from(env::var("OUT_DIR")?).join("shipped_orgs.rs"),
        out,
    )?;
    Ok(())
}
