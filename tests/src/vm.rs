//! Virtual machines for the tests that need a kernel of their own: the older kernels
//! (`tests/tests/kernels.rs`) and real power cuts (`tests/tests/powerloss.rs`).
//!
//! * Host side: where the kernels are, building an initramfs from workspace binaries, and a
//!   qemu child that is killed on drop ([`Vm`]), whose serial console goes to a file that can be
//!   followed while it runs ([`Vm::console_lines`]).
//! * [`guest`]: what a PID 1 inside such a VM needs (mounting, modules, interfaces, markers on
//!   the console).
//!
//! Network safety: a VM has at most qemu's user-mode network, either restricted (`restrict=on`:
//! it reaches nothing) with port forwards from the host's 127.0.0.1, or with its guest code
//! connecting only to 10.0.2.2, qemu's alias for the host's loopback.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::{Context, Result, bail};

pub mod guest;

/// Console lines the guest writes for the host start with this.
pub const MARKER: &str = "SCANSCOPE-VM ";

/// Where `scripts/fetch-kernels.sh` puts the kernels (`SCANSCOPE_KERNELS_DIR` overrides).
pub fn kernels_dir() -> PathBuf {
    std::env::var_os("SCANSCOPE_KERNELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/scanscope/kernels"))
}

/// The first entry of [`kernels_dir`] whose name starts with `prefix`.
pub fn find_kernel_file(prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(kernels_dir())
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
}

/// Whether `tool` is on `PATH`.
pub fn on_path(tool: &str) -> bool {
    crate::which(tool).is_some()
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An initramfs being assembled in a directory.
#[derive(Debug)]
pub struct Initramfs {
    root: PathBuf,
}

impl Initramfs {
    /// An empty tree under `dir/root` with the mount points a PID 1 uses.
    pub fn new(dir: &Path) -> Result<Initramfs> {
        let root = dir.join("root");
        for d in ["bin", "proc", "sys", "dev", "tmp", "data", "modules"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        Ok(Initramfs { root })
    }

    /// Copies a binary (without debug info) to `at`, with the shared libraries `ldd` names.
    pub fn binary(&self, bin: &Path, at: &str) -> Result<&Self> {
        let dest = self.root.join(at.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().context("a path with a parent")?)?;
        run(Command::new("objcopy")
            .arg("--strip-debug")
            .arg(bin)
            .arg(&dest))?;
        for line in run(Command::new("ldd").arg(bin))?.lines() {
            let lib = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            let Some(lib) = lib.filter(|l| l.starts_with('/')) else {
                continue;
            };
            let to = self.root.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().context("a path with a parent")?)?;
            std::fs::copy(lib, &to).with_context(|| format!("copying {lib}"))?;
        }
        Ok(self)
    }

    /// Copies the files of `dir` into `at`.
    pub fn files(&self, dir: &Path, at: &str) -> Result<&Self> {
        let dest = self.root.join(at.trim_start_matches('/'));
        std::fs::create_dir_all(&dest)?;
        for e in std::fs::read_dir(dir)?.flatten() {
            std::fs::copy(e.path(), dest.join(e.file_name()))?;
        }
        Ok(self)
    }

    /// Packs the tree as `dir/initramfs.cpio` (newc, owned by root).
    pub fn pack(&self) -> Result<PathBuf> {
        let cpio = self
            .root
            .parent()
            .context("root has a parent")?
            .join("initramfs.cpio");
        run(Command::new("sh").current_dir(&self.root).args([
            "-c",
            &format!(
                "find . | cpio -o -H newc -R 0:0 --quiet > '{}'",
                cpio.display()
            ),
        ]))?;
        Ok(cpio)
    }
}

/// A qemu child (emulated CPU, one vCPU), killed on drop: pulling the plug.
#[derive(Debug)]
pub struct Vm {
    child: Child,
    console: PathBuf,
}

impl Vm {
    /// Boots `kernel` with `initrd`, the kernel command line `append` (after the console
    /// settings) and extra qemu arguments; the serial console goes to `console`.
    pub fn boot(
        kernel: &Path,
        initrd: &Path,
        append: &str,
        extra: &[String],
        console: &Path,
    ) -> Result<Vm> {
        let log = std::fs::File::create(console)?;
        let child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-m", "1024", "-smp", "1"])
            .args(["-nographic", "-no-reboot", "-kernel"])
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .arg("-append")
            .arg(format!(
                "console=ttyS0 rdinit=/init panic=-1 quiet {append}"
            ))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start qemu-system-x86_64")?;
        Ok(Vm {
            child,
            console: console.to_path_buf(),
        })
    }

    /// Whether qemu has exited (the guest powered off, or qemu failed).
    pub fn exited(&mut self) -> Result<bool> {
        Ok(self.child.try_wait()?.is_some())
    }

    /// SIGKILL to qemu: the guest loses everything not on its virtual disk.
    pub fn cut(&mut self) -> Result<()> {
        self.child.kill().ok();
        self.child.wait()?;
        Ok(())
    }

    /// The guest's marker lines so far (what follows [`MARKER`]). SeaBIOS may leave its last
    /// words on the same line as the first marker.
    pub fn console_lines(&self) -> Vec<String> {
        console_lines(&self.console)
    }

    /// The console file.
    pub fn console(&self) -> &Path {
        &self.console
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The marker lines of a console file.
pub fn console_lines(console: &Path) -> Vec<String> {
    let text = String::from_utf8_lossy(&std::fs::read(console).unwrap_or_default()).into_owned();
    text.lines()
        .filter_map(|l| {
            l.find(MARKER)
                .map(|i| l[i + MARKER.len()..].trim_end().to_string())
        })
        .collect()
}
