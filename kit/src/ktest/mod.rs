//! `kit t [DIR | FILE]`: run a package's tests across real nodes.
//!
//! Reads `tests.toml` ([`spec`]), builds the packages the tests install,
//! then for each test boots its nodes ([`net`]), runs its steps in order
//! and tears the nodes down. A failing step stops its test and is reported
//! with what was expected, what came, and every node's log lines labelled
//! by node.

pub mod events;
pub mod net;
pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hearth::api::{InjectRequest, InjectResponse, PackageUpload, INSTALL_PATH, MESSAGE_PATH};
use serde_json::Value;

use crate::admin::NodeError;
use events::{Heard, Watch};
use net::TestNet;
use spec::{Expect, ExpectEvent, Inject, Step, Test};

/// The file `kit t DIR` reads.
pub const TESTS_FILE: &str = "tests.toml";

/// Extra time an admin call gets beyond an inject's own timeout, so the
/// node's typed `timeout` arrives first.
const HTTP_GRACE: Duration = Duration::from_secs(5);

/// Deadline of an install: the node compiles the package's components
/// (the chat's takes seconds alone, far longer on a loaded 2-core machine).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(180);

/// Frames other than the awaited event that a failed `expect_event`
/// shows (the newest).
const SHOWN_FRAMES: usize = 10;

/// Pause between tries of an inject with `retry_for`.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The step kinds, for `kit t --help`.
const STEPS_HELP: &str = "\
tests.toml: each [[test]] names its nodes and lists [[test.step]]s, run in order;
a step has exactly one action:
  install = \"DIR\"            install a package (built first) on every node, or on `on`
  inject = \"proc:pkg:pub\"    send `body` from `on` (default: the first node) to the
                              process on `to` (default: `on`); then
                              expect = {..}         the answer contains this, or
                              expect_error = \"kind\" a typed error (the node's kind or the
                                                    app's code); retry_for = S keeps trying
  kill = \"NODE\"              SIGKILL the node
  restart = \"NODE\"           boot it again on its home and wait for its peers
  expect_event = { owner = \"proc:pkg:pub\", room = \"NAME\", match = {..} }
                              an event of the room owned by the process on `to`,
                              watched from `on`, whose payload contains `match`,
                              within `timeout` seconds (default 10); the watch is
                              joined before the step in front of it runs
A failure shows the step, what was expected and what came, and each node's log.";

#[derive(Debug, clap::Args)]
#[command(after_long_help = STEPS_HELP)]
pub struct TestArgs {
    /// A package directory holding tests.toml, or a test file
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Install the packages as they are in pkg/, without building them
    #[arg(long)]
    pub no_build: bool,
    /// Run only the tests whose name contains this
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
}

pub fn run(args: &TestArgs) -> Result<()> {
    let file = if args.path.is_dir() {
        args.path.join(TESTS_FILE)
    } else {
        args.path.clone()
    };
    let base = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let tests = read_tests(&file)?;
    let tests: Vec<Test> = tests
        .into_iter()
        .filter(|t| args.filter.as_ref().is_none_or(|f| t.name.contains(f)))
        .collect();
    if tests.is_empty() {
        bail!("no test in {} matches the filter", file.display());
    }
    let hearth = crate::fake::find_hearth()?;
    let build_started = Instant::now();
    let packages = prepare_packages(&tests, &base, !args.no_build)?;
    let build_time = build_started.elapsed();
    println!(
        "kit t: {} ({} {})",
        file.display(),
        tests.len(),
        if tests.len() == 1 { "test" } else { "tests" }
    );
    let started = Instant::now();
    let mut failed = Vec::new();
    for test in &tests {
        if !run_test(&hearth, test, &packages) {
            failed.push(test.name.clone());
        }
    }
    let passed = tests.len() - failed.len();
    println!(
        "kit t: {passed} passed, {} failed in {:.1} s (builds before: {:.1} s)",
        failed.len(),
        started.elapsed().as_secs_f64(),
        build_time.as_secs_f64()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("failed: {}", failed.join(", "))
    }
}

fn read_tests(file: &Path) -> Result<Vec<Test>> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("no {} (kit t reads tests from it)", file.display()))?
        .len();
    if size > spec::MAX_FILE_BYTES {
        bail!("{} is over {} bytes", file.display(), spec::MAX_FILE_BYTES);
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    spec::parse(&text).with_context(|| format!("in {}", file.display()))
}

/// Builds (unless told not to) and reads every package the tests install,
/// keyed by the `install` value as written.
fn prepare_packages(
    tests: &[Test],
    base: &Path,
    build: bool,
) -> Result<BTreeMap<String, PackageUpload>> {
    let mut packages = BTreeMap::new();
    for test in tests {
        for step in &test.steps {
            let Step::Install { dir, .. } = step else {
                continue;
            };
            if packages.contains_key(dir) {
                continue;
            }
            let path = base.join(dir);
            if build {
                crate::build::build_package(&path)
                    .with_context(|| format!("building {}", path.display()))?;
            }
            let upload = crate::start::collect_package(&path)?;
            packages.insert(dir.clone(), upload);
        }
    }
    Ok(packages)
}

/// A step that did not hold: what was expected and what came.
struct Failure {
    expected: String,
    got: String,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure {
            expected: "the step to run".into(),
            got: format!("{e:#}"),
        }
    }
}

/// Runs one test and prints its outcome; true when it passed.
fn run_test(hearth: &Path, test: &Test, packages: &BTreeMap<String, PackageUpload>) -> bool {
    let started = Instant::now();
    println!("test {} ({})", test.name, test.nodes.join(", "));
    let mut net = match TestNet::start(hearth, &test.nodes) {
        Ok(net) => net,
        Err(e) => {
            println!("FAIL {}: the nodes did not boot: {e:#}", test.name);
            return false;
        }
    };
    println!(
        "  ok   boot {} node{} ({:.2} s)",
        test.nodes.len(),
        if test.nodes.len() == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    );
    // Watches of `expect_event` steps, by step index, joined before the
    // step that should cause their event.
    let mut watches: HashMap<usize, Result<Watch, String>> = HashMap::new();
    for (i, step) in test.steps.iter().enumerate() {
        let step_started = Instant::now();
        let ahead = test.steps[i..]
            .iter()
            .enumerate()
            .skip(usize::from(!matches!(step, Step::ExpectEvent(_))))
            .map_while(|(k, s)| match s {
                Step::ExpectEvent(e) => Some((i + k, e)),
                _ => None,
            });
        for (j, event) in ahead {
            watches
                .entry(j)
                .or_insert_with(|| open_watch(&net, event).map_err(|e| format!("{e:#}")));
        }
        let outcome = if started.elapsed() > test.timeout {
            Err(Failure {
                expected: format!("the test to end within {:?}", test.timeout),
                got: format!("{:.1} s gone", started.elapsed().as_secs_f64()),
            })
        } else if let Step::ExpectEvent(event) = step {
            match watches.remove(&i) {
                Some(Ok(watch)) => run_expect_event(&watch, event),
                Some(Err(why)) => Err(Failure {
                    expected: "a watch of the room".into(),
                    got: why,
                }),
                None => Err(anyhow::anyhow!("no watch was opened").into()),
            }
        } else {
            run_step(&mut net, step, packages)
        };
        match outcome {
            Ok(()) => println!(
                "  ok   {}. {} ({:.2} s)",
                i + 1,
                step.describe(),
                step_started.elapsed().as_secs_f64()
            ),
            Err(failure) => {
                println!("  FAIL {}. {}", i + 1, step.describe());
                println!("    expected: {}", failure.expected);
                println!("    got:      {}", failure.got);
                println!("    logs of each node (newest last):");
                for line in net.logs() {
                    println!("      {line}");
                }
                println!(
                    "FAIL {} at step {} of {} ({:.2} s)",
                    test.name,
                    i + 1,
                    test.steps.len(),
                    started.elapsed().as_secs_f64()
                );
                return false;
            }
        }
    }
    drop(net);
    println!(
        "PASS {} ({:.2} s)",
        test.name,
        started.elapsed().as_secs_f64()
    );
    true
}

fn run_step(
    net: &mut TestNet,
    step: &Step,
    packages: &BTreeMap<String, PackageUpload>,
) -> Result<(), Failure> {
    match step {
        Step::Install { dir, on } => {
            let upload = packages
                .get(dir)
                .with_context(|| format!("package {dir} was not prepared"))?;
            let body = bincode::serde::encode_to_vec(upload, bincode::config::standard())
                .context("encoding the package")?;
            for name in on {
                let client = net.node(name)?.client_with(INSTALL_TIMEOUT)?;
                client
                    .post(INSTALL_PATH, "application/octet-stream", &body)
                    .with_context(|| format!("installing {dir} on {name}"))?;
            }
            Ok(())
        }
        Step::Inject(inject) => run_inject(net, inject),
        Step::Kill(name) => Ok(net.kill(name)?),
        Step::Restart(name) => Ok(net.restart(name)?),
        Step::ExpectEvent(_) => Err(anyhow::anyhow!("an expect_event runs on its watch").into()),
    }
}

/// Joins a watch of the event's room from its watching node.
fn open_watch(net: &TestNet, event: &ExpectEvent) -> Result<Watch> {
    let node = net.node(&event.on)?;
    let location = crate::admin::locate(&crate::admin::NodeArgs {
        port: None,
        home: Some(node.home().to_path_buf()),
    })?;
    Watch::open(&location, &event.address(), &event.room)
}

/// Reads the watch until an event contains the pattern or the step's
/// timeout passes; a failure shows what came instead.
fn run_expect_event(watch: &Watch, event: &ExpectEvent) -> Result<(), Failure> {
    let deadline = Instant::now() + event.timeout;
    let mut seen: Vec<String> = Vec::new();
    let mut note = |text: String| {
        if seen.len() == SHOWN_FRAMES {
            seen.remove(0);
        }
        seen.push(text);
    };
    while let Some(heard) = watch.next(deadline) {
        match heard {
            Heard::Event { seq, payload } => {
                if event
                    .pattern
                    .as_ref()
                    .is_none_or(|want| spec::contains(&payload, want))
                {
                    return Ok(());
                }
                note(format!("event {seq}: {payload}"));
            }
            Heard::Joined => {}
            Heard::Refused(error) => note(format!("refused: {error}")),
            Heard::Other(frame) => note(frame.to_string()),
            Heard::Closed(why) => {
                note(format!("the watch closed: {why}"));
                break;
            }
        }
    }
    let expected = match &event.pattern {
        Some(want) => format!("an event containing {want}"),
        None => "an event".into(),
    };
    let mut got = if seen.is_empty() {
        format!("nothing within {:.1} s", event.timeout.as_secs_f64())
    } else {
        format!(
            "within {:.1} s, only:\n      {}",
            event.timeout.as_secs_f64(),
            seen.join("\n      ")
        )
    };
    if watch.dropped() > 0 {
        got.push_str(&format!(
            " ({} frames dropped: over {} waiting)",
            watch.dropped(),
            events::WATCH_CAPACITY
        ));
    }
    Err(Failure {
        expected: format!("{expected} in room {} at {}", event.room, event.address()),
        got,
    })
}

/// What an inject came back with.
enum Answer {
    Ok(Value),
    Error { kind: String, message: String },
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Ok(value) => write!(f, "{value}"),
            Answer::Error { kind, message } => write!(f, "error {kind}: {message}"),
        }
    }
}

fn run_inject(net: &TestNet, inject: &Inject) -> Result<(), Failure> {
    let started = Instant::now();
    loop {
        let answer = send(net, inject)?;
        let held = match (&inject.expect, &answer) {
            (Expect::Answer, Answer::Ok(_)) => true,
            (Expect::Json(want), Answer::Ok(got)) => spec::contains(got, want),
            (Expect::Error(want), Answer::Error { kind, .. }) => kind == want,
            _ => false,
        };
        if held {
            return Ok(());
        }
        if started.elapsed() >= inject.retry_for {
            let expected = match &inject.expect {
                Expect::Answer => "an answer (not an error)".to_string(),
                Expect::Json(want) => format!("an answer containing {want}"),
                Expect::Error(kind) => format!("error {kind}"),
            };
            let tried = match inject.retry_for {
                Duration::ZERO => String::new(),
                d => format!(" (still, after {:.1} s of tries)", d.as_secs_f64()),
            };
            return Err(Failure {
                expected,
                got: format!("{answer}{tried}"),
            });
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

fn send(net: &TestNet, inject: &Inject) -> Result<Answer> {
    let node = net.node(&inject.on)?;
    let request = InjectRequest {
        target: match &inject.to {
            Some(to) => format!("{to}@{}", inject.process),
            None => inject.process.clone(),
        },
        body: inject.body.clone(),
        timeout_ms: Some(u64::try_from(inject.timeout.as_millis()).unwrap_or(u64::MAX)),
        non_block: false,
    };
    let client = crate::admin::AdminClient::connect(
        &crate::admin::NodeArgs {
            port: None,
            home: Some(node.home().to_path_buf()),
        },
        inject.timeout + HTTP_GRACE,
    )?;
    let body = serde_json::to_vec(&request)?;
    match client.post(MESSAGE_PATH, "application/json", &body) {
        Ok(bytes) => {
            let response: InjectResponse =
                serde_json::from_slice(&bytes).context("the node's answer is not JSON")?;
            let value = response.body.unwrap_or(Value::Null);
            Ok(match crate::inject::app_error(&value) {
                Some(error) => Answer::Error {
                    kind: error.kind,
                    message: error.message,
                },
                None => Answer::Ok(value),
            })
        }
        Err(e) => match e.downcast::<NodeError>() {
            Ok(NodeError { error }) => Ok(Answer::Error {
                kind: error.kind,
                message: error.message,
            }),
            Err(e) => Err(e),
        },
    }
}
