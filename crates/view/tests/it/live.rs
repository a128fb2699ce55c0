//! The live view (`figure2 serve`) in a real browser: headless Chromium driven through
//! WebDriver (chromedriver) with fantoccini.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test says it is
//! skipped and passes, unless `FIGURE2_BROWSER_TEST=1` (CI sets it after installing
//! them), where a missing browser is a failure. Every wait polls with a deadline.

use fantoccini::{Client, ClientBuilder, Locator};
use figure2_runner::Scenario;
use figure2_view::lang::{self, Lang};
use figure2_view::web::{self, Live};
use serde_json::{Value, json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REQUIRED: &str = "FIGURE2_BROWSER_TEST";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where test artifacts go: `target/` (or `$CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// The first of `names` found on PATH or in the usual Debian places.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/lib/chromium"].map(PathBuf::from));
    names.iter().flat_map(|n| dirs.iter().map(move |d| d.join(n))).find(|p| p.is_file())
}

/// chromedriver on a free loopback port, killed when dropped.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start(program: &Path) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        Ok(Self { child, port })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 100 ms until it gives a value or `limit` passes.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(client: &Client, script: &str) -> Option<Value> {
    client.execute(script, vec![]).await.ok()
}

async fn click(client: &Client, css: &str) -> Result<(), String> {
    let element = client.find(Locator::Css(css)).await.map_err(|e| format!("{css}: {e}"))?;
    element.click().await.map_err(|e| format!("click {css}: {e}"))
}

async fn screenshot(client: &Client, path: &Path) -> Result<(), String> {
    let png = client.screenshot().await.map_err(|e| format!("screenshot: {e}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the test does in the page; any failure is returned so that the browser is
/// always closed.
async fn drive(client: &Client, url: &str) -> Result<(), String> {
    client.goto(url).await.map_err(|e| format!("goto {url}: {e}"))?;
    let limit = Duration::from_secs(30);
    wait_for("the event stream to connect", limit, || async {
        js(client, "return document.querySelector('#connection.on') !== null && document.querySelector('#scenario-title').textContent.length > 0")
            .await
            .filter(|v| v == &json!(true))
    })
    .await?;

    // Run the Figure 2 scenario: A/B, C/D, E/F, G/H, C/D.
    click(client, "#run").await?;
    let rows = wait_for("the five exchanges and the verdict", limit, || async {
        js(
            client,
            "if (!document.querySelector('.done-line')) return null;
             return [...document.querySelectorAll('#timeline .exchange')].map(e =>
               [e.dataset.request, e.dataset.response, e.dataset.status, e.dataset.error]);",
        )
        .await
        .filter(|v| !v.is_null())
    })
    .await?;
    let expected = json!([
        ["A", "B", "200", ""],
        ["C", "D", "200", ""],
        ["E", "F", "401", "invalid_token"],
        ["G", "H", "200", ""],
        ["C", "D", "200", ""],
    ]);
    if rows != expected {
        return Err(format!("the eight steps of Figure 2 in order: expected {expected}, saw {rows}"));
    }
    if js(client, "return document.querySelector('.done-line.passed') !== null").await != Some(json!(true)) {
        return Err("the scenario's verdict is not 'passed'".into());
    }

    // Select G/H: the raw refresh request, secrets shortened, and the new token's changes.
    click(client, "#timeline .exchange[data-request='G']").await?;
    let details = wait_for("the details of G/H", limit, || async {
        js(
            client,
            "const r = document.querySelector('#details pre.raw-request');
             if (!r) return null;
             return { request: r.textContent, response: document.querySelector('#details pre.raw-response').textContent,
                      changed: [...document.querySelectorAll('#details table.jwt tr.changed')].map(t => t.dataset.key),
                      rfc: [...document.querySelectorAll('#details .rfc a')].map(a => a.href),
                      page: document.body.innerText };",
        )
        .await
        .filter(|v| !v.is_null())
    })
    .await?;
    let request = details["request"].as_str().unwrap_or("");
    if !request.contains("grant_type=refresh_token") || !request.contains("refresh_token=rt#") {
        return Err(format!("the raw refresh request: {request}"));
    }
    let page = details["page"].as_str().unwrap_or("");
    for secret in ["demo-secret", "alice-password", "ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ", "eyJ"] {
        if page.contains(secret) || details["response"].as_str().unwrap_or("").contains(secret) {
            return Err(format!("the page shows a secret ({secret})"));
        }
    }
    let changed: Vec<&str> = details["changed"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
    for claim in ["iat", "exp", "jti"] {
        if !changed.contains(&claim) {
            return Err(format!("the new token's {claim} is not highlighted as changed (changed: {changed:?})"));
        }
    }
    let links = details["rfc"].to_string();
    if !links.contains("https://www.rfc-editor.org/rfc/rfc6749#section-6") {
        return Err(format!("no link to RFC 6749 §6 for G/H: {links}"));
    }

    // Replay the first refresh token: reuse detection revokes the family.
    client
        .execute("document.querySelector('#generation').value = '0';", vec![])
        .await
        .map_err(|e| format!("choose generation 0: {e}"))?;
    click(client, "#replay").await?;
    let lineage = wait_for("the family revoked by reuse in the lineage panel", limit, || async {
        js(
            client,
            "const f = document.querySelector('#lineage .family[data-state=\"revoked_by_reuse\"]');
             if (!f) return null;
             return [...f.querySelectorAll('.gen')].map(g => g.dataset.status);",
        )
        .await
        .filter(|v| !v.is_null())
    })
    .await?;
    if lineage != json!(["used", "revoked_by_reuse"]) {
        return Err(format!("lineage after the replay: {lineage}"));
    }
    let replay = js(
        client,
        "const rows = [...document.querySelectorAll('#timeline .exchange')]; const last = rows[rows.length - 1];
         return [rows.length, last.dataset.request, last.dataset.status, last.dataset.error];",
    )
    .await;
    if replay != Some(json!([6, "G", "400", "invalid_grant"])) {
        return Err(format!("the replay exchange: {replay:?}"));
    }

    // The README's picture: the refresh selected, the family revoked.
    wait_for("the animations to finish", limit, || async {
        js(client, "return document.querySelector('#packet.moving') === null && document.querySelectorAll('#figure .arrow.active').length === 0")
            .await
            .filter(|v| v == &json!(true))
    })
    .await?;
    click(client, "#timeline .exchange[data-request='G']").await?;
    screenshot(client, &target_dir().join("figure2-live.png")).await?;

    // Chinese: the narration and the lineage change language.
    click(client, "#lang-zh").await?;
    let zh_a = lang::narration(Lang::Zh, figure2_protocol::FlowStep::A, true);
    let zh_revoked = "因重用被吊销";
    wait_for("the Chinese narration", limit, || async {
        js(
            client,
            "return [document.querySelector('#timeline .exchange .narration').textContent,
                     document.querySelector('#lineage .family .state').textContent];",
        )
        .await
        .filter(|v| {
            v[0].as_str().is_some_and(|t| t.contains(zh_a)) && v[1].as_str().is_some_and(|t| t.contains(zh_revoked))
        })
    })
    .await?;
    screenshot(client, &target_dir().join("figure2-live-zh.png")).await?;
    Ok(())
}

/// The refresh-token statuses of the timeline (`G` rows), once the verdict is shown.
const REFRESH_ROWS: &str = "if (!document.querySelector('.done-line')) return null;
     return [...document.querySelectorAll('#timeline .exchange[data-request=\"G\"]')].map(e =>
       [e.dataset.status, e.dataset.error]);";

/// Chooses `name` in the preset selector as a user would (the change event).
async fn choose_preset(client: &Client, name: &str) -> Result<(), String> {
    let script = format!(
        "const s = document.querySelector('#preset'); s.value = '{name}';
         s.dispatchEvent(new Event('change', {{ bubbles: true }}));"
    );
    client.execute(&script, vec![]).await.map(|_| ()).map_err(|e| format!("choose preset {name}: {e}"))
}

/// The preset selector on the lost-response scenario: strict rotation logs the client
/// out when it retries (400 invalid_grant), Hydra's grace period lets the retry in (200),
/// and back under Kanidm's strict rotation it is refused again. The selector's labels are
/// checked in both languages.
async fn drive_presets(client: &Client, url: &str) -> Result<(), String> {
    client.goto(url).await.map_err(|e| format!("goto {url}: {e}"))?;
    let limit = Duration::from_secs(30);
    wait_for("the lost-response scenario to load", limit, || async {
        js(client, "return document.querySelector('#connection.on') !== null && document.querySelector('#scenario-title').textContent.includes('lost-response')")
            .await
            .filter(|v| v == &json!(true))
    })
    .await?;
    let options =
        js(client, "return [...document.querySelectorAll('#preset option')].map(o => [o.value, o.textContent]);")
            .await
            .unwrap_or_default();
    let options = options.as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = options.iter().filter_map(|o| o[0].as_str()).collect();
    let mut expected = vec![""];
    expected.extend(figure2_protocol::presets::names());
    if names != expected {
        return Err(format!("the preset selector lists {names:?}, expected {expected:?}"));
    }
    let label = lang::preset_label(Lang::En, "hydra-graceful").unwrap_or_default();
    if !options.iter().any(|o| o[1].as_str() == Some(label.as_str())) {
        return Err(format!("no English label {label:?} among {options:?}"));
    }
    // The labels follow the page's language.
    click(client, "#lang-zh").await?;
    let label = lang::preset_label(Lang::Zh, "hydra-graceful").unwrap_or_default();
    wait_for("the preset labels in Chinese", limit, || async {
        js(client, "return document.querySelector('#preset option[value=\"hydra-graceful\"]').textContent;")
            .await
            .filter(|v| v.as_str() == Some(label.as_str()))
    })
    .await?;

    click(client, "#run").await?;
    let strict = json!([["504", ""], ["400", "invalid_grant"]]);
    let rows = wait_for("the scenario's own policy: the retry refused", limit, || async {
        js(client, REFRESH_ROWS).await.filter(|v| !v.is_null())
    })
    .await?;
    if rows != strict {
        return Err(format!("lost-response under its own policy: expected {strict}, saw {rows}"));
    }

    // The same session again under Hydra's graceful rotation: the retry is let in.
    choose_preset(client, "hydra-graceful").await?;
    let graceful = json!([["504", ""], ["200", ""]]);
    wait_for("hydra-graceful: the retry accepted", limit, || async {
        js(client, REFRESH_ROWS).await.filter(|v| v == &graceful)
    })
    .await?;
    let shown =
        js(client, "return [document.querySelector('#preset').value, document.querySelector('#preset-note').hidden];")
            .await;
    if shown != Some(json!(["hydra-graceful", false])) {
        return Err(format!("the selector after choosing hydra-graceful: {shown:?}"));
    }
    screenshot(client, &target_dir().join("figure2-live-preset.png")).await?;

    // Kanidm destroys the session on reuse: refused again.
    choose_preset(client, "kanidm").await?;
    wait_for("kanidm: the retry refused", limit, || async { js(client, REFRESH_ROWS).await.filter(|v| v == &strict) })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_in_headless_chromium() {
    let required = std::env::var(REQUIRED).is_ok_and(|v| v == "1");
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find_program(&["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        assert!(
            !required,
            "{REQUIRED}=1 but chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED live_view_in_headless_chromium: chromium and chromedriver are not installed \
             (apt-get install chromium chromium-driver); set {REQUIRED}=1 to make this a failure"
        );
        return;
    };

    // The live view in-process, on a free loopback port.
    let scenario = Scenario::load(&root().join("scenarios/figure2.toml").display().to_string()).expect("scenario");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    let live = Live::start(scenario).await.expect("live view starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(web::serve(listener, live, async {
        let _ = stopped.await;
    }));
    // A second live view, of the lost-response scenario, for the preset selector.
    let scenario =
        Scenario::load(&root().join("scenarios/lost-response.toml").display().to_string()).expect("scenario");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let lost_url = format!("http://{}/", listener.local_addr().expect("address"));
    let live = Live::start(scenario).await.expect("live view starts");
    let (stop_lost, stopped) = tokio::sync::oneshot::channel::<()>();
    let lost_server = tokio::spawn(web::serve(listener, live, async {
        let _ = stopped.await;
    }));

    let chromedriver = Chromedriver::start(&driver).expect("chromedriver starts");
    let webdriver = format!("http://127.0.0.1:{}", chromedriver.port);
    let profile = std::env::temp_dir().join(format!("figure2-chromium-{}-{}", std::process::id(), chromedriver.port));
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--window-size=1480,1240", format!("--user-data-dir={}", profile.display()),
            ],
        }
    });
    let capabilities = match capabilities {
        Value::Object(map) => map,
        _ => unreachable!(),
    };
    let client = wait_for("chromedriver to accept a session", Duration::from_secs(30), || {
        let capabilities = capabilities.clone();
        let webdriver = webdriver.clone();
        async move {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&webdriver)
                .await
                .ok()
        }
    })
    .await;

    let outcome = match client {
        Ok(client) => {
            let both = async {
                drive(&client, &url).await?;
                drive_presets(&client, &lost_url).await
            };
            let outcome = tokio::time::timeout(Duration::from_secs(180), both)
                .await
                .unwrap_or_else(|_| Err("the browser test took more than three minutes".into()));
            let _ = client.close().await;
            outcome
        }
        Err(e) => Err(e),
    };
    drop(chromedriver);
    let _ = std::fs::remove_dir_all(&profile);
    let _ = stop.send(());
    let _ = stop_lost.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), lost_server).await;
    if let Err(e) = outcome {
        panic!("live view in Chromium: {e}");
    }
    println!("screenshots: {}", target_dir().join("figure2-live.png").display());
}
