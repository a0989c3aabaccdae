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

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
};
use sensor_common::{EventRecord, PORT_SLOTS, TupleKey, TupleValue, counter, maps};

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
pub fn read_ports(ebpf: &Ebpf) -> Result<Vec<u64>, DrainError> {
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
