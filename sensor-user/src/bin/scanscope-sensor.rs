//! `scanscope-sensor`: the sensor agent. Thin: parse flags, set up logging, run the library.
use std::process::ExitCode;

use clap::Parser;
use sensor_user::{agent, args::SensorArgs};

fn main() -> ExitCode {
    let cli = SensorArgs::parse();
    scanscope_telemetry::init_logging();
    let opts = match cli.into_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
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
    match rt.block_on(agent::run(opts, scanscope_telemetry::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
