//! `scanscope-sensor`: the sensor agent. Thin: parse flags, set up logging, run the library.
use std::process::ExitCode;

use clap::Parser;
use sensor_user::{agent, args::SensorArgs, privilege, respond};

fn main() -> ExitCode {
    // The responder's own process (started by the agent with its listening sockets).
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(respond::child::CHILD_ARG) {
        scanscope_telemetry::init_logging();
        return respond::child::child_main(&args[2..]);
    }
    let cli = SensorArgs::parse();
    scanscope_telemetry::init_logging();
    let mut opts = match cli.into_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Sessions are served by a capability-free child of this binary.
    opts.respond_child = std::env::current_exe().ok();
    // Load and attach while this is the only thread, then keep only CAP_BPF and CAP_NET_ADMIN
    // and install the seccomp filter: the runtime's threads (and all network parsing) start
    // with the reduced sets, confined.
    let prepared = match agent::prepare(&opts).and_then(|p| {
        privilege::drop_to_retained()?;
        privilege::confine()?;
        Ok(p)
    }) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Handlers installed now (in the runtime): a SIGTERM from here on is a graceful stop.
    let shutdown = {
        let _in_rt = rt.enter();
        scanscope_telemetry::shutdown_signal()
    };
    match rt.block_on(agent::run_prepared(opts, prepared, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
