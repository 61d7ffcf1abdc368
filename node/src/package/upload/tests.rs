//! Unit and property tests of the upload checks: random and mutated
//! uploads never panic, and come back as a checked upload or a typed
//! `InstallError::Invalid`.

use std::path::Component;

use proptest::prelude::*;

use super::*;
use crate::package::manifest::ManifestEntry;

/// Cases per property: enough to hit every branch of the checks many
/// times, fast in release (each case is a JSON parse of a few hundred
/// bytes).
const CASES: u32 = 512;

const METADATA: &str =
    r#"{"name":"p","properties":{"package_name":"p","publisher":"x","current_version":"1.0.0"}}"#;
const MANIFEST: &str = r#"[{"process_name":"a","process_wasm_path":"/a.wasm","on_exit":"Restart",
    "request_capabilities":["b:p:x",{"process":"c:p:x","params":"messaging"}]},
    {"process_name":"b","process_wasm_path":"/a.wasm",
     "on_exit":{"Requests":[{"target":"a:p:x","body":{"died":true}}]}}]"#;

fn file(path: &str, bytes: &[u8]) -> PackageFile {
    PackageFile {
        path: path.into(),
        bytes: bytes.to_vec(),
    }
}

fn upload(metadata: &[u8], manifest: &[u8]) -> Vec<PackageFile> {
    vec![
        file("metadata.json", metadata),
        file("pkg/manifest.json", manifest),
        file("pkg/a.wasm", b"\0asm"),
    ]
}

#[test]
fn refuses_paths_that_leave_the_package() {
    assert!(safe_relative("pkg/echo.wasm").is_some());
    for bad in [
        "../x",
        "/etc/passwd",
        "pkg/../../x",
        "",
        "./a",
        "a\\..\\b",
        "a\0b",
    ] {
        assert!(safe_relative(bad).is_none(), "{bad:?}");
    }
    assert_eq!(wasm_relative("/a.wasm"), Some(PathBuf::from("a.wasm")));
    // A leading '/' means the package's pkg/, never the machine's root.
    assert_eq!(wasm_relative("/dev/zero"), Some(PathBuf::from("dev/zero")));
    for bad in ["//a.wasm", "/../a.wasm", "//dev/zero", "../x.wasm", "/"] {
        assert!(wasm_relative(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn reads_reference_manifest_fields() {
    let m: Vec<ManifestEntry> = serde_json::from_str(MANIFEST).unwrap();
    assert!(matches!(m[0].on_exit, ManifestOnExit::Restart));
    assert_eq!(m[0].request_capabilities[1].process(), "c:p:x");
    assert!(matches!(&m[1].on_exit, ManifestOnExit::Requests(r) if r.len() == 1));
    assert!(!m[1].public);
}

#[test]
fn a_good_upload_passes_and_names_each_component_once() {
    let checked = check(&upload(METADATA.as_bytes(), MANIFEST.as_bytes()), "n", 1024).unwrap();
    assert_eq!(checked.package_id, "p:x");
    assert_eq!(checked.components, vec![("/a.wasm".to_string(), 2)]);
}

#[test]
fn refuses_bad_uploads_before_anything_runs() {
    let bad = |files: Vec<PackageFile>, why: &str| {
        let result = check(&files, "n", 1024);
        assert!(
            matches!(&result, Err(InstallError::Invalid(m)) if m.contains(why)),
            "{why}: {result:?}"
        );
    };
    let mut files = upload(METADATA.as_bytes(), MANIFEST.as_bytes());
    files.push(file("../evil", b""));
    bad(files, "bad file path");
    let mut files = upload(METADATA.as_bytes(), MANIFEST.as_bytes());
    files.push(file("pkg/a.wasm", b""));
    bad(files, "twice");
    bad(upload(METADATA.as_bytes(), b"[{"), "pkg/manifest.json");
    bad(upload(b"{}", MANIFEST.as_bytes()), "metadata.json");
    let missing = r#"[{"process_name":"a","process_wasm_path":"/b.wasm"}]"#;
    bad(upload(METADATA.as_bytes(), missing.as_bytes()), "missing");
    let escape = r#"[{"process_name":"a","process_wasm_path":"/../../a.wasm"}]"#;
    bad(
        upload(METADATA.as_bytes(), escape.as_bytes()),
        "process_wasm_path",
    );
    let twice = r#"[{"process_name":"a","process_wasm_path":"/a.wasm"},{"process_name":"a","process_wasm_path":"/a.wasm"}]"#;
    bad(upload(METADATA.as_bytes(), twice.as_bytes()), "twice");
    let cap =
        r#"[{"process_name":"a","process_wasm_path":"/a.wasm","request_capabilities":["nope"]}]"#;
    bad(upload(METADATA.as_bytes(), cap.as_bytes()), "capability");
    let big = check(&upload(METADATA.as_bytes(), MANIFEST.as_bytes()), "n", 3);
    assert!(matches!(big, Err(InstallError::Invalid(m)) if m.contains("larger")));
}

/// Flip, insert or delete bytes of `base` at the positions given.
fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for &(at, byte, op) in edits {
        let at = at % (bytes.len() + 1);
        match op % 3 {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {}
        }
    }
    bytes
}

fn check_is_typed(files: &[PackageFile]) {
    match check(files, "n", 1024) {
        Ok(checked) => {
            assert!(checked.components.len() <= MAX_PROCESSES);
            for (wasm, at) in &checked.components {
                assert!(wasm_relative(wasm).is_some());
                assert!(files[*at].path.starts_with("pkg/"));
            }
        }
        Err(InstallError::Invalid(_)) => {}
        Err(other) => panic!("untyped refusal {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn random_metadata_and_manifest_bytes_are_refused_cleanly(
        metadata in proptest::collection::vec(any::<u8>(), 0..512),
        manifest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        check_is_typed(&upload(&metadata, &manifest));
    }

    #[test]
    fn mutated_metadata_and_manifest_are_refused_or_sound(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
        which in any::<bool>(),
    ) {
        let (metadata, manifest) = if which {
            (mutate(METADATA.as_bytes(), &edits), MANIFEST.as_bytes().to_vec())
        } else {
            (METADATA.as_bytes().to_vec(), mutate(MANIFEST.as_bytes(), &edits))
        };
        check_is_typed(&upload(&metadata, &manifest));
    }

    #[test]
    fn random_file_paths_never_leave_the_package(path in "[a-z./\\\\\\x00-]{0,40}") {
        let mut files = upload(METADATA.as_bytes(), MANIFEST.as_bytes());
        files.push(file(&path, b""));
        check_is_typed(&files);
        if let Some(rel) = safe_relative(&path) {
            prop_assert!(!rel.is_absolute());
            prop_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
        }
    }

    #[test]
    fn random_wasm_paths_stay_below_pkg(path in "(/|\\.\\.|\\.|[a-z]{1,3}|\\x00){0,8}") {
        if let Some(rel) = wasm_relative(&path) {
            prop_assert!(!rel.is_absolute());
            prop_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
        }
    }
}

/// A package directory with `pkg/a.wasm`, a symlink out of the package,
/// a FIFO, a sub-directory and a file beside `pkg/`.
fn package_dir() -> crate::package::PackageInfo {
    let dir = std::env::temp_dir().join(format!(
        "hearth-wasm-within-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(pkg.join("sub")).unwrap();
    std::fs::write(pkg.join("a.wasm"), b"\0asm").unwrap();
    std::fs::write(dir.join("metadata.json"), b"{}").unwrap();
    let _ = std::os::unix::fs::symlink("/dev/zero", pkg.join("zero"));
    let _ = std::os::unix::fs::symlink("../metadata.json", pkg.join("up"));
    if !pkg.join("fifo").exists() {
        let _ = std::process::Command::new("mkfifo")
            .arg(pkg.join("fifo"))
            .status();
    }
    crate::package::PackageInfo {
        id: "p:x".into(),
        version: "1".into(),
        dir,
    }
}

#[test]
fn wasm_within_refuses_escapes_devices_fifos_and_dirs() {
    let package = package_dir();
    let (file, normal) = package.wasm_within("/a.wasm").unwrap();
    assert!(file.ends_with("pkg/a.wasm"));
    assert_eq!(normal, "/a.wasm");
    assert_eq!(package.wasm_within("a.wasm").unwrap().1, "/a.wasm");
    for bad in [
        "../metadata.json",
        "/dev/zero",
        "zero",
        "up",
        "fifo",
        "sub",
        "",
        "//etc/passwd",
    ] {
        assert!(package.wasm_within(bad).is_err(), "{bad:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Whatever path a guest hands to spawn, it is refused or names a
    /// regular file inside the package's `pkg/`.
    #[test]
    fn spawn_wasm_paths_resolve_inside_pkg_or_fail(
        path in "(/|\\.\\.|\\.|a\\.wasm|zero|up|fifo|sub|x|\\x00){0,6}"
    ) {
        let package = package_dir();
        if let Ok((file, normal)) = package.wasm_within(&path) {
            let root = package.dir.join("pkg").canonicalize().unwrap();
            prop_assert!(file.starts_with(&root));
            prop_assert!(std::fs::metadata(&file).unwrap().is_file());
            prop_assert!(wasm_relative(&normal).is_some());
        }
    }
}
