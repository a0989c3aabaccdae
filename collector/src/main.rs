//! `scanscope-collector`: composes ingestion (`scanscope-ingest`) and analytics
//! (`scanscope-analytics`), which meet only through the lake. Thin: parse, set up logging, run.
use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use scanscope_analytics::{
    args::{AutoRollupArgs, ReportArgs, RollupArgs},
    report, rollup,
};
use scanscope_console::args::{ConsoleArgs, ServeConsoleArgs};
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
#[allow(clippy::large_enum_variant, reason = "parsed once at start")]
enum Cmd {
    /// Serve the ingest gRPC API and write the lake.
    Serve {
        #[command(flatten)]
        ingest: ServeArgs,
        #[command(flatten)]
        rollup: AutoRollupArgs,
        #[command(flatten)]
        console: ServeConsoleArgs,
    },
    /// Serve the console (web UI and JSON API) over an existing lake, read-only.
    Console(ConsoleArgs),
    /// Build a day's ip_daily, port_daily, dos_daily and series_daily tables.
    Rollup(RollupArgs),
    /// Print a day's report from its rollup (the day, one source, or one port).
    Report(ReportArgs),
}

fn main() -> ExitCode {
    keep_freed_memory();
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

/// glibc's malloc gives large blocks (from 128 KiB, the dynamic threshold) their own mapping
/// and trims each thread arena's free top back to the kernel, so buffers that every console
/// query and every Parquet page read allocates again (decompression contexts, masks, merge
/// keys) are faulted in and zeroed afresh each time: about 35 000 page faults per 30-day IP
/// page. Blocks up to 32 MiB come from the arenas instead, and up to 1 GiB of free arena top
/// is kept for the next query (the peak stays what the queries need at once).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc allocator parameters (it takes the arena lock itself);
    // it is called once, before any other thread of this process exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Serve {
            ingest,
            rollup,
            console,
        } => {
            let mut opts = ingest.into_options()?;
            let console_opts = match console.console {
                Some(addr) => {
                    let mut c = console.flags.options(addr, opts.data.clone())?;
                    // `/metrics` on the console's server adds ingest's status at each scrape.
                    let probe = opts.probe.clone();
                    c.metrics = Some(Arc::new(move || {
                        let probe = probe.clone();
                        Box::pin(async move { vec![probe.snapshot().await] })
                    }));
                    Some(c)
                }
                None => None,
            };
            // The analytics half runs beside ingest as a periodic job: the daily rollup.
            if let Some(auto) = rollup.into_auto(opts.data.clone())? {
                let every = auto.check;
                opts.jobs.push(PeriodicJob {
                    name: "rollup",
                    every,
                    run: Arc::new(move || auto.run_due()),
                });
            }
            let rt = runtime()?;
            rt.block_on(async {
                // Handlers first: a SIGTERM from here on is a graceful stop (of both servers).
                let shutdown = scanscope_telemetry::shutdown_signal();
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    shutdown.await;
                    stop_tx.send(true).ok();
                });
                let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    rx.wait_for(|s| *s).await.ok();
                };
                let listener = server::bind(opts.listen).await?;
                // Tests and scripts read the bound addresses (port 0) from these lines.
                println!("listening on {}", listener.local_addr()?);
                let console = match console_opts {
                    Some(c) => {
                        let l = scanscope_console::bind(c.listen).await?;
                        let console = scanscope_console::Console::new(c)?;
                        println!("console on http://{}", l.local_addr()?);
                        let stop = stopped(stop_rx.clone());
                        Some(tokio::spawn(async move {
                            if let Err(e) = console.serve(l, stop).await {
                                tracing::error!(error = %e, "the console stopped");
                            }
                        }))
                    }
                    None => None,
                };
                server::serve(opts, listener, stopped(stop_rx)).await?;
                if let Some(c) = console {
                    c.abort();
                }
                anyhow::Ok(())
            })
        }
        Cmd::Console(a) => {
            let opts = a.flags.options(a.listen, a.data.clone())?;
            let rt = runtime()?;
            rt.block_on(async {
                let shutdown = scanscope_telemetry::shutdown_signal();
                let l = scanscope_console::bind(opts.listen).await?;
                let console = scanscope_console::Console::new(opts)?;
                println!("console on http://{}", l.local_addr()?);
                console.serve(l, shutdown).await?;
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
