//! `kit bench dev`: the developer loop, timed through the real `kit` and
//! `hearth` binaries as a developer runs them, in a scratch directory
//! under the system temp dir (never the checkout):
//!
//! - cold `kit b` of the `app` template (fresh target dir), next to plain
//!   `cargo build` of the same crate in another fresh target dir;
//! - save-to-running under `kit watch`: a one-line change to the app's
//!   `get`, timed from the file write until `kit i` answers with the new
//!   behaviour and the count saved before the change (state kept); next
//!   to the same change made live by hand (`kit b`, then `kit s`). Both
//!   poll `kit i` only once the new version is installed (`kit watch`
//!   says so; `kit s` returned): polling during the build would slow the
//!   build being timed on 2 cores. `kit watch`'s own line (seen, build,
//!   install) is shown for each change;
//! - `kit t` wall time of the template's two-node test after the build,
//!   next to a test of the same nodes that only installs the package.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::table::{self, median, Better, Row};

/// Runs of each warm measure; the median is reported.
const RUNS: usize = 3;

/// Longest wait for a build (cold, on a loaded 2-core machine) or for a
/// change to answer.
const BUILD_DEADLINE: Duration = Duration::from_secs(1200);

/// Targets from the issue.
const SAVE_TO_RUNNING_TARGET_S: f64 = 5.0;
const KIT_T_TARGET_S: f64 = 3.0;

/// Lines of `kit watch` output kept for waiting on it.
const WATCH_LINES: usize = 1024;

/// The package the bench makes from the `app` template.
const APP: &str = "devbench";
const PROCESS: &str = "devbench:devbench:sys";

pub fn run(json_out: bool) -> Result<()> {
    let root = std::env::temp_dir().join(format!("hearth-kit-bench/dev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let rows = measure(&root);
    let _ = std::fs::remove_dir_all(&root);
    table::print(
        "kit bench dev (real kit and hearth binaries, app template; 2-core figures are noisy)",
        &rows?,
        json_out,
    );
    Ok(())
}

fn measure(root: &Path) -> Result<Vec<Row>> {
    let kit = std::env::current_exe().context("finding kit itself")?;
    let hearth = crate::fake::find_hearth()?;
    let out = run_ok(
        Command::new(&kit)
            .current_dir(root)
            .args(["new", APP, "--template", "app"]),
    )?;
    drop(out);
    let project = root.join(APP);
    let crate_dir = project.join(APP);
    let kit_target = root.join("target-kit");
    let cargo_target = root.join("target-cargo");
    // Downloads are not build time: fetch first, for both.
    run_ok(Command::new(cargo()).current_dir(&crate_dir).arg("fetch"))?;

    eprintln!("kit bench dev: cold cargo build (baseline)...");
    let started = Instant::now();
    run_ok(
        Command::new(cargo())
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &cargo_target)
            .args(["build", "--release", "--target", crate::build::WASM_TARGET]),
    )?;
    let cold_cargo = started.elapsed().as_secs_f64();
    eprintln!("kit bench dev: cold kit b...");
    let started = Instant::now();
    run_ok(
        Command::new(&kit)
            .env("CARGO_TARGET_DIR", &kit_target)
            .arg("b")
            .arg(&project),
    )?;
    let cold_kit = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&cargo_target);

    eprintln!("kit bench dev: kit t...");
    let install_only = project.join("install-only.toml");
    std::fs::write(
        &install_only,
        "[[test]]\nname = \"install only\"\nnodes = [\"alice.os\", \"bob.os\"]\n\
         [[test.step]]\ninstall = \".\"\n",
    )?;
    let mut kit_t = Vec::new();
    let mut kit_t_floor = Vec::new();
    for _ in 0..RUNS {
        for (file, times) in [
            (project.join("tests.toml"), &mut kit_t),
            (install_only.clone(), &mut kit_t_floor),
        ] {
            let started = Instant::now();
            run_ok(Command::new(&kit).arg("t").arg(&file).arg("--no-build"))?;
            times.push(started.elapsed().as_secs_f64());
        }
    }

    eprintln!("kit bench dev: save to running...");
    let (watch, by_hand) = save_to_running(&kit, &hearth, root, &project, &kit_target)?;

    Ok(vec![
        Row::new("cold kit b, app template (fresh target dir)", "s", cold_kit)
            .baseline("cargo build, fresh target dir", cold_cargo),
        Row::new(
            format!("save to running, kit watch, one-line change (median of {RUNS})"),
            "s",
            median(watch),
        )
        .baseline("kit b + kit s by hand", median(by_hand))
        .target(Better::Lower, SAVE_TO_RUNNING_TARGET_S),
        Row::new(
            format!("kit t, two-node template test, after the build (median of {RUNS})"),
            "s",
            median(kit_t),
        )
        .baseline("kit t of its nodes + install only", median(kit_t_floor))
        .target(Better::Lower, KIT_T_TARGET_S),
    ])
}

/// A node and `kit watch` on the project; each one-line change is timed
/// from the write until the new code answers with the count kept. Then
/// the same by hand, `kit watch` stopped. Returns (watch, by hand) times.
fn save_to_running(
    kit: &Path,
    hearth: &Path,
    root: &Path,
    project: &Path,
    target: &Path,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let home = root.join("node");
    std::fs::create_dir_all(&home)?;
    let node = Reaped(
        Command::new(hearth)
            .arg("--home")
            .arg(&home)
            .args(["--name", "dev.os", "--port", "0", "--no-mdns"])
            .args(["--p2p-bind", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting hearth")?,
    );
    wait_for_file(&home.join(hearth::api::PORT_FILE))?;
    let kit_at = |args: &[&str]| -> Command {
        let mut command = Command::new(kit);
        command
            .env("CARGO_TARGET_DIR", target)
            .args(args)
            .arg("--home")
            .arg(&home);
        command
    };
    let mut watch = kit_at(&["watch"]);
    watch
        .arg(project)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut watch = Reaped(watch.spawn().context("starting kit watch")?);
    let lines = follow(watch.0.stderr.take().context("kit watch's stderr")?);
    let installs = follow(watch.0.stdout.take().context("kit watch's stdout")?);
    wait_for_line(&lines, "kit watch: running")?;
    let add = json!({"add": {"name": "cups", "by": 2}}).to_string();
    run_ok(&mut kit_at(&["i", PROCESS, &add]))?;

    let source = project.join(APP).join("src/lib.rs");
    let original = std::fs::read_to_string(&source)?;
    if !original.contains("            .copied()\n") {
        bail!("the app template's `get` changed: the bench edits its `.copied()` line");
    }
    let edit = |k: usize| -> Result<Instant> {
        let line = format!("            .map(|count| count + {k}000)\n");
        std::fs::write(&source, original.replace("            .copied()\n", &line))?;
        Ok(Instant::now())
    };
    let get = json!({"get": {"name": "cups"}}).to_string();
    let answers = |k: usize, since: Instant| -> Result<f64> {
        let want = json!({"ok": 2 + k * 1000});
        loop {
            let out = kit_at(&["i", PROCESS, &get]).output()?;
            if serde_json::from_slice::<Value>(&out.stdout).ok().as_ref() == Some(&want) {
                return Ok(since.elapsed().as_secs_f64());
            }
            if since.elapsed() > BUILD_DEADLINE {
                bail!("the change did not answer {want} within {BUILD_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut watched = Vec::new();
    for k in 1..=RUNS {
        let saved = edit(k)?;
        let said = wait_for_line(&installs, "after the save")?;
        eprintln!("kit bench dev: {said}");
        watched.push(answers(k, saved)?);
    }
    drop(watch);
    let mut by_hand = Vec::new();
    for k in RUNS + 1..=2 * RUNS {
        let saved = edit(k)?;
        run_ok(
            Command::new(kit)
                .env("CARGO_TARGET_DIR", target)
                .arg("b")
                .arg(project),
        )?;
        run_ok(kit_at(&["s"]).arg(project))?;
        by_hand.push(answers(k, saved)?);
    }
    std::fs::write(&source, original)?;
    drop(node);
    Ok((watched, by_hand))
}

/// A child killed and reaped on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command to success, its output captured (shown on failure).
fn run_ok(command: &mut Command) -> Result<Output> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Lines of `from`, read on a thread into a bounded channel.
fn follow(from: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = sync_channel(WATCH_LINES);
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`; returns it.
fn wait_for_line(lines: &Receiver<String>, needle: &str) -> Result<String> {
    let started = Instant::now();
    let mut last = Vec::new();
    while started.elapsed() < BUILD_DEADLINE {
        let left = BUILD_DEADLINE.saturating_sub(started.elapsed());
        let Ok(line) = lines.recv_timeout(left) else {
            break;
        };
        if line.contains(needle) {
            return Ok(line);
        }
        if last.len() == 20 {
            last.remove(0);
        }
        last.push(line);
    }
    bail!(
        "kit watch never said {needle:?}; its last lines:\n{}",
        last.join("\n")
    )
}

fn wait_for_file(path: &Path) -> Result<()> {
    let started = Instant::now();
    while !path.is_file() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{} did not appear within 60 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}
