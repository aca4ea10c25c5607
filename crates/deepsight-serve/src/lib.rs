//! `deepsight serve`: the local web app. An HTTP API (`docs/serve-api.md`) and an embedded page
//! over one [`Pipeline`]; requests compute on a bounded pool of workers with a bounded queue
//! (503 with Retry-After beyond it), a time limit per request, and bounded state, so that memory
//! stays flat over a long run. No request field is ever used as a file path.

mod api;
mod assets;
mod error;
mod form;
mod state;

pub use error::ApiError;
pub use state::ServeConfig;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use deepsight_pipeline::Pipeline;
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Room for the form's text fields beside the image.
const FORM_SLACK: usize = 64 << 10;

/// The app's routes over `pipeline`.
pub fn router(pipeline: Arc<Pipeline>, config: ServeConfig) -> Router {
    let limit = config.max_upload + FORM_SLACK;
    let state = Arc::new(AppState::new(pipeline, config));
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/app.css", get(assets::app_css))
        .route("/samples/{name}", get(assets::sample))
        .route("/api/health", get(api::health))
        .route("/api/model", get(api::model))
        .route("/api/methods", get(api::methods))
        .route("/api/layers", get(api::layers))
        .route("/api/classify", post(api::classify))
        .route("/api/explain", post(api::explain))
        .route("/api/progress/{job}", get(api::progress))
        .route("/api/cancel/{job}", post(api::cancel))
        .route("/api/curves", post(api::curves))
        .route("/api/result/{id}/maps.safetensors", get(api::raw_maps))
        .fallback(|| async { ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such page or API route") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The server's runtime: two threads accept and answer; the work runs on blocking threads.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

async fn listen(config: &ServeConfig) -> Result<tokio::net::TcpListener, ServeError> {
    let addr = SocketAddr::new(config.host, config.port);
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves until Ctrl-C (or SIGTERM); `ready` is told the address once it listens.
pub fn run(
    pipeline: Pipeline,
    config: ServeConfig,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    runtime()?.block_on(async move {
        let listener = listen(&config).await?;
        ready(listener.local_addr()?);
        let app = router(Arc::new(pipeline), config);
        axum::serve(listener, app)
            .with_graceful_shutdown(stop_signal())
            .await?;
        Ok(())
    })
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A server running on its own thread (tests, benchmarks); stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the server on a thread of its own (port 0: any free port).
pub fn spawn(pipeline: Pipeline, config: ServeConfig) -> Result<Running, ServeError> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(ServeError::Io(e)));
                return;
            }
        };
        rt.block_on(async move {
            let listener = match listen(&config).await {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(listener.local_addr().map_err(ServeError::Io));
            let app = router(Arc::new(pipeline), config);
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    let addr = rx
        .recv()
        .map_err(|_| ServeError::Io(std::io::Error::other("the server thread ended before listening")))??;
    Ok(Running {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}
