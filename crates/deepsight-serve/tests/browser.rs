//! The page of `deepsight serve` in a real browser (headless Chromium over WebDriver), used as a
//! person would: upload an image, tick two methods and two classes, press Explain, move the
//! opacity slider. With `DEEPSIGHT_SCREENSHOT=<file.png>` it also saves the README's screenshot.
//!
//! Needs `chromedriver` (`/usr/bin/chromedriver`, or the path in `CHROMEDRIVER`) and Chromium
//! (`/usr/bin/chromium`, or the path in `CHROMIUM`); without the driver the test says it is
//! skipped and passes, unless `DEEPSIGHT_REQUIRE_BROWSER=1` (CI) makes that a failure.

use deepsight_models::{Arch, ModelSource};
use deepsight_pipeline::Pipeline;
use deepsight_serve::ServeConfig;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Res<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($msg)+).into());
        }
    };
}

const METHODS: [&str; 2] = ["gradcam", "saliency"];
const EXPLAIN_TIMEOUT: Duration = Duration::from_secs(120);
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The whole browser part; a hung browser fails the test instead of blocking CI.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The chromedriver process (in a process group of its own, with the browser it starts) and
/// the browser's fresh profile folder; dropping it, on a panic too, kills the group and removes
/// the folder.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    fn start(exe: &Path) -> Res<Driver> {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let profile =
            std::env::temp_dir().join(format!("deepsight-browser-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&profile)?;
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                profile.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let mut driver = Driver { child, port, profile };
        driver.wait_ready()?;
        Ok(driver)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) -> Res {
        let start = Instant::now();
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("chromedriver exited at start ({status}){}", self.log_tail()).into());
            }
            let status = agent.get(&format!("{}/status", self.url())).call();
            if let Ok(resp) = status
                && let Ok(body) = resp.into_json::<Value>()
                && body["value"]["ready"] == json!(true)
            {
                return Ok(());
            }
            ensure!(
                start.elapsed() < STEP_TIMEOUT,
                "chromedriver did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.profile.join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("\nchromedriver log (tail):\n{tail}")
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        // The whole group: a browser left behind by a failed session goes too.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMEDRIVER").map_or_else(|| "/usr/bin/chromedriver".into(), PathBuf::from);
    path.is_file().then_some(path)
}

#[test]
fn page_explains_an_upload_in_a_browser() -> Res {
    let Some(driver_exe) = chromedriver() else {
        let required = std::env::var("DEEPSIGHT_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        ensure!(
            !required,
            "chromedriver not found, and DEEPSIGHT_REQUIRE_BROWSER=1 requires the browser test"
        );
        println!("skipped: chromedriver not found (install chromium and chromium-driver)");
        return Ok(());
    };
    let t0 = Instant::now();
    let loaded = ModelSource::Builtin {
        arch: Arch::Lite0,
        random_seed: None,
    }
    .load(&deepsight_runtime::default_device())?;
    let server = deepsight_serve::spawn(
        Pipeline::new(loaded),
        ServeConfig {
            port: 0,
            ..Default::default()
        },
    )?;
    let signed = signed_methods(&server.url())?;
    let driver = Driver::start(&driver_exe)?;
    println!(
        "server and chromedriver up in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let client = connect(&driver).await?;
        // The session is closed whatever the scenario's outcome, so the browser always exits.
        let outcome = tokio::time::timeout(TEST_TIMEOUT, scenario(&client, &server.url(), &signed)).await;
        // A hung browser may not close either: the driver's drop kills it then.
        let closed = tokio::time::timeout(STEP_TIMEOUT, client.close()).await;
        outcome.map_err(|_| format!("the browser test took over {} s", TEST_TIMEOUT.as_secs()))??;
        closed.map_err(|_| "the browser session did not close")??;
        Res::Ok(())
    })?;
    println!("browser test passed in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Whether each of [`METHODS`] is signed, as the server says: it decides the slider's rule.
fn signed_methods(base: &str) -> Res<Vec<bool>> {
    let methods: Value = ureq::get(&format!("{base}/api/methods")).call()?.into_json()?;
    METHODS
        .iter()
        .map(|name| {
            let m = methods
                .as_array()
                .and_then(|a| a.iter().find(|m| m["name"] == *name));
            m.and_then(|m| m["signed"].as_bool())
                .ok_or_else(|| format!("/api/methods lacks {name}").into())
        })
        .collect()
}

async fn connect(driver: &Driver) -> Res<Client> {
    let profile = driver.profile.join("profile");
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        // Without these Chromium waits on the network that this machine may not have.
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=1400,1000".into(),
    ];
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut options = json!({ "args": args });
    let binary = std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    if binary.is_file() {
        options["binary"] = json!(binary);
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .map_err(|e| format!("cannot open a browser session: {e}{}", driver.log_tail()))?;
    Ok(client)
}

/// Evaluates `expr` (a JS expression) in the page.
async fn js(client: &Client, expr: &str) -> Res<Value> {
    Ok(client.execute(&format!("return ({expr});"), vec![]).await?)
}

/// Polls `expr` until it is truthy; `what` names the wait in the error.
async fn wait_js(client: &Client, expr: &str, timeout: Duration, what: &str) -> Res<Value> {
    let start = Instant::now();
    loop {
        let v = js(client, expr).await?;
        let truthy = !matches!(&v, Value::Null | Value::Bool(false))
            && v != json!(0)
            && v != json!("")
            && v != json!([]);
        if truthy {
            return Ok(v);
        }
        let status = js(client, "document.querySelector('#status').textContent").await?;
        let error = js(client, "document.querySelector('#error').hidden ? '' : document.querySelector('#error-text').textContent").await?;
        ensure!(
            status != json!("error"),
            "the page reported an error while waiting for {what}: {error}"
        );
        ensure!(
            start.elapsed() < timeout,
            "timed out after {} s waiting for {what} (status {status}, error {error})",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scenario(client: &Client, base: &str, signed: &[bool]) -> Res {
    let t = Instant::now();
    client.goto(base).await?;
    wait_js(
        client,
        "document.querySelectorAll('input.method-pick').length > 0 \
         && document.querySelector('#status').textContent === 'ready'",
        STEP_TIMEOUT,
        "the methods list",
    )
    .await?;
    let model = client.find(Locator::Css("#model-desc")).await?.text().await?;
    ensure!(model.contains("lite0"), "the header names the model: {model:?}");

    // 1. Upload the sample through the file input, as the file chooser would.
    let dog = std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg"))?;
    let input = client.find(Locator::Css("#file-input")).await?;
    input.send_keys(&dog.to_string_lossy()).await?;
    wait_js(
        client,
        "document.querySelectorAll('#top5 li').length === 5 \
         && document.querySelector('#status').textContent === 'ready'",
        STEP_TIMEOUT,
        "the top-5 classes",
    )
    .await?;
    let mut probs = Vec::new();
    for li in client.find_all(Locator::Css("#top5 li")).await? {
        let text = li.text().await?;
        let prob = li.find(Locator::Css(".prob")).await?.text().await?;
        probs.push(parse_prob(&prob).ok_or_else(|| format!("no probability in the top-5 row {text:?}"))?);
    }
    ensure!(
        probs.windows(2).all(|w| w[0] >= w[1]) && probs[0] > 0.0 && probs.iter().sum::<f64>() <= 1.001,
        "top-5 probabilities out of order or range: {probs:?}"
    );
    let name = client.find(Locator::Css("#image-name")).await?.text().await?;
    ensure!(name.starts_with("dog.jpg"), "the chosen file is named: {name:?}");
    println!(
        "uploaded and classified in {:.1} s: top-5 {probs:?}",
        t.elapsed().as_secs_f64()
    );

    // 2. Exactly two methods and the two most probable classes, ticked by clicks.
    for pick in client.find_all(Locator::Css("input.method-pick")).await? {
        let want = METHODS.contains(&pick.attr("value").await?.unwrap_or_default().as_str());
        if pick.is_selected().await? != want {
            pick.click().await?;
        }
    }
    let mut classes = Vec::new();
    for (i, pick) in client
        .find_all(Locator::Css("#top5 input.class-pick"))
        .await?
        .into_iter()
        .enumerate()
    {
        let want = i < 2;
        if pick.is_selected().await? != want {
            pick.click().await?;
        }
        if want {
            classes.push(pick.attr("value").await?.unwrap_or_default());
        }
    }
    let methods = js(
        client,
        "Array.from(document.querySelectorAll('input.method-pick:checked'), i => i.value)",
    )
    .await?;
    let mut methods: Vec<&str> = methods
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    methods.sort_unstable();
    ensure!(
        methods == METHODS,
        "checked methods: {methods:?}, expected {METHODS:?}"
    );
    let checked = js(
        client,
        "Array.from(document.querySelectorAll('input.class-pick:checked'), i => i.value)",
    )
    .await?;
    ensure!(
        checked == json!(classes),
        "checked classes: {checked}, expected {classes:?}"
    );

    // 3. Explain: one cell per (method, class), each with a decoded heatmap.
    let t = Instant::now();
    client.find(Locator::Css("#explain-btn")).await?.click().await?;
    wait_js(
        client,
        "document.querySelector('#status').textContent === 'done'",
        EXPLAIN_TIMEOUT,
        "the explanation",
    )
    .await?;
    println!("explained in {:.1} s", t.elapsed().as_secs_f64());
    let cells = js(
        client,
        "Array.from(document.querySelectorAll('div.cell[data-method][data-class]'), c => {
           const img = c.querySelector('img.heatmap');
           return [c.dataset.method, c.dataset.class, img ? img.complete && img.naturalWidth : -1];
         })",
    )
    .await?;
    let cells = cells.as_array().cloned().unwrap_or_default();
    ensure!(
        cells.len() == 4,
        "expected 2 methods x 2 classes = 4 cells, got {cells:?}"
    );
    for m in METHODS {
        for c in &classes {
            let cell = cells.iter().find(|x| x[0] == m && x[1] == json!(c));
            let cell = cell.ok_or_else(|| format!("no cell for {m} x class {c}: {cells:?}"))?;
            ensure!(
                cell[2].as_u64().unwrap_or(0) > 0,
                "the {m} x {c} heatmap is not shown: {cell}"
            );
        }
    }
    let error = js(
        client,
        "document.querySelector('#error').hidden || !document.querySelector('#error-text').textContent",
    )
    .await?;
    ensure!(
        error == json!(true),
        "the error banner shows after a good explain"
    );
    let summary = client
        .find(Locator::Css("#results-summary"))
        .await?
        .text()
        .await?;
    ensure!(summary.starts_with("result "), "the results bar: {summary:?}");

    // 4. The opacity slider fades every heatmap without a request; the keyboard moves it.
    let opacities = "Array.from(document.querySelectorAll('img.heatmap'), \
                     i => [i.closest('.cell').dataset.method, Number(getComputedStyle(i).opacity)])";
    check_opacity(&js(client, opacities).await?, signed, 0.5)?;
    js(
        client,
        "(() => { window.__fetched = []; const f = window.fetch; \
           window.fetch = (...a) => { window.__fetched.push(String(a[0])); return f(...a); }; \
           window.__resources = performance.getEntriesByType('resource').length; return true; })()",
    )
    .await?;
    let slider = client.find(Locator::Css("#opacity")).await?;
    let left: String = std::iter::repeat_n(Key::Left.to_string(), 30).collect();
    slider.send_keys(&left).await?;
    let shown = client.find(Locator::Css("#opacity-value")).await?.text().await?;
    ensure!(
        shown == "0.20",
        "the slider reads {shown:?} after 30 steps left from 0.50"
    );
    check_opacity(&js(client, opacities).await?, signed, 0.2)?;
    // And back up, past the start (0.6 also makes a clearer screenshot than 0.2).
    let right: String = std::iter::repeat_n(Key::Right.to_string(), 40).collect();
    slider.send_keys(&right).await?;
    let shown = client.find(Locator::Css("#opacity-value")).await?.text().await?;
    ensure!(
        shown == "0.60",
        "the slider reads {shown:?} after 40 steps right from 0.20"
    );
    check_opacity(&js(client, opacities).await?, signed, 0.6)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = js(
        client,
        "[window.__fetched, performance.getEntriesByType('resource').length - window.__resources, \
          document.querySelector('#status').textContent]",
    )
    .await?;
    ensure!(
        after == json!([[], 0, "done"]),
        "moving the slider sent requests: {after}"
    );

    if let Some(path) = std::env::var_os("DEEPSIGHT_SCREENSHOT") {
        screenshot(client, Path::new(&path)).await?;
    }
    Ok(())
}

/// `0.5 %`-style or `3.2e-4`-style, as app.js writes it.
fn parse_prob(text: &str) -> Option<f64> {
    let p = match text.trim().strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().ok()? / 100.0,
        None => text.trim().parse::<f64>().ok()?,
    };
    (0.0..=1.0).contains(&p).then_some(p)
}

/// `[[method, opacity], ...]` against the rule of docs/serve-api.md: `alpha` for unsigned
/// maps, `min(1, 1.6 alpha)` for signed ones.
fn check_opacity(found: &Value, signed: &[bool], alpha: f64) -> Res {
    let found = found.as_array().cloned().unwrap_or_default();
    ensure!(found.len() == 4, "expected 4 heatmaps, found {found:?}");
    for pair in &found {
        let method = pair[0].as_str().unwrap_or_default();
        let i = METHODS
            .iter()
            .position(|m| *m == method)
            .ok_or_else(|| format!("a cell of {method}"))?;
        let want = if signed[i] { (1.6 * alpha).min(1.0) } else { alpha };
        let got = pair[1].as_f64().unwrap_or(f64::NAN);
        ensure!(
            (got - want).abs() < 1e-3,
            "{method} heatmap opacity {got}, expected {want} at alpha {alpha}"
        );
    }
    Ok(())
}

/// The page with the result grid in view, tall enough for the whole grid.
async fn screenshot(client: &Client, path: &Path) -> Res {
    let height = js(
        client,
        "Math.ceil(document.querySelector('#results').getBoundingClientRect().bottom + window.scrollY + 24)",
    )
    .await?;
    let height = height.as_f64().unwrap_or(1000.0).clamp(1000.0, 2400.0) as u32;
    client.set_window_size(1400, height).await?;
    // No focus ring on the slider the keyboard moved.
    js(
        client,
        "(document.activeElement && document.activeElement.blur(), window.scrollTo(0, 0), true)",
    )
    .await?;
    let png = client.screenshot().await?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, &png)?;
    println!("screenshot: {} ({} bytes)", path.display(), png.len());
    Ok(())
}
