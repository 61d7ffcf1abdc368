//! `kit watch [DIR]`: on every save, rebuild the process crates whose
//! sources changed, reinstall the package on the running node (installed
//! processes keep their saved state: it lives in the node's store under
//! the process id), and print the time from the save to "running".
//!
//! A failed build leaves the running version alone and shows cargo's
//! errors. A change under `pkg/` only (the UI, the manifest) is installed
//! without a build: a page reload shows it.
//!
//! Changes are seen by polling modification times every
//! [`POLL_INTERVAL`]: no extra dependency, no inotify limits. A package is
//! tens of files, so a poll is a few dozen `stat`s and a save is seen
//! within 50 ms; the build starts [`SETTLE`] later. Each install prints
//! where its time went (seen, build, install), timed from the saved
//! file's modification time. A save made during a build is not lost: the
//! build's own outputs are taken as seen, sources keep their pre-build
//! stamps, so the next poll rebuilds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use crate::admin::NodeArgs;

/// How often the sources are looked at.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Wait after a change is seen, so an editor's burst of writes (swap file,
/// rename, the file; all within a few ms) is one rebuild. A write that
/// lands later is seen by the next poll and rebuilt then.
const SETTLE: Duration = Duration::from_millis(20);

/// Most files watched; a package is sources, not data.
const MAX_FILES: usize = 20_000;

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Package directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Stop after this many reinstalls (default: until Ctrl-C)
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Modification time and size of every watched file.
type Snapshot = BTreeMap<PathBuf, (SystemTime, u64)>;

pub fn run(args: &WatchArgs) -> Result<()> {
    let dir = &args.dir;
    crate::start::check_node(&args.node)?;
    let start_args = crate::start::StartArgs {
        dir: dir.clone(),
        node: args.node.clone(),
    };
    // Start from a running current version.
    let started = Instant::now();
    crate::build::build_package(dir)?;
    crate::start::run(&start_args)?;
    eprintln!(
        "kit watch: running ({:.2} s); watching {} for changes (Ctrl-C stops)",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    let mut seen = snapshot(dir)?;
    let mut installs = 0u64;
    loop {
        std::thread::sleep(POLL_INTERVAL);
        let now = snapshot(dir)?;
        if now == seen {
            continue;
        }
        let detected = Instant::now();
        std::thread::sleep(SETTLE);
        let now = snapshot(dir)?;
        let changed = changed_paths(&seen, &now);
        // The save: the newest modification among the changed files (a
        // removal has none; then the moment it was seen).
        let since_save = changed
            .iter()
            .filter_map(|p| now.get(p))
            .map(|(modified, _)| *modified)
            .max()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .filter(|d| *d <= SAVE_CLOCK_BOUND)
            .unwrap_or_else(|| detected.elapsed());
        let saved = Instant::now().checked_sub(since_save).unwrap_or(detected);
        let seen_after = detected.saturating_duration_since(saved);
        let sources_changed = changed.iter().any(|p| !is_package_file(dir, p));
        let names: Vec<String> = changed
            .iter()
            .map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string())
            .collect();
        eprintln!("kit watch: changed {}", names.join(", "));
        let build_started = Instant::now();
        if sources_changed {
            let build = crate::build::build_package(dir);
            // The build wrote pkg/ and api/: not a change of ours. A source
            // saved during the build keeps its old stamp: rebuilt next.
            seen = after_build(dir, &now, snapshot(dir)?);
            if let Err(e) = build {
                eprintln!("kit watch: the build failed; the running version stays: {e:#}");
                continue;
            }
        } else {
            seen = now;
        }
        let built = build_started.elapsed();
        let install_started = Instant::now();
        match crate::start::run(&start_args) {
            Ok(()) => {
                installs += 1;
                println!(
                    "kit watch: running {:.2} s after the save (seen {:.2} s, {} {:.2} s, \
                     install {:.2} s)",
                    saved.elapsed().as_secs_f64(),
                    seen_after.as_secs_f64(),
                    if sources_changed { "build" } else { "no build" },
                    built.as_secs_f64(),
                    install_started.elapsed().as_secs_f64(),
                );
            }
            Err(e) => eprintln!("kit watch: installing failed: {e:#}"),
        }
        if args.count.is_some_and(|n| installs >= n) {
            return Ok(());
        }
    }
}

/// A modification time further back than this is a clock oddity (a file
/// copied with its old time), not a save: the save is when it was seen.
const SAVE_CLOCK_BOUND: Duration = Duration::from_secs(10);

/// What counts as seen after a build: the package files as the build left
/// them, the sources as they were when the build started (so a source
/// saved during the build shows as changed at the next poll).
fn after_build(dir: &Path, before: &Snapshot, after: Snapshot) -> Snapshot {
    let mut seen: Snapshot = before
        .iter()
        .filter(|(path, _)| !is_package_file(dir, path))
        .map(|(path, stamp)| (path.clone(), *stamp))
        .collect();
    seen.extend(
        after
            .into_iter()
            .filter(|(path, _)| is_package_file(dir, path)),
    );
    seen
}

/// `pkg/` files are installed as they are; everything else is a source.
fn is_package_file(dir: &Path, path: &Path) -> bool {
    path.strip_prefix(dir)
        .is_ok_and(|rel| rel.starts_with("pkg") || rel.starts_with("metadata.json"))
}

fn changed_paths(before: &Snapshot, after: &Snapshot) -> Vec<PathBuf> {
    let mut changed: Vec<PathBuf> = after
        .iter()
        .filter(|(path, stamp)| before.get(*path) != Some(stamp))
        .map(|(path, _)| path.clone())
        .collect();
    changed.extend(before.keys().filter(|p| !after.contains_key(*p)).cloned());
    changed
}

/// The files a rebuild or reinstall depends on: each process crate's
/// `Cargo.toml` and `src/`, `metadata.json`, and `pkg/` except the built
/// components (`*.wasm`, written by the build itself).
fn snapshot(dir: &Path) -> Result<Snapshot> {
    let mut files = Snapshot::new();
    let mut roots = vec![dir.join("metadata.json"), dir.join("pkg")];
    for crate_dir in crate::build::find_crates(dir)? {
        roots.push(crate_dir.join("Cargo.toml"));
        roots.push(crate_dir.join("src"));
    }
    for root in roots {
        collect(&root, &mut files)?;
    }
    files.retain(|path, _| path.extension().is_none_or(|e| e != "wasm"));
    Ok(files)
}

fn collect(path: &Path, out: &mut Snapshot) -> Result<()> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // Gone between listing and looking: seen next time.
    };
    if meta.is_file() {
        if out.len() >= MAX_FILES {
            anyhow::bail!("more than {MAX_FILES} files to watch under the package");
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        out.insert(path.to_path_buf(), (modified, meta.len()));
    } else if meta.is_dir() {
        let entries =
            std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?;
        for entry in entries.flatten() {
            collect(&entry.path(), out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_edits_additions_and_removals_but_not_wasm() {
        let tmp = crate::admin::tests::TempDir::new("dev-watch");
        let dir = &tmp.0;
        std::fs::create_dir_all(dir.join("app/src")).unwrap();
        std::fs::create_dir_all(dir.join("pkg/ui")).unwrap();
        std::fs::write(dir.join("metadata.json"), "{}").unwrap();
        std::fs::write(dir.join("pkg/manifest.json"), "[]").unwrap();
        std::fs::write(dir.join("app/Cargo.toml"), "").unwrap();
        std::fs::write(dir.join("app/src/lib.rs"), "a").unwrap();
        std::fs::write(dir.join("pkg/app.wasm"), "w").unwrap();
        let before = snapshot(dir).unwrap();
        assert!(!before.contains_key(&dir.join("pkg/app.wasm")));
        std::fs::write(dir.join("app/src/lib.rs"), "ab").unwrap();
        std::fs::write(dir.join("pkg/ui/index.html"), "<p>").unwrap();
        std::fs::write(dir.join("pkg/app.wasm"), "ww").unwrap();
        let after = snapshot(dir).unwrap();
        let changed = changed_paths(&before, &after);
        assert_eq!(
            changed,
            vec![dir.join("app/src/lib.rs"), dir.join("pkg/ui/index.html")]
        );
        assert!(!is_package_file(dir, &changed[0]));
        assert!(is_package_file(dir, &changed[1]));
    }

    #[test]
    fn a_source_saved_during_a_build_is_rebuilt_but_build_outputs_are_not() {
        let tmp = crate::admin::tests::TempDir::new("dev-watch-build");
        let dir = &tmp.0;
        std::fs::create_dir_all(dir.join("app/src")).unwrap();
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::write(dir.join("metadata.json"), "{}").unwrap();
        std::fs::write(dir.join("pkg/manifest.json"), "[]").unwrap();
        std::fs::write(dir.join("app/Cargo.toml"), "").unwrap();
        std::fs::write(dir.join("app/src/lib.rs"), "a").unwrap();
        let before = snapshot(dir).unwrap();
        // During the build: the build writes pkg/, the developer saves
        // lib.rs again.
        std::fs::write(dir.join("pkg/manifest.json"), "[ ]").unwrap();
        std::fs::write(dir.join("app/src/lib.rs"), "abc").unwrap();
        let seen = after_build(dir, &before, snapshot(dir).unwrap());
        let changed = changed_paths(&seen, &snapshot(dir).unwrap());
        assert_eq!(changed, vec![dir.join("app/src/lib.rs")]);
    }
}
