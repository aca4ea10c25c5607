//! A bounded loopback load test of `deepsight serve` (a benchmark, not a test; stops by itself).
//!
//! Spawns `<server> serve --port 0 --workers W --queue Q`, sends `--requests` POST /api/explain
//! requests (multipart: the image and `methods`; the server explains its top class) from
//! `--concurrency` client threads, and reports errors, 503s, throughput, latency percentiles and
//! the server's resident memory (VmRSS / VmHWM from /proc) at start, after a quarter, half and all
//! of the requests. For comparison it first times the CLI on the same image (`explain` and
//! `classify`, `--cli-runs` times each).
//!
//! ```sh
//! cargo build --release -p deepsight-cli --bin deepsight
//! cargo run --release -p deepsight-serve --example load_test -- --requests 200 --concurrency 8 \
//!     --workers 2 --queue 16 --methods gradcam,saliency --out load.json
//! ```
//!
//! Options: `--server PATH` (default target/release/deepsight), `--requests N` (200),
//! `--concurrency C` (8), `--workers W` (2), `--queue Q` (16), `--methods LIST`
//! (gradcam,saliency), `--image PATH` (samples/dog.jpg), `--field NAME=VALUE` (an extra form
//! field, repeatable, e.g. `occlusion_stride=32`), `--retry` (on 503, wait the Retry-After seconds
//! and send again, at most `--max-retries` (100) times), `--cli-runs N` (5; 0 skips the CLI
//! timing), `--cli-out DIR` (the CLI's output folder, default $TMPDIR/ds-load/cli),
//! `--timeout S` (600: the longest one request may take), `--trace-every N` (RSS every N
//! requests, default a twentieth of them), `--out FILE.json`.

mod cli_timing;

use cli_timing::{median, percentile, time_cli};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

struct Args {
    server: PathBuf,
    requests: usize,
    concurrency: usize,
    workers: usize,
    queue: usize,
    methods: String,
    image: PathBuf,
    fields: Vec<(String, String)>,
    retry: bool,
    max_retries: usize,
    cli_runs: usize,
    cli_out: PathBuf,
    timeout: Duration,
    trace_every: Option<usize>,
    out: Option<PathBuf>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn parse_args() -> Result<Args> {
    let root = repo_root();
    let mut a = Args {
        server: root.join("target/release/deepsight"),
        requests: 200,
        concurrency: 8,
        workers: 2,
        queue: 16,
        methods: "gradcam,saliency".into(),
        image: root.join("samples/dog.jpg"),
        fields: Vec::new(),
        retry: false,
        max_retries: 100,
        cli_runs: 5,
        cli_out: std::env::temp_dir().join("ds-load/cli"),
        timeout: Duration::from_secs(600),
        trace_every: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--retry" {
            a.retry = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(
                "usage: load_test [--server PATH] [--requests N] [--concurrency C] [--workers W] \
                 [--queue Q] [--methods LIST] [--image PATH] [--field NAME=VALUE]... [--retry] \
                 [--max-retries N] [--cli-runs N] [--cli-out DIR] [--timeout S] [--trace-every N] [--out FILE.json]"
                    .into(),
            );
        }
        let value = it.next().ok_or_else(|| format!("{flag}: expected a value"))?;
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag} '{v}': expected a whole number"))
        };
        match flag.as_str() {
            "--server" => a.server = value.into(),
            "--requests" => a.requests = number(&value)?,
            "--concurrency" => a.concurrency = number(&value)?,
            "--workers" => a.workers = number(&value)?,
            "--queue" => a.queue = number(&value)?,
            "--methods" => a.methods = value,
            "--image" => a.image = value.into(),
            "--field" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--field '{value}': expected NAME=VALUE"))?;
                a.fields.push((k.to_string(), v.to_string()));
            }
            "--max-retries" => a.max_retries = number(&value)?,
            "--cli-runs" => a.cli_runs = number(&value)?,
            "--cli-out" => a.cli_out = value.into(),
            "--timeout" => a.timeout = Duration::from_secs(number(&value)? as u64),
            "--trace-every" => a.trace_every = Some(number(&value)?.max(1)),
            "--out" => a.out = Some(value.into()),
            _ => return Err(format!("unknown option '{flag}' (--help lists them)")),
        }
    }
    if a.requests == 0 || a.concurrency == 0 || a.workers == 0 {
        return Err("--requests, --concurrency and --workers must be at least 1".into());
    }
    Ok(a)
}

/// The server process; killed when dropped, so also when the test fails midway.
struct ServerGuard {
    child: Child,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS and VmHWM of `pid`, in KiB.
#[derive(Clone, Copy, Default)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

fn memory(pid: u32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Starts the server and waits for its `listening on http://ADDR` line; its address.
fn start_server(a: &Args) -> Result<(ServerGuard, String)> {
    let mut child = Command::new(&a.server)
        .args([
            "serve",
            "--port",
            "0",
            "--workers",
            &a.workers.to_string(),
            "--queue",
            &a.queue.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", a.server.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout from the server")?;
    let guard = ServerGuard { child };
    let (tx, rx) = mpsc::channel();
    // Reads every line (so that the pipe never fills), passing on the address once.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("listening on http://")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(180)).map_err(|_| {
        "the server printed no 'listening on http://' line within 180 s (or exited)".to_string()
    })?;
    Ok((guard, format!("http://{addr}")))
}

fn wait_healthy(agent: &ureq::Agent, url: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match agent.get(&format!("{url}/api/health")).call() {
            Ok(r) if r.status() == 200 => {
                return r
                    .into_json::<Value>()
                    .map_err(|e| format!("/api/health: not JSON: {e}"));
            }
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(r) => return Err(format!("/api/health answered {}", r.status())),
            Err(e) => return Err(format!("/api/health: {e}")),
        }
    }
}

/// The multipart body of one explain request, and its Content-Type.
fn multipart(image: &[u8], file_name: &str, fields: &[(String, String)]) -> (Vec<u8>, String) {
    let boundary = "----deepsight-load-test-7d3f9a1c5e";
    let mut body = Vec::with_capacity(image.len() + 1024);
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    let kind = if file_name.ends_with(".png") {
        "image/png"
    } else {
        "image/jpeg"
    };
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{file_name}\"\r\n\
             Content-Type: {kind}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(image);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// What happened to one request.
#[derive(Clone, Default)]
struct Outcome {
    /// Final status (0: no answer: a transport error).
    status: u16,
    /// From the first send to the final answer, retries included.
    latency: f64,
    /// 503 answers received on the way (each followed by a retry when `--retry`).
    busy: usize,
    /// Seconds the server said its work took (`seconds` of the result).
    server_seconds: Option<f64>,
    /// The message of a failure.
    error: Option<String>,
}

fn read_body(r: ureq::Response) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.into_reader().read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Checks a 200 answer: JSON with a map of every asked method.
fn check_result(bytes: &[u8], methods: &[&str]) -> std::result::Result<f64, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("200 but not JSON: {e}"))?;
    for m in methods {
        let png = v["maps"][m]["png"].as_str().unwrap_or_default();
        if !png.starts_with("data:image/png;base64,") {
            return Err(format!("200 without a PNG map of '{m}'"));
        }
    }
    v["seconds"]
        .as_f64()
        .ok_or_else(|| "200 without 'seconds'".to_string())
}

fn one_request(
    agent: &ureq::Agent,
    url: &str,
    body: &[u8],
    ctype: &str,
    a: &Args,
    methods: &[&str],
) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome::default();
    loop {
        let answer = agent
            .post(&format!("{url}/api/explain"))
            .set("Content-Type", ctype)
            .send_bytes(body);
        match answer {
            Ok(r) => {
                out.status = r.status();
                match read_body(r)
                    .map_err(|e| format!("reading the answer: {e}"))
                    .and_then(|b| check_result(&b, methods))
                {
                    Ok(s) => out.server_seconds = Some(s),
                    Err(e) => out.error = Some(e),
                }
            }
            Err(ureq::Error::Status(503, r)) => {
                out.busy += 1;
                let wait = r.header("Retry-After").and_then(|s| s.trim().parse::<u64>().ok());
                if a.retry && out.busy <= a.max_retries {
                    let Some(wait) = wait else {
                        out.status = 503;
                        out.error = Some("503 without a Retry-After of whole seconds".into());
                        break;
                    };
                    let _ = read_body(r);
                    std::thread::sleep(Duration::from_secs(wait));
                    continue;
                }
                out.status = 503;
                if wait.is_none() {
                    out.error = Some("503 without a Retry-After of whole seconds".into());
                }
            }
            Err(ureq::Error::Status(code, r)) => {
                out.status = code;
                let text = r.into_string().unwrap_or_default();
                out.error = Some(format!("{code}: {}", text.chars().take(200).collect::<String>()));
            }
            Err(e) => {
                out.status = 0;
                out.error = Some(format!("transport: {e}"));
            }
        }
        break;
    }
    out.latency = started.elapsed().as_secs_f64();
    out
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("load_test: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> Result<()> {
    let image = std::fs::read(&a.image).map_err(|e| format!("{}: {e}", a.image.display()))?;
    let file_name = a
        .image
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or("image.jpg".into());
    let methods: Vec<&str> = a
        .methods
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    let load_before = load_average();

    // The CLI first, alone (the server is not up yet).
    let cli = if a.cli_runs > 0 {
        eprintln!("timing the CLI ({} runs of explain and classify) ...", a.cli_runs);
        Some(time_cli(a)?)
    } else {
        None
    };

    eprintln!(
        "starting {} serve --workers {} --queue {} ...",
        a.server.display(),
        a.workers,
        a.queue
    );
    let (server, url) = start_server(a)?;
    let pid = server.child.id();
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(a.timeout)
        .max_idle_connections_per_host(a.concurrency.max(1) * 2)
        .build();
    let health = wait_healthy(&agent, &url)?;
    let at_start = memory(pid);

    let mut fields = vec![("methods".to_string(), a.methods.clone())];
    fields.extend(a.fields.iter().cloned());
    let (body, ctype) = multipart(&image, &file_name, &fields);

    // Memory after a quarter, half and all of the requests (50, 100, 200 for the default 200).
    let checkpoints = [(a.requests / 4).max(1), (a.requests / 2).max(1), a.requests];
    let marks: Mutex<Vec<(usize, Memory, f64)>> = Mutex::default();
    // And every `trace_every` requests, for the JSON and a one-line trace.
    let trace_every = a.trace_every.unwrap_or((a.requests / 20).max(1));
    let trace: Mutex<Vec<(usize, Memory, f64)>> = Mutex::default();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(vec![Outcome::default(); a.requests]);
    eprintln!(
        "{url}: {} requests of '{}' from {} client threads ...",
        a.requests, a.methods, a.concurrency
    );
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..a.concurrency.min(a.requests) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= a.requests {
                        break;
                    }
                    let o = one_request(&agent, &url, &body, &ctype, a, &methods);
                    if let Some(e) = &o.error {
                        eprintln!("request {i}: {e}");
                    }
                    outcomes.lock().unwrap()[i] = o;
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    let (at_mark, at_trace) = (checkpoints.contains(&n), n.is_multiple_of(trace_every));
                    if at_mark || at_trace {
                        let (m, t) = (memory(pid), t0.elapsed().as_secs_f64());
                        if at_mark {
                            marks.lock().unwrap().push((n, m, t));
                        }
                        if at_trace {
                            trace.lock().unwrap().push((n, m, t));
                        }
                    }
                    if n.is_multiple_of(25) {
                        eprintln!("  {n}/{} done, {:.1} s", a.requests, t0.elapsed().as_secs_f64());
                    }
                }
            });
        }
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let at_end = memory(pid);
    let health_after = agent
        .get(&format!("{url}/api/health"))
        .call()
        .ok()
        .and_then(|r| r.into_json::<Value>().ok())
        .unwrap_or(Value::Null);
    drop(server);
    let load_after = load_average();

    let outcomes = outcomes.into_inner().unwrap();
    let ok: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status == 200 && o.error.is_none())
        .collect();
    let busy_final = outcomes.iter().filter(|o| o.status == 503).count();
    let busy_answers: usize = outcomes.iter().map(|o| o.busy).sum();
    let retried = outcomes.iter().filter(|o| o.busy > 0 && o.status != 503).count();
    let retried_ok = outcomes
        .iter()
        .filter(|o| o.busy > 0 && o.status == 200 && o.error.is_none())
        .count();
    let errors = outcomes.len() - ok.len() - busy_final;
    let mut lat: Vec<f64> = ok.iter().map(|o| o.latency).collect();
    lat.sort_by(f64::total_cmp);
    let mut busy_lat: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.status == 503)
        .map(|o| o.latency)
        .collect();
    busy_lat.sort_by(f64::total_cmp);
    let server_s: Vec<f64> = ok.iter().filter_map(|o| o.server_seconds).collect();
    let throughput = ok.len() as f64 / elapsed;
    let mut marks = marks.into_inner().unwrap();
    let mut trace = trace.into_inner().unwrap();
    trace.sort_by_key(|m| m.0);
    marks.sort_by_key(|m| m.0);
    let mark = |n: usize| marks.iter().find(|m| m.0 == n).map(|m| m.1).unwrap_or_default();
    let (q1, q2, q4) = (mark(checkpoints[0]), mark(checkpoints[1]), mark(checkpoints[2]));
    let growth = if q1.rss_kib > 0 {
        (q4.rss_kib as f64 - q1.rss_kib as f64) / q1.rss_kib as f64
    } else {
        f64::NAN
    };
    let flat = growth.abs() <= 0.10;
    let per_worker_s = a.workers as f64 / throughput;

    // Markdown.
    let mut md = String::new();
    md += &format!(
        "### `{}` x {}, concurrency {}, {} worker(s), queue {}{}\n\n",
        a.methods,
        a.requests,
        a.concurrency,
        a.workers,
        a.queue,
        if a.fields.is_empty() {
            String::new()
        } else {
            format!(
                ", {}",
                a.fields
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    );
    md += &format!(
        "Server: {} ({}); load average before {load_before}, after {load_after}\n\n",
        health["model"].as_str().unwrap_or("?"),
        url
    );
    md += "| requests | concurrency | workers | queue | 200 | errors | 503 answers | 503 final | retried (then 200) | wall s | throughput req/s | p50 s | p90 s | p99 s | max s | server-side s (median) |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    md += &format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {:.1} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n\n",
        a.requests,
        a.concurrency,
        a.workers,
        a.queue,
        ok.len(),
        errors,
        busy_answers,
        busy_final,
        retried,
        retried_ok,
        elapsed,
        throughput,
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        median(&server_s),
    );
    if !busy_lat.is_empty() {
        md += &format!(
            "503 answers (final) came back in p50 {:.3} s, max {:.3} s.\n\n",
            percentile(&busy_lat, 0.5),
            busy_lat.last().copied().unwrap_or(f64::NAN)
        );
    }
    md += &format!(
        "| server memory | at start (after health) | after {} | after {} | after {} | peak (VmHWM) |\n|---|---|---|---|---|---|\n",
        checkpoints[0], checkpoints[1], checkpoints[2]
    );
    md += &format!(
        "| VmRSS MiB | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n\n",
        mib(at_start.rss_kib),
        mib(q1.rss_kib),
        mib(q2.rss_kib),
        mib(q4.rss_kib),
        mib(at_end.hwm_kib.max(q4.hwm_kib)),
    );
    md += &format!(
        "RSS every {trace_every} requests (MiB): {}.\n\n",
        trace
            .iter()
            .map(|(_, m, _)| format!("{:.0}", mib(m.rss_kib)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    md += &format!(
        "RSS after {} vs after {}: {:+.1}% ({} the 10% goal).\n\n",
        checkpoints[2],
        checkpoints[0],
        growth * 100.0,
        if flat { "within" } else { "outside" }
    );
    md += &format!(
        "Per worker: {:.2} req/s over {} worker(s) = {:.3} s per request per worker.\n",
        throughput, a.workers, per_worker_s
    );
    if let Some(c) = &cli {
        let ms: Vec<String> = c["ms_per_image"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} {:.2} ms", v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        md += &format!(
            "CLI (median of {} runs): `explain` {:.3} s wall, of which {:.3} s explaining in-process \
             (shared forward+backward {:.3} s; ms_per_image beyond the shared passes: {}); `classify` \
             {:.3} s wall (process start + model load + decode + one forward).\n",
            c["runs"],
            c["explain_wall_s"].as_f64().unwrap_or(f64::NAN),
            c["explain_compute_s"].as_f64().unwrap_or(f64::NAN),
            c["shared_passes_s"].as_f64().unwrap_or(f64::NAN),
            ms.join(", "),
            c["classify_wall_s"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!("{md}");

    if let Some(path) = &a.out {
        let pct = json!({"p50": percentile(&lat, 0.5), "p90": percentile(&lat, 0.9), "p99": percentile(&lat, 0.99),
            "max": lat.last().copied()});
        let mem = |m: Memory| json!({"rss_kib": m.rss_kib, "hwm_kib": m.hwm_kib});
        let v = json!({
            "server": a.server, "url": url, "model": health["model"], "image": a.image,
            "requests": a.requests, "concurrency": a.concurrency, "workers": a.workers, "queue": a.queue,
            "methods": methods, "fields": a.fields, "retry": a.retry,
            "ok": ok.len(), "errors": errors, "busy_answers_503": busy_answers, "busy_final_503": busy_final,
            "retried": retried, "retried_then_ok": retried_ok,
            "wall_s": elapsed, "throughput_rps": throughput, "latency_s": pct,
            "latency_503_s": {"p50": percentile(&busy_lat, 0.5), "max": busy_lat.last().copied()},
            "server_seconds_median": median(&server_s),
            "memory": {"start": mem(at_start), "checkpoints": marks.iter().map(|(n, m, t)| json!({"after": n, "at_s": t, "rss_kib": m.rss_kib, "hwm_kib": m.hwm_kib})).collect::<Vec<_>>(),
                "end": mem(at_end),
                "trace": trace.iter().map(|(n, m, t)| json!({"after": n, "at_s": t, "rss_kib": m.rss_kib, "hwm_kib": m.hwm_kib})).collect::<Vec<_>>(), "rss_growth_vs_quarter": growth, "within_10_percent": flat},
            "per_worker_s_per_request": per_worker_s,
            "cli": cli,
            "health_after": health_after,
            "load_average": {"before": load_before, "after": load_after},
            "latencies_s": outcomes.iter().map(|o| o.latency).collect::<Vec<_>>(),
            "statuses": outcomes.iter().map(|o| o.status).collect::<Vec<_>>(),
            "server_seconds_all": outcomes.iter().map(|o| o.server_seconds).collect::<Vec<_>>(),
            "busy_503_per_request": outcomes.iter().map(|o| o.busy).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if errors > 0 {
        return Err(format!("{errors} request(s) failed"));
    }
    Ok(())
}
