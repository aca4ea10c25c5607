//! What the server holds between requests, all of it bounded: the work queue (N workers, a fixed
//! number of waiting places), the progress of recent jobs, and a small cache of recent results
//! (for curves and raw downloads). Nothing grows with the number of requests served.

use deepsight_pipeline::{ImageReport, Pipeline};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub host: std::net::IpAddr,
    pub port: u16,
    /// Requests computed at once.
    pub workers: usize,
    /// Requests that may wait for a worker; more get 503 with Retry-After.
    pub queue: usize,
    /// Largest accepted upload, in bytes (413 above).
    pub max_upload: usize,
    /// Longest a request may compute (504 after; its work is cancelled).
    pub time_limit: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 8080,
            workers: 1,
            queue: 16,
            max_upload: 32 << 20,
            time_limit: Duration::from_secs(300),
        }
    }
}

/// Jobs whose progress is kept (the oldest finished ones are forgotten first).
const JOBS_KEPT: usize = 256;
/// Results kept for curves and raw downloads.
const RESULTS_KEPT: usize = 8;

/// A job's progress, as `/api/progress/<job>` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobProgress {
    pub state: &'static str,
    pub method: &'static str,
    pub done: usize,
    pub total: usize,
    pub explained: usize,
    pub to_explain: usize,
    #[serde(skip)]
    pub cancel: Arc<AtomicBool>,
}

/// A result kept for later requests on it.
pub struct Stored {
    pub id: String,
    /// The model input `[3, H, W]` the maps explain.
    pub input: Vec<f32>,
    pub report: ImageReport,
}

pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub config: ServeConfig,
    workers: Arc<Semaphore>,
    waiting: AtomicUsize,
    jobs: Mutex<VecDeque<(String, JobProgress)>>,
    results: Mutex<VecDeque<Arc<Stored>>>,
    next_id: AtomicU64,
    /// Exponential moving average of a request's compute seconds (for Retry-After).
    mean_compute: Mutex<f64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AppState {
    pub fn new(pipeline: Arc<Pipeline>, config: ServeConfig) -> AppState {
        AppState {
            pipeline,
            workers: Arc::new(Semaphore::new(config.workers.max(1))),
            config,
            waiting: AtomicUsize::new(0),
            jobs: Mutex::new(VecDeque::new()),
            results: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
            mean_compute: Mutex::new(1.0),
        }
    }

    /// `(running, waiting)` requests.
    pub fn load(&self) -> (usize, usize) {
        let running = self.config.workers.max(1) - self.workers.available_permits();
        (running, self.waiting.load(Ordering::Relaxed))
    }

    /// A worker, after waiting in the queue; `None` when the queue is full (answer 503).
    pub async fn worker(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.workers.clone().try_acquire_owned() {
            return Some(p);
        }
        let place = self.waiting.fetch_add(1, Ordering::SeqCst);
        if place >= self.config.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let permit = self.workers.clone().acquire_owned().await.ok();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit
    }

    /// Records that a request computed for `seconds`.
    pub fn computed(&self, seconds: f64) {
        let mut m = lock(&self.mean_compute);
        *m = 0.8 * *m + 0.2 * seconds;
    }

    /// Seconds after which a refused client may find a place: the time the queue and the
    /// running requests take to drain at the recent compute time (1 s to 10 min).
    pub fn retry_after(&self) -> u64 {
        let ahead = (self.config.queue + self.config.workers.max(1)) as f64;
        let secs = *lock(&self.mean_compute) * ahead / self.config.workers.max(1) as f64;
        secs.ceil().clamp(1.0, 600.0) as u64
    }

    pub fn fresh_id(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers job `id` as queued; its cancel flag.
    pub fn start_job(&self, id: &str) -> Arc<AtomicBool> {
        let cancel = Arc::new(AtomicBool::new(false));
        let mut jobs = lock(&self.jobs);
        jobs.retain(|(j, _)| j != id);
        while jobs.len() >= JOBS_KEPT {
            let oldest_finished = jobs
                .iter()
                .position(|(_, p)| p.state != "queued" && p.state != "running");
            jobs.remove(oldest_finished.unwrap_or(0));
        }
        let progress = JobProgress {
            state: "queued",
            method: "",
            done: 0,
            total: 0,
            explained: 0,
            to_explain: 0,
            cancel: cancel.clone(),
        };
        jobs.push_back((id.to_string(), progress));
        cancel
    }

    pub fn update_job(&self, id: &str, f: impl FnOnce(&mut JobProgress)) {
        if let Some((_, p)) = lock(&self.jobs).iter_mut().find(|(j, _)| j == id) {
            f(p);
        }
    }

    pub fn job(&self, id: &str) -> Option<JobProgress> {
        lock(&self.jobs)
            .iter()
            .find(|(j, _)| j == id)
            .map(|(_, p)| p.clone())
    }

    /// Keeps `stored`, forgetting the oldest result beyond the cache's size.
    pub fn keep(&self, stored: Stored) {
        let mut r = lock(&self.results);
        while r.len() >= RESULTS_KEPT {
            r.pop_front();
        }
        r.push_back(Arc::new(stored));
    }

    pub fn result(&self, id: &str) -> Option<Arc<Stored>> {
        lock(&self.results).iter().find(|s| s.id == id).cloned()
    }
}
