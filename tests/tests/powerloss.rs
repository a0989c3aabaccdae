//! Power loss, for real. A `kill -9` keeps the page cache, so it cannot show a missing fsync;
//! pulling the plug on a virtual machine does. Debian 12's 6.1 kernel boots under qemu with
//! `scanscope-vm-power` as PID 1, an ext4 file system on a virtio disk image (`cache=writeback`:
//! the guest's flushes reach the host file, what it did not flush is lost with the guest's page
//! cache) and a virtio network card on qemu's user network. qemu is killed at random moments.
//! Network: the collector's VM is on a restricted network (`restrict=on`: it reaches nothing)
//! with one port forwarded from the host's 127.0.0.1; the agent's VM connects only to 10.0.2.2,
//! qemu's alias for the host's loopback, where the test's collector listens.
//!
//! * Collector: it runs in the VM with its write-ahead log and lake on the disk; a real uplink on
//!   the host streams batches to it through a port forward, spooling while the VM is down.
//!   After every cut the disk is checked (`e2fsck`, then the lake copied out with `debugfs`):
//!   every visible Parquet file reads and no row is there twice. At the end, after every batch
//!   was acknowledged, the plug is pulled once more; the collector then starts, replays and
//!   flushes: every acknowledged row is in the lake exactly once.
//! * Agent spool: the uplink runs in the VM with its spool on the disk, every batch fsynced to
//!   the spool before `push` returns; the collector runs on the host. After the cuts a last
//!   boot delivers the spool: every batch whose push returned is in the lake exactly once.
//!
//! `SCANSCOPE_POWER_CUTS` (default 10) sets the number of cuts; `SCANSCOPE_POWER_SEED` the
//! seed of their moments.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use rand::{Rng, SeedableRng, rngs::StdRng};
use scanscope_tests::{
    transport::{CollectorProc, check_synthetic, collector_binary, flow_keys, synthetic_batch},
    vm::{self, Initramfs, Vm},
};
use sensor_user::uplink::{Uplink, UplinkOptions};

/// Flows per batch the host streams to the collector in the VM.
const HOST_ROWS: u32 = 50;
/// Flows per batch `scanscope-vm-power` pushes in spool mode (its `ROWS`).
const SPOOL_ROWS: u32 = 20;
/// Boot (emulated CPU), module loading and the binaries' start.
const READY_WITHIN: Duration = Duration::from_secs(300);

fn env(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn power_binary() -> Option<PathBuf> {
    scanscope_tests::sensor_binary()?
        .parent()
        .map(|d| d.join("scanscope-vm-power"))
        .filter(|p| p.is_file())
}

/// Debian's 6.1 kernel and the modules `scripts/fetch-kernels.sh` put beside it.
fn kernel_and_modules() -> Option<(PathBuf, PathBuf)> {
    let kernel = vm::find_kernel_file("vmlinuz-6.1.")?;
    let release = kernel.file_name()?.to_str()?.strip_prefix("vmlinuz-")?;
    let modules = vm::kernels_dir().join(format!("modules-{release}"));
    modules.join("order").is_file().then_some((kernel, modules))
}

/// Why this test cannot run here.
fn missing() -> Option<String> {
    let mut why = Vec::new();
    for tool in [
        "qemu-system-x86_64",
        "cpio",
        "ldd",
        "objcopy",
        "mkfs.ext4",
        "e2fsck",
        "debugfs",
    ] {
        if !vm::on_path(tool) {
            why.push(format!("{tool} is not installed (scripts/setup.sh)"));
        }
    }
    if kernel_and_modules().is_none() {
        why.push(format!(
            "no vmlinuz-6.1.* with its modules-* in {} (scripts/fetch-kernels.sh)",
            vm::kernels_dir().display()
        ));
    }
    if power_binary().is_none() || collector_binary().is_none() {
        why.push("scanscope-vm-power or scanscope-collector is not built".into());
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The test's directory: kept (and named) if the test fails, removed when it passes.
struct Kept(Option<tempfile::TempDir>);

impl Kept {
    fn new(prefix: &str) -> Result<Kept> {
        let d = tempfile::Builder::new().prefix(prefix).tempdir()?;
        eprintln!("consoles and disk image in {}", d.path().display());
        Ok(Kept(Some(d)))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().expect("until dropped").path()
    }

    /// The test passed: remove the directory.
    fn passed(mut self) {
        self.0.take();
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            eprintln!("test failed; kept {}", d.keep().display());
        }
    }
}

fn run(cmd: &mut Command) -> Result<std::process::Output> {
    cmd.output().with_context(|| format!("running {cmd:?}"))
}

/// One VM's kernel, initramfs and disk image.
struct Machine {
    kernel: PathBuf,
    initrd: PathBuf,
    disk: PathBuf,
    dir: PathBuf,
}

impl Machine {
    fn new(dir: &Path) -> Result<Machine> {
        let (kernel, modules) = kernel_and_modules().context("kernel")?;
        let fs = Initramfs::new(dir)?;
        fs.binary(&power_binary().context("vm-power")?, "/init")?;
        fs.binary(
            &collector_binary().context("collector")?,
            "/bin/scanscope-collector",
        )?;
        fs.files(&modules, "/modules")?;
        let initrd = fs.pack()?;
        let disk = dir.join("disk.img");
        std::fs::File::create(&disk)?.set_len(512 << 20)?;
        let out = run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&disk))?;
        ensure!(
            out.status.success(),
            "mkfs.ext4: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Machine {
            kernel,
            initrd,
            disk,
            dir: dir.to_path_buf(),
        })
    }

    /// Boots with `append` on the kernel command line and `net` (forwards) on its network.
    fn boot(&self, name: &str, append: &str, net: &str) -> Result<Vm> {
        let extra = [
            "-drive".to_string(),
            format!(
                "file={},format=raw,if=virtio,cache=writeback",
                self.disk.display()
            ),
            "-netdev".into(),
            format!("user,id=n0,{net}"),
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
        ];
        Vm::boot(
            &self.kernel,
            &self.initrd,
            append,
            &extra,
            &self.dir.join(format!("{name}.console")),
        )
    }

    /// What the guest's next mount would see: the journal replayed (`e2fsck`), then `from`
    /// copied out of the image to `to` (`debugfs rdump`).
    fn extract(&self, from: &str, to: &Path) -> Result<()> {
        let out = run(Command::new("e2fsck").arg("-fy").arg(&self.disk))?;
        // 0: clean; 1: errors corrected (the journal replayed counts as such on some builds).
        ensure!(
            matches!(out.status.code(), Some(0 | 1)),
            "e2fsck found uncorrectable damage ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
        if to.exists() {
            std::fs::remove_dir_all(to)?;
        }
        std::fs::create_dir_all(to)?;
        let out = run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("rdump {from} {}", to.display()))
            .arg(&self.disk))?;
        ensure!(
            out.status.success(),
            "debugfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

/// Waits until a console line satisfies `f`; fails if the VM stops first or reports an error.
fn wait_for(vm: &mut Vm, what: &str, within: Duration, f: impl Fn(&str) -> bool) -> Result<()> {
    let started = Instant::now();
    loop {
        let lines = vm.console_lines();
        if lines.iter().any(|l| f(l)) {
            return Ok(());
        }
        if let Some(e) = lines.iter().find(|l| l.starts_with("done error")) {
            bail!("the VM failed: {e}; console {}", vm.console().display());
        }
        if vm.exited()? {
            bail!(
                "the VM stopped before {what}: {lines:#?}; console {}",
                vm.console().display()
            );
        }
        if started.elapsed() > within {
            bail!(
                "no {what} within {within:?}; console {}",
                vm.console().display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn rng() -> (StdRng, u64) {
    let seed = env("SCANSCOPE_POWER_SEED", 0x0ff_5ca9);
    (StdRng::seed_from_u64(seed), seed)
}

/// Every table of the copied-out lake reads (every visible Parquet file), and no flow row is
/// there twice; the number of flow rows.
fn check_readable(lake: &Path) -> Result<usize> {
    for e in std::fs::read_dir(lake)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('_') && e.path().is_dir() {
            scanscope_tests::transport::read_table(lake, &name)?;
        }
    }
    if !lake.join("flows").is_dir() {
        return Ok(0);
    }
    let keys = flow_keys(lake)?;
    let twice: Vec<_> = keys.iter().filter(|(_, (n, _))| *n > 1).take(3).collect();
    ensure!(twice.is_empty(), "rows stored twice: {twice:?}");
    Ok(keys.len())
}

#[test]
fn acknowledged_rows_survive_power_cuts_of_the_collector() -> Result<()> {
    if scanscope_testkit::gate::skip(missing()) {
        return Ok(());
    }
    let cuts = env("SCANSCOPE_POWER_CUTS", 10) as usize;
    let (mut rng, seed) = rng();
    let dir = Kept::new("scanscope-power-collector-")?;
    let m = Machine::new(dir.path())?;
    let port = free_port()?;
    let net = format!("restrict=on,hostfwd=tcp:127.0.0.1:{port}-10.0.2.15:50051");

    let rt = tokio::runtime::Runtime::new()?;
    let mut o = UplinkOptions::new(
        vec![format!("http://127.0.0.1:{port}")],
        "host-1".into(),
        dir.path().join("spool"),
    );
    o.backoff_min = Duration::from_millis(100);
    o.backoff_max = Duration::from_secs(1);
    let up = Arc::new({
        let _in_rt = rt.enter();
        Uplink::start(o)?
    });
    let (pushed, stop) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let pusher = rt.spawn({
        let (up, pushed, stop) = (up.clone(), pushed.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let i = pushed.load(Ordering::Relaxed);
                up.push(synthetic_batch(i, HOST_ROWS))?;
                pushed.store(i + 1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::Ok(())
        }
    });

    let started = Instant::now();
    let mut acked_per_boot = Vec::new();
    for cut in 1..=cuts {
        let mut vm = m.boot(&format!("cut-{cut}"), "scanscope.mode=collector", &net)?;
        wait_for(&mut vm, "collector-ready", READY_WITHIN, |l| {
            l == "collector-ready"
        })?;
        // The cut comes while the collector works: after its first ack of this boot.
        let before = up.stats().acked;
        let deadline = Instant::now() + READY_WITHIN;
        while up.stats().acked == before {
            ensure!(
                Instant::now() < deadline,
                "no ack within {READY_WITHIN:?} of boot {cut}; console {}",
                vm.console().display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_secs_f64(rng.random_range(0.0..5.0)));
        vm.cut()?;
        acked_per_boot.push(up.stats().acked - before);
        let lake = dir.path().join(format!("after-{cut}"));
        m.extract("/lake", &lake)?;
        let rows = check_readable(&lake.join("lake"))
            .with_context(|| format!("after cut {cut} (seed {seed:#x})"))?;
        eprintln!(
            "cut {cut}: {} batches acknowledged in this boot; {rows} flow rows in Parquet, none twice",
            acked_per_boot[cut - 1]
        );
        std::fs::remove_dir_all(&lake)?;
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(pusher)??;
    let pushed = pushed.load(Ordering::Relaxed);

    // Everything delivered, then the plug pulled once more.
    let mut vm = m.boot("last", "scanscope.mode=collector", &net)?;
    wait_for(&mut vm, "collector-ready", READY_WITHIN, |l| {
        l == "collector-ready"
    })?;
    let deadline = Instant::now() + READY_WITHIN;
    while up.pending() > 0 {
        ensure!(
            Instant::now() < deadline,
            "{} batches still unacknowledged",
            up.pending()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    vm.cut()?;
    let stats = up.stats();
    ensure!(
        stats.acked == u64::from(pushed),
        "acknowledged {} of {pushed}: {stats:?}",
        stats.acked
    );
    // The collector replays, flushes everything to Parquet and stops.
    let mut vm = m.boot("flush", "scanscope.mode=collector scanscope.stop=1", &net)?;
    wait_for(&mut vm, "the collector's exit", READY_WITHIN, |l| {
        l.starts_with("collector-exit")
    })?;
    let lines = vm.console_lines();
    ensure!(
        lines.iter().any(|l| l == "collector-exit 0"),
        "collector: {lines:#?}"
    );
    drop(vm);
    let lake = dir.path().join("final");
    m.extract("/lake", &lake)?;
    let rows = check_readable(&lake.join("lake"))?;
    check_synthetic(&lake.join("lake"), "host-1", pushed, HOST_ROWS)
        .with_context(|| format!("seed {seed:#x}"))?;
    eprintln!(
        "collector: {cuts} power cuts (+1 after the last ack) in {:.0} s; {pushed} batches, \
         {rows} rows, every acknowledged row in the lake exactly once; batches acknowledged per \
         boot {acked_per_boot:?}",
        started.elapsed().as_secs_f64()
    );
    dir.passed();
    Ok(())
}

/// `10.a.b.c` → the synthetic batch index `a << 16 | b << 8 | c`.
fn index_of(src: &str) -> Option<u32> {
    let o: Vec<u32> = src
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    (o.len() == 4 && o[0] == 10).then(|| o[1] << 16 | o[2] << 8 | o[3])
}

#[test]
fn spooled_batches_survive_power_cuts_of_the_agent() -> Result<()> {
    if scanscope_testkit::gate::skip(missing()) {
        return Ok(());
    }
    let cuts = env("SCANSCOPE_POWER_CUTS", 10) as u32;
    let (mut rng, seed) = rng();
    let dir = Kept::new("scanscope-power-spool-")?;
    let m = Machine::new(dir.path())?;
    let data = dir.path().join("lake");
    let mut c = CollectorProc::start("127.0.0.1:0", &data, &["--flush-secs", "1"])?;
    // The guest's one connection goes to the host's loopback (qemu's alias 10.0.2.2); qemu's
    // guest forwards take one connection only, too few for an uplink that reconnects.
    let net = "ipv6=off";
    let collector = format!("10.0.2.2:{}", c.addr.port());

    let started = Instant::now();
    // Per boot: the indexes whose push returned (printed after it).
    let mut printed: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for boot in 1..=cuts {
        let append = format!(
            "scanscope.mode=spool scanscope.collector={collector} scanscope.boot={boot} scanscope.push=1"
        );
        // Every other boot the collector is down: the spool only grows.
        let down = boot % 2 == 0;
        if down {
            c.kill9()?;
        }
        let mut vm = m.boot(&format!("boot-{boot}"), &append, net)?;
        wait_for(&mut vm, "pushes", READY_WITHIN, |l| {
            l.starts_with("pushed ")
        })?;
        std::thread::sleep(Duration::from_secs_f64(rng.random_range(0.0..5.0)));
        vm.cut()?;
        if down {
            c.restart()?;
        }
        let spooled = vm
            .console_lines()
            .iter()
            .find_map(|l| {
                l.strip_prefix("uplink-ready pending ")?
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or_default();
        let mine: BTreeSet<u32> = vm
            .console_lines()
            .iter()
            .filter_map(|l| l.strip_prefix("pushed ")?.parse().ok())
            .collect();
        eprintln!(
            "boot {boot}: {spooled} batches in the spool at start, {} pushed{}, then the plug pulled",
            mine.len(),
            if down { " (collector down)" } else { "" }
        );
        printed.insert(boot, mine);
    }
    // The last boot only delivers what the spool holds.
    let boot = cuts + 1;
    let append = format!(
        "scanscope.mode=spool scanscope.collector={collector} scanscope.boot={boot} scanscope.push=0"
    );
    let mut vm = m.boot("deliver", &append, net)?;
    wait_for(&mut vm, "the end of delivery", READY_WITHIN * 2, |l| {
        l.starts_with("left ")
    })?;
    let lines = vm.console_lines();
    ensure!(lines.iter().any(|l| l == "left 0"), "{lines:#?}");
    drop(vm);
    c.stop()?;

    // Rows per batch index in the lake.
    let mut rows: BTreeMap<u32, u32> = BTreeMap::new();
    for ((sensor, src, _), (n, _)) in flow_keys(&data)? {
        ensure!(sensor == "vm-spool", "a row from {sensor}");
        ensure!(n == 1, "row {src} stored {n} times (seed {seed:#x})");
        *rows
            .entry(index_of(&src).context("a synthetic source")?)
            .or_default() += 1;
    }
    let want: BTreeSet<u32> = printed.values().flatten().copied().collect();
    let missing: Vec<u32> = want
        .iter()
        .filter(|i| rows.get(i) != Some(&SPOOL_ROWS))
        .copied()
        .take(10)
        .collect();
    ensure!(
        missing.is_empty(),
        "pushed (spooled) batches missing or partial: {missing:?} (seed {seed:#x})"
    );
    // A batch whose push had not yet returned when the power went may be there or not, whole;
    // it can only be the one after the last printed of its boot.
    for (i, n) in &rows {
        if want.contains(i) {
            continue;
        }
        let (boot, k) = (i / 100_000, i % 100_000);
        let next = printed
            .get(&boot)
            .map_or(0, |p| p.iter().map(|x| x % 100_000 + 1).max().unwrap_or(0));
        ensure!(
            k == next && *n == SPOOL_ROWS,
            "batch {i} ({n} rows) was never pushed in boot {boot}"
        );
    }
    eprintln!(
        "spool: {cuts} power cuts in {:.0} s; {} batches spooled, all {} delivered exactly once ({} rows)",
        started.elapsed().as_secs_f64(),
        want.len(),
        want.len(),
        rows.values().sum::<u32>()
    );
    dir.passed();
    Ok(())
}
