//! The console as a child process over a lake (`scanscope-collector console`), and the Python
//! checks run against it: the DuckDB oracle (`py/console_oracle.py`) and the browser
//! (`py/console_browser.py`).
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::transport::collector_binary;

/// A `scanscope-collector console` child; killed on drop.
#[derive(Debug)]
pub struct ConsoleProc {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl ConsoleProc {
    /// Serves the console over `lake` on `listen` (loopback; port 0 = any), logging to `log`.
    pub fn start(lake: &Path, listen: &str, log: &Path) -> Result<ConsoleProc> {
        Self::start_with(lake, listen, log, &[])
    }

    /// As [`ConsoleProc::start`], with extra flags (tokens, TLS).
    pub fn start_with(
        lake: &Path,
        listen: &str,
        log: &Path,
        extra: &[&str],
    ) -> Result<ConsoleProc> {
        let bin = collector_binary().context("scanscope-collector binary not built")?;
        let log_file = std::fs::File::create(log)?;
        let mut child = Command::new(bin)
            .args(["console", "--listen", listen, "--data"])
            .arg(lake)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()?;
        let out = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("console on ") else {
            child.kill().ok();
            child.wait().ok();
            bail!(
                "the console did not start: {line:?} {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        Ok(ConsoleProc {
            url: url.to_string(),
            child,
        })
    }

    /// Waits until the console exits (Ctrl-C).
    pub fn wait(mut self) -> Result<()> {
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ConsoleProc {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn py(script: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join(script)
}

fn checked(out: Output, what: &str) -> Result<serde_json::Value> {
    if !out.status.success() {
        bail!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Every API figure for `from..=to` against DuckDB over the lake.
pub fn oracle(url: &str, lake: &Path, from: &str, to: &str) -> Result<serde_json::Value> {
    let out = Command::new("python3")
        .arg(py("console_oracle.py"))
        .arg(url)
        .arg(lake)
        .args([from, to])
        .output()?;
    checked(out, "the DuckDB oracle")
}

/// The browser walk over the console's pages; screenshots into `shots`.
pub fn browse(url: &str, shots: &Path) -> Result<serde_json::Value> {
    std::fs::create_dir_all(shots)?;
    let out = Command::new("python3")
        .arg(py("console_browser.py"))
        .args(["walk", url])
        .arg(shots)
        .output()?;
    checked(out, "the browser walk")
}
