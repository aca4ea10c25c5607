//! `deepsight serve`: the local web app on one loaded model (see the README's "Web app" section).

use crate::model_arg::ModelArgs;
use anyhow::{Result, bail};
use deepsight_pipeline::Pipeline;
use deepsight_serve::ServeConfig;
use std::net::IpAddr;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on; loopback unless another is asked for (the app has no login).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Requests computed at once. Each request already uses every core, so more workers mostly
    /// cost memory on a small machine; raise it on a many-core one.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Requests that may wait for a worker; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// Largest image upload, in MiB (413 above).
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    max_upload: usize,
    /// Longest a request may compute, in seconds (504 after; the work is cancelled).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    time_limit: u64,
}

pub fn run(a: Args) -> Result<()> {
    if a.workers == 0 || a.max_upload == 0 || a.time_limit == 0 {
        bail!("--workers, --max-upload and --time-limit must be at least 1");
    }
    if a.max_upload > 4096 {
        bail!("--max-upload {}: at most 4096 MiB", a.max_upload);
    }
    let pipeline = Pipeline::new(a.model.load()?);
    let description = pipeline.description().to_string();
    let config = ServeConfig {
        host: a.host,
        port: a.port,
        workers: a.workers,
        queue: a.queue,
        max_upload: a.max_upload << 20,
        time_limit: Duration::from_secs(a.time_limit),
    };
    if !a.host.is_loopback() {
        eprintln!(
            "note: listening on {}: anyone who can reach it can use the app",
            a.host
        );
    }
    deepsight_serve::run(pipeline, config, |addr| {
        println!("deepsight serve: {description}");
        println!("listening on http://{addr} (Ctrl-C stops)");
    })?;
    Ok(())
}
