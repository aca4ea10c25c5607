//! The handlers of the HTTP API (`docs/serve-api.md`, the README's "HTTP API" section).

use crate::error::ApiError;
use crate::form::{self, Upload};
use crate::state::{AppState, Stored};
use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use deepsight_eval::causal::{CausalMode, causal_curve};
use deepsight_pipeline::{Hooks, ImageReport, Pipeline, PipelineError, Timing};
use deepsight_runtime::to_vec;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

type Shared = State<Arc<AppState>>;

fn data_uri(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

pub async fn health(State(s): Shared) -> Json<Value> {
    let (running, waiting) = s.load();
    Json(
        json!({"status": "ok", "model": s.pipeline.description(), "workers": s.config.workers,
        "running": running, "waiting": waiting}),
    )
}

pub async fn model(State(s): Shared) -> Json<Value> {
    let p = &s.pipeline;
    Json(
        json!({"description": p.description(), "input_size": p.input_size(), "classes": p.class_names(),
        "default_layer": p.layers().1, "samples": crate::assets::SAMPLES.iter().map(|s| s.0).collect::<Vec<_>>(),
        "max_upload_bytes": s.config.max_upload}),
    )
}

pub async fn methods() -> Json<Value> {
    let entries = deepsight_pipeline::methods::entries();
    let defaults = deepsight_pipeline::Settings::default().values();
    let list: Vec<Value> = entries
        .iter()
        .map(|m| {
            let options: Vec<Value> = m
                .options
                .iter()
                .map(|o| {
                    let mut v = serde_json::to_value(o).unwrap_or_default();
                    v["default"] = defaults.get(o.name).cloned().unwrap_or_default();
                    v
                })
                .collect();
            json!({"name": m.name, "title": m.title, "doc": m.doc, "signed": m.signed, "options": options})
        })
        .collect();
    Json(Value::Array(list))
}

pub async fn layers(State(s): Shared) -> Json<Value> {
    let (layers, default) = s.pipeline.layers();
    let rows: Vec<Value> = layers
        .iter()
        .map(|l| json!({"name": l.name, "op": l.op, "shape": l.shape, "params": l.params, "spatial": l.shape.len() == 4}))
        .collect();
    Json(json!({"default": default, "layers": rows}))
}

/// Runs `work` on a worker thread, after a place in the queue, within the time limit; sets
/// `cancel` when the limit passes so that the work stops at its next check.
async fn on_worker<T: Send + 'static>(
    s: &Arc<AppState>,
    cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let Some(permit) = s.worker().await else {
        let retry = s.retry_after();
        return Err(ApiError {
            retry_after: Some(retry),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("busy: every worker is computing and the queue is full; retry in {retry} s"),
            )
        });
    };
    // The permit lives as long as the computation, not the request: a timed-out request frees
    // its worker only when the work has really stopped.
    let (state, started) = (s.clone(), std::time::Instant::now());
    let task = tokio::task::spawn_blocking(move || {
        let out = work();
        state.computed(started.elapsed().as_secs_f64());
        drop(permit);
        out
    });
    match tokio::time::timeout(s.config.time_limit, task).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )),
        Err(_) => {
            if let Some(c) = cancel {
                c.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let secs = s.config.time_limit.as_secs_f64();
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("over the time limit of {secs} s per request (see --time-limit)"),
            ))
        }
    }
}

fn decode(p: &Pipeline, upload: &Upload) -> Result<deepsight_runtime::Tensor<4>, ApiError> {
    let img = p.decode(&upload.name, &upload.bytes)?;
    Ok(p.batch(&[img])?)
}

fn top_json(classes: &[deepsight_pipeline::ClassScore]) -> Vec<Value> {
    classes
        .iter()
        .map(|c| json!({"index": c.index, "name": c.name, "probability": c.probability}))
        .collect()
}

pub async fn classify(State(s): Shared, multipart: Multipart) -> Result<Json<Value>, ApiError> {
    let form = form::read_image_only(multipart, s.config.max_upload).await?;
    let p = s.pipeline.clone();
    let top = on_worker(&s, None, move || {
        let x = decode(&p, &form)?;
        Ok(p.classify(x, 5)?.remove(0))
    })
    .await?;
    Ok(Json(json!({"top": top_json(&top)})))
}

/// The JSON of one explained image (maps as data URIs).
fn result_json(
    id: &str,
    p: &Pipeline,
    r: &ImageReport,
    (timings, shared, (forward, backward)): (&[Timing], &Timing, (usize, usize)),
    seconds: f64,
) -> Value {
    let mut maps = serde_json::Map::new();
    for t in timings {
        let per_class: Vec<Value> = r
            .results
            .iter()
            .filter(|m| m.method == t.method)
            .map(|m| {
                let extras: Vec<Value> = m
                    .extras
                    .iter()
                    .map(|x| json!({"name": x.name, "title": x.title.join(" / "), "png": data_uri(&x.picture.png())}))
                    .collect();
                json!({"class": m.class, "png": data_uri(&m.overlay.png()), "heatmap": data_uri(&m.heat.png()), "extras": extras})
            })
            .collect();
        let Some(first) = per_class.first().cloned() else {
            continue;
        };
        let signed = r.results.iter().any(|m| m.method == t.method && m.signed);
        maps.insert(t.method.clone(), json!({"signed": signed, "seconds": t.seconds,
            "passes": {"forward": t.forward_passes, "backward": t.backward_passes},
            "png": first["png"], "heatmap": first["heatmap"], "class": first["class"], "per_class": per_class}));
    }
    json!({"id": id, "model": p.description(), "size": p.input_size(), "input": data_uri(&r.view.png()),
        "top": top_json(&r.top), "classes": top_json(&r.classes), "maps": maps,
        "passes": {"forward": forward, "backward": backward, "shared_forward": shared.forward_passes, "shared_backward": shared.backward_passes},
        "seconds": seconds})
}

pub async fn explain(State(s): Shared, multipart: Multipart) -> Result<Json<Value>, ApiError> {
    let form = form::read(multipart, s.config.max_upload).await?;
    let job = form.job.clone().unwrap_or_else(|| s.fresh_id("job"));
    let cancel = s.start_job(&job);
    let hooks = job_hooks(&s, &job, cancel.clone());
    // A bad request is refused before it takes a place in the queue.
    let prepared = match s.pipeline.prepare(&form.request, &hooks) {
        Ok(p) => p,
        Err(e) => {
            s.update_job(&job, |j| j.state = "failed");
            return Err(e.into());
        }
    };
    let (state, p, id) = (s.clone(), s.pipeline.clone(), s.fresh_id("r"));
    let job_id = job.clone();
    let out = on_worker(&s, Some(cancel.clone()), move || {
        let started = Instant::now();
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(PipelineError::Cancelled.into());
        }
        state.update_job(&job_id, |j| j.state = "running");
        let x = decode(&p, &form.image)?;
        let report = p.explain(&prepared, x.clone(), &hooks)?.remove(0);
        let (timings, shared) = prepared.timings();
        let passes = prepared.passes_run();
        let seconds = started.elapsed().as_secs_f64();
        let value = result_json(&id, &p, &report, (&timings, &shared, passes), seconds);
        state.keep(Stored {
            id,
            input: to_vec(x),
            report,
        });
        Ok(value)
    })
    .await;
    let state = match &out {
        Ok(_) => "done",
        Err(e) if e.status == StatusCode::CONFLICT => "cancelled",
        Err(_) => "failed",
    };
    s.update_job(&job, |j| j.state = state);
    out.map(Json)
}

fn job_hooks(s: &Arc<AppState>, job: &str, cancel: Arc<std::sync::atomic::AtomicBool>) -> Hooks {
    let (a, b) = (s.clone(), s.clone());
    let (j1, j2) = (job.to_string(), job.to_string());
    Hooks {
        progress_of: Some(Arc::new(move |method| {
            let (s, job) = (a.clone(), j1.clone());
            deepsight_explain::Progress::new(move |done, total| {
                s.update_job(&job, |j| {
                    j.method = method;
                    j.done = done;
                    j.total = total;
                })
            })
        })),
        explained: Some(Arc::new(move |done, total| {
            b.update_job(&j2, |j| {
                j.explained = done;
                j.to_explain = total;
            })
        })),
        cancel: Some(cancel),
    }
}

pub async fn progress(State(s): Shared, Path(job): Path<String>) -> Json<Value> {
    match s.job(&job) {
        Some(p) => Json(serde_json::to_value(p).unwrap_or_default()),
        None => Json(
            json!({"state": "unknown", "method": "", "done": 0, "total": 0, "explained": 0, "to_explain": 0}),
        ),
    }
}

pub async fn cancel(State(s): Shared, Path(job): Path<String>) -> Result<Json<Value>, ApiError> {
    let Some(p) = s.job(&job) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("job '{}': unknown", job.chars().take(64).collect::<String>()),
        ));
    };
    p.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(json!({"cancelled": true})))
}

#[derive(serde::Deserialize)]
pub struct CurvesRequest {
    id: String,
    method: String,
    class: usize,
}

pub async fn curves(State(s): Shared, Json(q): Json<CurvesRequest>) -> Result<Json<Value>, ApiError> {
    let stored = s.result(&q.id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("result '{}' is no longer kept: explain again", q.id),
        )
    })?;
    let Some(m) = stored
        .report
        .results
        .iter()
        .find(|r| r.method == q.method && r.class == q.class)
    else {
        return Err(ApiError::bad(format!(
            "result '{}' has no map of method '{}' for class {}",
            q.id, q.method, q.class
        )));
    };
    let map = m.map.max_abs_over_channels();
    let p = s.pipeline.clone();
    let value = on_worker(&s, None, move || {
        let [h, w] = p.input_size();
        let mut out = serde_json::Map::new();
        for mode in [CausalMode::Deletion, CausalMode::Insertion] {
            let (c, _) = causal_curve(p.model(), &stored.input, [3, h, w], &map, q.class, mode, w, 32)
                .map_err(PipelineError::from)?;
            out.insert(mode.name().into(), json!({"scores": c.scores, "auc": c.auc}));
        }
        Ok(Value::Object(out))
    })
    .await?;
    Ok(Json(value))
}

pub async fn raw_maps(State(s): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let stored = s
        .result(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "result is no longer kept: explain again"))?;
    let bytes = stored
        .report
        .raw_tensors()
        .to_safetensors_bytes()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let disposition = format!("attachment; filename=\"{}.maps.safetensors\"", stored.id);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}
