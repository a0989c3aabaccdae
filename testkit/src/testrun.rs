//! Runs the real XDP object on crafted frames through BPF_PROG_TEST_RUN, with no interface:
//! the seam the kernel-logic tests and the benchmark use.
use std::time::Duration;

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
    programs::{TestRun, TestRunOptions},
};
use scanscope_common::{EventRecord, TupleKey, TupleValue};

use sensor_user::{
    config::RuntimeConfig,
    drain::{self, CounterSnapshot, DrainError},
    load::{self, LoadError},
};

/// Errors running the program.
#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Drain(#[from] DrainError),
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    Run(#[source] aya::programs::ProgramError),
}

/// A loaded object plus its ring buffer.
pub struct Harness {
    pub ebpf: Ebpf,
    ringbuf: Option<RingBuf<MapData>>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("ringbuf", &self.ringbuf.is_some())
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// Loads the scanscope object with `cfg` (the program build this kernel takes).
    pub fn new(cfg: &RuntimeConfig) -> Result<Self, TestRunError> {
        Self::with_variant(cfg, None)
    }

    /// Loads the scanscope object forcing one build of the program (`None`: automatic).
    pub fn with_variant(
        cfg: &RuntimeConfig,
        variant: Option<load::Variant>,
    ) -> Result<Self, TestRunError> {
        let mut ebpf = load::load_object(sensor_user::object::SCANSCOPE, cfg, variant)?;
        let ringbuf = Some(drain::take_ringbuf(&mut ebpf)?);
        Ok(Harness { ebpf, ringbuf })
    }

    /// Loads the do-nothing baseline object.
    pub fn null() -> Result<Self, TestRunError> {
        let ebpf = load::load_object(sensor_user::object::NULL, &RuntimeConfig::default(), None)?;
        Ok(Harness {
            ebpf,
            ringbuf: None,
        })
    }

    /// Runs the program `repeat` times on `frame`; returns the verdict and the kernel's
    /// average run time.
    pub fn run_repeat(
        &mut self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(u32, Duration), TestRunError> {
        let prog = load::program(&mut self.ebpf)?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = repeat;
        let r = prog.test_run(opts).map_err(TestRunError::Run)?;
        Ok((r.return_value, r.duration))
    }

    /// Runs the program once; returns the XDP verdict.
    pub fn run(&mut self, frame: &[u8]) -> Result<u32, TestRunError> {
        Ok(self.run_repeat(frame, 1)?.0)
    }

    /// Which build of the program is loaded.
    pub fn variant(&self) -> Option<load::Variant> {
        load::loaded_variant(&self.ebpf)
    }

    /// Counter totals so far.
    pub fn counters(&self) -> Result<CounterSnapshot, TestRunError> {
        Ok(drain::read_counters(&self.ebpf)?)
    }

    /// Every event waiting in the ring buffer.
    pub fn events(&mut self) -> Vec<EventRecord> {
        let mut out = Vec::new();
        if let Some(rb) = &mut self.ringbuf {
            while let Some(Ok(e)) = drain::read_event(rb) {
                out.push(e);
            }
        }
        out
    }

    /// Drains both tuple tables.
    pub fn tuples(&mut self) -> Result<Vec<(TupleKey, TupleValue)>, TestRunError> {
        let mut t = drain::drain_table(&mut self.ebpf, 0)?;
        t.extend(drain::drain_table(&mut self.ebpf, 1)?);
        t.sort_by_key(|(k, _)| *k);
        Ok(t)
    }

    /// Applies a new runtime configuration.
    pub fn configure(&mut self, cfg: &RuntimeConfig) -> Result<(), TestRunError> {
        Ok(load::apply_config(&mut self.ebpf, cfg)?)
    }
}

/// For privileged tests and benchmarks: true (after printing why) if they cannot load the
/// object here; see [`crate::gate`].
pub fn skip() -> bool {
    crate::gate::skip(sensor_user::object::unavailable_reason())
}
