//! The HTTP API's contract (`docs/serve-api.md`), over real HTTP on loopback: answers, refusals
//! with their statuses, the work queue, the time limit, cancellation, curves and raw maps.

use deepsight_models::{Arch, ModelSource, Weights};
use deepsight_pipeline::Pipeline;
use deepsight_serve::{Running, ServeConfig};
use serde_json::Value;
use std::time::{Duration, Instant};

fn server(config: ServeConfig) -> Running {
    let loaded = ModelSource::Builtin {
        arch: Arch::Lite0,
        random_seed: None,
    }
    .load(&deepsight_runtime::default_device())
    .unwrap();
    deepsight_serve::spawn(Pipeline::new(loaded), ServeConfig { port: 0, ..config }).unwrap()
}

fn dog() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/dog.jpg")).unwrap()
}

/// A multipart body of `fields` and an `image` file; its content type.
fn multipart(image: &[u8], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "deepsight-test-boundary-7f3a";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").bytes(),
        );
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"dog.jpg\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .bytes(),
    );
    body.extend_from_slice(image);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// POSTs a form; `(status, JSON body, Retry-After)`.
fn post(url: &str, image: &[u8], fields: &[(&str, &str)]) -> (u16, Value, Option<String>) {
    let (content_type, body) = multipart(image, fields);
    let answer = ureq::post(url)
        .set("Content-Type", &content_type)
        .send_bytes(&body);
    let r = match answer {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let (status, retry) = (r.status(), r.header("Retry-After").map(str::to_string));
    let text = r.into_string().unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{url}: not JSON: {text}"));
    (status, v, retry)
}

fn get(url: &str) -> Value {
    ureq::get(url).call().unwrap().into_json().unwrap()
}

fn png_size(data_uri: &str) -> (u32, u32) {
    use base64::Engine;
    let b64 = data_uri
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URI");
    let png = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

fn one_line_error(v: &Value) -> &str {
    let e = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {v}"));
    assert!(!e.is_empty() && !e.contains('\n'), "{e:?}");
    e
}

#[test]
fn explain_answers_the_contract_and_refuses_bad_requests_by_name() {
    let s = server(ServeConfig::default());
    let url = s.url();
    assert_eq!(get(&format!("{url}/api/health"))["status"], "ok");
    let page = ureq::get(&url).call().unwrap().into_string().unwrap();
    assert!(page.contains("app.js") && page.contains("<html"), "{page}");
    let methods = get(&format!("{url}/api/methods"));
    let names: Vec<&str> = methods
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"gradcam") && names.contains(&"occlusion") && names.len() >= 20,
        "{names:?}"
    );
    let occlusion = methods
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "occlusion")
        .unwrap();
    let window = occlusion["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "occlusion_window");
    assert_eq!(window.unwrap()["default"], 32, "{occlusion}");
    let layers = get(&format!("{url}/api/layers"));
    assert_eq!(layers["default"], "features");

    let fields = [
        ("methods", "gradcam,saliency"),
        ("class", "207"),
        ("class", "281"),
    ];
    let (status, v, _) = post(&format!("{url}/api/explain"), &dog(), &fields);
    assert_eq!(status, 200, "{v}");
    let classes: Vec<u64> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(classes, [207, 281]);
    assert_eq!(v["classes"][0]["name"], "golden retriever");
    assert_eq!(v["top"].as_array().unwrap().len(), 5);
    for method in ["gradcam", "saliency"] {
        let m = &v["maps"][method];
        assert_eq!(png_size(m["png"].as_str().unwrap()), (224, 224), "{method}");
        assert_eq!(png_size(m["heatmap"].as_str().unwrap()), (224, 224), "{method}");
        assert_eq!(m["per_class"].as_array().unwrap().len(), 2, "{method}");
        assert_eq!(m["per_class"][1]["class"], 281);
    }
    // Grad-CAM and saliency share one forward and one backward per class.
    assert_eq!(v["passes"]["shared_forward"], 2, "{}", v["passes"]);
    assert_eq!(
        (&v["passes"]["forward"], &v["passes"]["backward"]),
        (&2.into(), &2.into()),
        "{}",
        v["passes"]
    );

    // Raw maps of the result, and its deletion/insertion curves.
    let id = v["id"].as_str().unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut ureq::get(&format!("{url}/api/result/{id}/maps.safetensors"))
            .call()
            .unwrap()
            .into_reader(),
        &mut raw,
    )
    .unwrap();
    let w = Weights::from_safetensors_bytes(&raw).unwrap();
    assert_eq!(w.tensors["gradcam@207"].shape, [224, 224]);
    assert!(w.tensors.contains_key("saliency@281"), "{:?}", w.tensors.keys());
    let curves: Value = ureq::post(&format!("{url}/api/curves"))
        .send_json(serde_json::json!({"id": id, "method": "gradcam", "class": 207}))
        .unwrap()
        .into_json()
        .unwrap();
    for mode in ["deletion", "insertion"] {
        let scores = curves[mode]["scores"].as_array().unwrap();
        assert_eq!(scores.len(), 225, "{mode}: 224 steps of one row each");
        let auc = curves[mode]["auc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auc), "{mode}: {auc}");
    }
    assert!(
        curves["insertion"]["auc"].as_f64() > curves["deletion"]["auc"].as_f64(),
        "{curves}"
    );

    // Refusals: 400 with one line naming what is wrong.
    let explain = format!("{url}/api/explain");
    type Refusal<'a> = (&'a [u8], &'a [(&'a str, &'a str)], &'a str);
    let refusals: [Refusal; 7] = [
        (
            b"not an image at all",
            &[("methods", "gradcam")],
            "not a readable image",
        ),
        (&dog(), &[("methods", "nope")], "method 'nope': unknown method"),
        (
            &dog(),
            &[("methods", "gradcam"), ("class", "5000")],
            "class 5000: the model has 1000 classes",
        ),
        (&dog(), &[("methods", "gradcam"), ("class", "dog")], "class 'dog'"),
        (
            &dog(),
            &[("methods", "gradcam"), ("layer", "nolayer")],
            "unknown layer 'nolayer'",
        ),
        (
            &dog(),
            &[("methods", "occlusion"), ("occlusion_window", "0")],
            "occlusion_window 0",
        ),
        (
            &dog(),
            &[("methods", "gradcam"), ("bogus", "1")],
            "bogus: unknown option",
        ),
    ];
    for (image, fields, expected) in refusals {
        let (status, v, _) = post(&explain, image, fields);
        assert_eq!(status, 400, "{fields:?}: {v}");
        assert!(one_line_error(&v).contains(expected), "{fields:?}: {v}");
    }
    let (status, v, _) = post(&explain, &bomb(), &[("methods", "gradcam")]);
    assert_eq!(status, 400, "{v}");
    assert!(one_line_error(&v).contains("100000x100000"), "{v}");
}

/// A 2x2 PNG whose header claims 100000x100000 pixels (40 GB decoded).
fn bomb() -> Vec<u8> {
    let mut png = deepsight_render::Canvas::new(2, 2, [0, 0, 0]).png();
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let mut crc = !0u32;
    for &b in &png[12..29] {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    png[29..33].copy_from_slice(&(!crc).to_be_bytes());
    png
}

#[test]
fn an_upload_over_the_limit_is_413() {
    let s = server(ServeConfig {
        max_upload: 1 << 20,
        ..ServeConfig::default()
    });
    // Just over the limit: the part the server does not read fits the socket buffers, so the
    // client finishes sending and reads the answer.
    let big = vec![0u8; (1 << 20) + (100 << 10)];
    let (status, v, _) = post(
        &format!("{}/api/explain", s.url()),
        &big,
        &[("methods", "gradcam")],
    );
    assert_eq!(status, 413, "{v}");
    assert!(one_line_error(&v).contains("limit"), "{v}");
}

/// Occlusion with a small window and stride: thousands of forward passes, long enough to be
/// busy, cancelled or timed out.
const LONG: [(&str, &str); 3] = [
    ("methods", "occlusion"),
    ("occlusion_window", "8"),
    ("occlusion_stride", "2"),
];

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_full_queue_is_503_with_retry_after_and_a_job_can_be_cancelled() {
    let s = server(ServeConfig {
        workers: 1,
        queue: 0,
        ..ServeConfig::default()
    });
    let url = s.url();
    let long = std::thread::spawn({
        let url = url.clone();
        move || {
            let fields = [LONG[0], LONG[1], LONG[2], ("job", "long-1")];
            post(&format!("{url}/api/explain"), &dog(), &fields)
        }
    });
    wait_until("the job to run", || {
        let p = get(&format!("{url}/api/progress/long-1"));
        p["state"] == "running" && p["total"].as_u64() > Some(0)
    });
    let (status, v, retry) = post(&format!("{url}/api/explain"), &dog(), &[("methods", "gradcam")]);
    assert_eq!(status, 503, "{v}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok()), "Retry-After");
    one_line_error(&v);

    let cancelled: Value = ureq::post(&format!("{url}/api/cancel/long-1"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(cancelled["cancelled"], true);
    let (status, v, _) = long.join().unwrap();
    assert_eq!((status, v["error"].as_str()), (409, Some("cancelled")), "{v}");
    assert_eq!(get(&format!("{url}/api/progress/long-1"))["state"], "cancelled");
    // The worker is free again.
    wait_until("the worker to be free", || {
        get(&format!("{url}/api/health"))["running"] == 0
    });
    let (status, v, _) = post(&format!("{url}/api/explain"), &dog(), &[("methods", "gradcam")]);
    assert_eq!(status, 200, "{v}");
}

#[test]
fn a_request_over_the_time_limit_is_504_and_its_work_stops() {
    let s = server(ServeConfig {
        workers: 1,
        time_limit: Duration::from_millis(1500),
        ..ServeConfig::default()
    });
    let url = s.url();
    let started = Instant::now();
    let (status, v, _) = post(&format!("{url}/api/explain"), &dog(), &LONG);
    assert_eq!(status, 504, "{v}");
    assert!(one_line_error(&v).contains("time limit"), "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The cancelled work ends at its next progress report and frees the worker.
    wait_until("the worker to be free", || {
        get(&format!("{url}/api/health"))["running"] == 0
    });
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
