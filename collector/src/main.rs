//! `scanscope-collector`: composes ingestion (`scanscope-ingest`) and analytics
//! (`scanscope-analytics`), which meet only through the lake. Thin: parse, set up logging, run.
use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use scanscope_analytics::{
    args::{AutoRollupArgs, ReportArgs, RollupArgs},
    report, rollup,
};
use scanscope_ingest::{
    args::ServeArgs,
    server::{self, PeriodicJob},
};

/// Receives batches from scanscope sensors and writes a daily Parquet lake.
#[derive(Parser, Debug)]
#[command(name = "scanscope-collector", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the ingest gRPC API and write the lake.
    Serve {
        #[command(flatten)]
        ingest: ServeArgs,
        #[command(flatten)]
        rollup: AutoRollupArgs,
    },
    /// Build a day's ip_daily, port_daily, dos_daily and series_daily tables.
    Rollup(RollupArgs),
    /// Print a day's report from its rollup (the day, one source, or one port).
    Report(ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    scanscope_telemetry::init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Serve { ingest, rollup } => {
            let mut opts = ingest.into_options()?;
            // The analytics half runs beside ingest as a periodic job: the daily rollup.
            if let Some(auto) = rollup.into_auto(opts.data.clone())? {
                let every = auto.check;
                opts.jobs.push(PeriodicJob {
                    name: "rollup",
                    every,
                    run: Arc::new(move || auto.run_due()),
                });
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            rt.block_on(async {
                // Handlers first: a SIGTERM from here on is a graceful stop.
                let shutdown = scanscope_telemetry::shutdown_signal();
                let listener = server::bind(opts.listen).await?;
                // Tests and scripts read the bound address (port 0) from this line.
                println!("listening on {}", listener.local_addr()?);
                server::serve(opts, listener, shutdown).await?;
                anyhow::Ok(())
            })
        }
        Cmd::Rollup(a) => {
            let s = rollup::run(&a.options()?)?;
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "rollup {}: {} sources ({} scanners), {} ports, {} backscatter sources, {} active sensors; {} flow rows, {} event rows in {:.2} s",
                    s.date,
                    s.sources,
                    s.scanners,
                    s.ports,
                    s.dos_victims,
                    s.active_sensors,
                    s.flow_rows,
                    s.event_rows,
                    s.seconds
                );
            }
            Ok(())
        }
        Cmd::Report(a) => {
            let (date, q, opts) = a.query();
            let v = report::build(&a.data, date, &q, &opts)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", report::render_text(&q, &v));
            }
            Ok(())
        }
    }
}
