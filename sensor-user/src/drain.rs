//! Drain stage: reads what the kernel produced.
//!
//! * Tuple tables are double-buffered: the kernel writes the table named by `EPOCH`; the agent
//!   flips the epoch, waits a grace period for program runs that read the old epoch to finish,
//!   then reads and deletes every entry of the idle table. Counts are exact: no entry is read
//!   while it can still change.
//! * Counters are per-CPU and only ever grow; the agent keeps the previous snapshot and reports
//!   deltas per interval.
//! * Events come from the ring buffer ([`read_event`]).
use std::time::Duration;

use std::os::fd::AsFd;

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
};
use scanscope_common::{EventRecord, PORT_SLOTS, TupleKey, TupleValue, counter, maps};

/// Errors reading the kernel's maps.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("map {name}: batch lookup: {source}")]
    Batch {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> DrainError {
    move |source| DrainError::Map { name, source }
}

fn map<'a>(ebpf: &'a Ebpf, name: &'static str) -> Result<&'a aya::maps::Map, DrainError> {
    ebpf.map(name).ok_or(DrainError::MissingMap(name))
}

/// Sums of every counter plus the per-CPU ring-buffer-full counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub totals: Vec<u64>,
    pub ringbuf_full_per_cpu: Vec<u64>,
}

impl CounterSnapshot {
    pub fn get(&self, index: u32) -> u64 {
        self.totals.get(index as usize).copied().unwrap_or(0)
    }

    /// `self − earlier`, element-wise.
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        let sub = |a: &[u64], b: &[u64]| {
            a.iter()
                .enumerate()
                .map(|(i, v)| v.saturating_sub(b.get(i).copied().unwrap_or(0)))
                .collect()
        };
        CounterSnapshot {
            totals: sub(&self.totals, &earlier.totals),
            ringbuf_full_per_cpu: sub(&self.ringbuf_full_per_cpu, &earlier.ringbuf_full_per_cpu),
        }
    }
}

/// Reads the per-CPU `COUNTERS` array.
pub fn read_counters(ebpf: &Ebpf) -> Result<CounterSnapshot, DrainError> {
    let arr: PerCpuArray<_, u64> =
        PerCpuArray::try_from(map(ebpf, maps::COUNTERS)?).map_err(map_err(maps::COUNTERS))?;
    let mut totals = vec![0u64; counter::SLOTS as usize];
    let mut ringbuf_full_per_cpu = Vec::new();
    for (i, slot) in totals.iter_mut().enumerate() {
        let per_cpu = arr.get(&(i as u32), 0).map_err(map_err(maps::COUNTERS))?;
        *slot = per_cpu.iter().sum();
        if i as u32 == counter::RINGBUF_FULL {
            ringbuf_full_per_cpu = per_cpu.iter().copied().collect();
        }
    }
    Ok(CounterSnapshot {
        totals,
        ringbuf_full_per_cpu,
    })
}

/// Reads the per-CPU `PORTS` array: packets per TCP port (`0..65536`) then per UDP port.
///
/// One `BPF_MAP_LOOKUP_BATCH` (kernel ≥ 5.6) reads all 131 072 slots of every CPU; where the
/// kernel refuses it, one lookup per slot (131 072 syscalls) does the same.
pub fn read_ports(ebpf: &Ebpf) -> Result<Vec<u64>, DrainError> {
    read_ports_batch(ebpf).or_else(|_| read_ports_per_key(ebpf))
}

/// [`read_ports`] through `BPF_MAP_LOOKUP_BATCH` only.
pub fn read_ports_batch(ebpf: &Ebpf) -> Result<Vec<u64>, DrainError> {
    let batch = |source| DrainError::Batch {
        name: maps::PORTS,
        source,
    };
    let aya::maps::Map::PerCpuArray(data) = map(ebpf, maps::PORTS)? else {
        return Err(batch(std::io::Error::other("not a per-CPU array")));
    };
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| batch(e))?;
    lookup_batch_percpu_u64(data.fd().as_fd(), PORT_SLOTS, cpus).map_err(batch)
}

/// [`read_ports`] with one lookup per slot.
pub fn read_ports_per_key(ebpf: &Ebpf) -> Result<Vec<u64>, DrainError> {
    let arr: PerCpuArray<_, u64> =
        PerCpuArray::try_from(map(ebpf, maps::PORTS)?).map_err(map_err(maps::PORTS))?;
    (0..PORT_SLOTS)
        .map(|i| {
            arr.get(&i, 0)
                .map(|v| v.iter().sum())
                .map_err(map_err(maps::PORTS))
        })
        .collect()
}

/// `BPF_MAP_LOOKUP_BATCH` over a per-CPU array of `u64` with `slots` entries: the per-slot sums.
fn lookup_batch_percpu_u64(
    fd: std::os::fd::BorrowedFd<'_>,
    slots: u32,
    cpus: usize,
) -> std::io::Result<Vec<u64>> {
    use std::os::fd::AsRawFd;
    /// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h).
    #[repr(C)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
    let n = slots as usize;
    let mut keys = vec![0u32; n];
    let mut values = vec![0u64; n * cpus];
    let mut token = 0u32;
    let mut sums = vec![0u64; n];
    let mut filled = 0usize;
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &token as *const u32 as u64
            },
            out_batch: &mut token as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: n as u32,
            map_fd: fd.as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: `attr` points at buffers sized for `n` keys (u32) and `n * cpus` values (u64,
        // the kernel's per-CPU stride for 8-byte values); the kernel writes at most `count` of
        // each, and the size passed is the struct's own.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>() as u32,
            )
        };
        let end = if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(e);
            }
            true // ENOENT: the end of the array (count says how many came with it)
        } else {
            false
        };
        let got = (attr.count as usize).min(n);
        for i in 0..got {
            let key = keys[i] as usize;
            if key < n {
                sums[key] = values[i * cpus..(i + 1) * cpus].iter().sum();
                filled += 1;
            }
        }
        if end || got == 0 || filled >= n {
            break;
        }
        first = false;
    }
    if filled != n {
        return Err(std::io::Error::other(format!(
            "batch lookup returned {filled} of {n} slots"
        )));
    }
    Ok(sums)
}

/// The tuple table the kernel currently writes (0 or 1).
pub fn epoch(ebpf: &Ebpf) -> Result<u32, DrainError> {
    let arr: Array<_, u32> =
        Array::try_from(map(ebpf, maps::EPOCH)?).map_err(map_err(maps::EPOCH))?;
    Ok(arr.get(&0, 0).map_err(map_err(maps::EPOCH))? & 1)
}

/// Points the kernel at the other tuple table; returns the one it wrote until now.
pub fn flip_epoch(ebpf: &mut Ebpf) -> Result<u32, DrainError> {
    let old = epoch(ebpf)?;
    set_epoch(ebpf, old ^ 1)?;
    Ok(old)
}

fn set_epoch(ebpf: &mut Ebpf, value: u32) -> Result<(), DrainError> {
    let m = ebpf
        .map_mut(maps::EPOCH)
        .ok_or(DrainError::MissingMap(maps::EPOCH))?;
    let mut arr: Array<_, u32> = Array::try_from(m).map_err(map_err(maps::EPOCH))?;
    arr.set(0, value, 0).map_err(map_err(maps::EPOCH))
}

/// Reads and deletes every entry of one tuple table (0 or 1).
pub fn drain_table(ebpf: &mut Ebpf, table: u32) -> Result<Vec<(TupleKey, TupleValue)>, DrainError> {
    let name = if table & 1 == 0 {
        maps::TUPLES_0
    } else {
        maps::TUPLES_1
    };
    let m = ebpf.map_mut(name).ok_or(DrainError::MissingMap(name))?;
    let mut tab: HashMap<_, TupleKey, TupleValue> = HashMap::try_from(m).map_err(map_err(name))?;
    let keys: Vec<TupleKey> = tab
        .keys()
        .collect::<Result<_, _>>()
        .map_err(map_err(name))?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        match tab.get(&k, 0) {
            Ok(v) => out.push((k, v)),
            Err(MapError::KeyNotFound) => continue,
            Err(e) => return Err(map_err(name)(e)),
        }
        match tab.remove(&k) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err(name)(e)),
        }
    }
    Ok(out)
}

/// Flips the epoch, waits `grace` for in-flight program runs to finish with the old table,
/// then drains it. Returns the old table's entries.
pub fn rotate_tuples(
    ebpf: &mut Ebpf,
    grace: Duration,
) -> Result<Vec<(TupleKey, TupleValue)>, DrainError> {
    let old = flip_epoch(ebpf)?;
    if !grace.is_zero() {
        std::thread::sleep(grace);
    }
    drain_table(ebpf, old)
}

/// Takes the ring buffer out of the object (the agent polls it on its own).
pub fn take_ringbuf(ebpf: &mut Ebpf) -> Result<RingBuf<MapData>, DrainError> {
    let m = ebpf
        .take_map(maps::EVENTS)
        .ok_or(DrainError::MissingMap(maps::EVENTS))?;
    RingBuf::try_from(m).map_err(map_err(maps::EVENTS))
}

/// Reads one event from the ring buffer, if any. Records of the wrong size (a mismatched
/// object) are skipped and counted by the caller through the `None`-vs-`Some(Err)` split.
pub fn read_event(rb: &mut RingBuf<MapData>) -> Option<Result<EventRecord, usize>> {
    let item = rb.next()?;
    if item.len() < size_of::<EventRecord>() {
        return Some(Err(item.len()));
    }
    // SAFETY: the item holds at least size_of::<EventRecord>() bytes written by the kernel as an
    // EventRecord; read_unaligned because the ring buffer only guarantees 8-byte alignment.
    Some(Ok(unsafe {
        std::ptr::read_unaligned(item.as_ptr().cast::<EventRecord>())
    }))
}
