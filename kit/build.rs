//! Embeds the guest SDK (`process-sdk`, `macros`, `wit`) in kit, so that a
//! project made by `kit new` builds on a machine without this checkout
//! (`kit/src/sdk.rs` unpacks it). Writes `$OUT_DIR/sdk_files.rs`: the list
//! of files and `SDK_HASH`, a digest of their contents that names the
//! unpacked directory, so a changed SDK never overwrites an older one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The SDK's parts, relative to the workspace root. Only what a guest
/// build reads: manifests, sources and the WIT world (no tests).
const PARTS: [&str; 3] = ["process-sdk", "macros", "wit"];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("kit sits in the workspace")
        .to_path_buf();
    let mut files = Vec::new();
    for part in PARTS {
        collect(&root, &root.join(part), &mut files);
    }
    files.sort();
    // Each file by name: a folder named alone did not make cargo run this
    // script again when a file inside it changed, which left SDK_HASH (and
    // so the unpacked SDK that guests build against) stale. Folders are
    // named too, for files added or removed.
    for (_, absolute) in &files {
        println!("cargo:rerun-if-changed={}", absolute.display());
    }
    // FNV-1a over paths and contents: stable across builds and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut table = String::from("pub const SDK_FILES: &[(&str, &str)] = &[\n");
    for (relative, absolute) in &files {
        let text = std::fs::read_to_string(absolute).expect("SDK files are UTF-8");
        for byte in relative.bytes().chain([0]).chain(text.bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        writeln!(
            table,
            "    ({relative:?}, include_str!({:?})),",
            absolute.display().to_string()
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    writeln!(table, "pub const SDK_HASH: &str = \"{:08x}\";", hash >> 32)
        .expect("writing to a String");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("sdk_files.rs"), table).expect("writing sdk_files.rs");
}

/// Every file under `dir` that a build needs: `Cargo.toml`, `*.rs` under
/// `src/`, `*.wit`; as (path relative to `root` with `/`, absolute path).
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("listing an SDK directory").path();
        let relative = path
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            if name != "tests" && name != "target" {
                collect(root, &path, out);
            }
        } else if name == "Cargo.toml"
            || name.ends_with(".wit")
            || (name.ends_with(".rs") && relative.contains("/src/"))
        {
            out.push((relative, path));
        }
    }
}
