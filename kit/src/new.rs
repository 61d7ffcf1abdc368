//! `kit new NAME`: create a package from the echo template.
//!
//! The files of `apps/echo/` are embedded when kit is compiled. `echo` is
//! replaced by the new name, the crate directory is renamed, and the
//! crate's `Cargo.toml` is made standalone: an empty `[workspace]` table,
//! `hearth-sdk` as a path dependency, version pinned, on the SDK kit
//! carries (unpacked by [`crate::sdk`] under `~/.hearth/sdk/`), and every
//! `*.workspace = true` replaced by the workspace's value. Nothing in the
//! new package refers to the checkout kit was built from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The template's name, replaced by the new package's name.
const TEMPLATE_NAME: &str = "echo";

/// One embedded template file; `path` is relative to the package root.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
}

const TEMPLATE: &[TemplateFile] = &[
    TemplateFile {
        path: "metadata.json",
        text: include_str!("../../apps/echo/metadata.json"),
    },
    TemplateFile {
        path: "pkg/manifest.json",
        text: include_str!("../../apps/echo/pkg/manifest.json"),
    },
    TemplateFile {
        path: "echo/Cargo.toml",
        text: include_str!("../../apps/echo/echo/Cargo.toml"),
    },
    TemplateFile {
        path: "echo/src/lib.rs",
        text: include_str!("../../apps/echo/echo/src/lib.rs"),
    },
    TemplateFile {
        path: "tests.toml",
        text: include_str!("../../apps/echo/tests.toml"),
    },
    TemplateFile {
        path: ".gitignore",
        text: include_str!("../../apps/echo/.gitignore"),
    },
];

/// The workspace manifest, for the values `*.workspace = true` refers to.
const WORKSPACE_MANIFEST: &str = include_str!("../../Cargo.toml");

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// Package name: lowercase letters, digits and `-`, starting with a letter
    pub name: String,
    /// Create the package in this directory
    #[arg(long, default_value = ".", value_name = "PARENT")]
    pub dir: PathBuf,
    /// Language of the process: `rust` or `python` (see kit/src/python.rs)
    #[arg(long, default_value = "rust", value_parser = ["rust", "python"])]
    pub lang: String,
}

pub fn run(args: &NewArgs) -> Result<()> {
    validate_name(&args.name)?;
    if args.lang == "python" {
        return crate::python::new_package(&args.name, &args.dir);
    }
    let root = args.dir.join(&args.name);
    if root.exists() {
        bail!(
            "{} already exists; pick another name or --dir",
            root.display()
        );
    }
    let sdk = crate::sdk::ensure().context("unpacking the guest SDK")?;
    let files = render(&args.name, &sdk)?;
    for (path, text) in &files {
        let dest = root.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&dest, text).with_context(|| format!("writing {}", dest.display()))?;
    }
    println!("created package {} in {}:", args.name, root.display());
    for (path, _) in &files {
        println!("  {path}");
    }
    println!("SDK {} in {}", crate::sdk::sdk_id(), sdk.display());
    for line in next_steps(&root, &args.name, &process_id(&files)?) {
        println!("{line}");
    }
    Ok(())
}

/// The "next" hint: commands that work as printed (CI runs them).
fn next_steps(root: &Path, name: &str, process_id: &str) -> Vec<String> {
    let method = name.replace('-', "_");
    vec![
        "next:".into(),
        format!("  cd {}", root.display()),
        "  kit f                 # in another terminal: a development node".into(),
        "  kit bs                # build and start the package on it".into(),
        format!("  kit i {process_id} '{{\"{method}\": {{\"message\": \"world\"}}}}'"),
        "                        # answers {\"ok\":\"world\"}".into(),
    ]
}

/// `[a-z0-9-]+`, starting with a letter (cargo refuses a leading digit) and
/// not ending with `-`.
pub fn validate_name(name: &str) -> Result<()> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid_chars || !starts_with_letter || name.ends_with('-') {
        bail!(
            "`{name}` is not a valid package name: use lowercase letters, digits and `-`, \
             starting with a letter"
        );
    }
    Ok(())
}

/// The files of the new package `name`: (path relative to its root, text).
fn render(name: &str, repo: &Path) -> Result<Vec<(String, String)>> {
    TEMPLATE
        .iter()
        .map(|file| {
            let path = rename_path(file.path, name);
            let text = if file.path.ends_with("Cargo.toml") {
                let manifest = standalone_manifest(file.text, repo)?;
                substitute(&manifest, name)
            } else if file.path.ends_with(".rs") {
                substitute_rust(file.text, name)
            } else if file.path == "tests.toml" {
                substitute_tests(file.text, name)
            } else if file.path == ".gitignore" {
                standalone_gitignore(file.text)
            } else {
                substitute(file.text, name)
            };
            Ok((path, text))
        })
        .collect()
}

/// A standalone crate builds into its own `target/` (the template, a
/// workspace member, uses the workspace's). Its `Cargo.lock` is worth
/// committing, as for any application.
fn standalone_gitignore(template: &str) -> String {
    let mut text = template.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if !text.lines().any(|line| line.trim() == "target/") {
        text.push_str("target/\n");
    }
    text
}

/// `echo/src/lib.rs` -> `NAME/src/lib.rs`: only whole path components.
fn rename_path(path: &str, name: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .map(|part| if part == TEMPLATE_NAME { name } else { part })
        .collect();
    parts.join("/")
}

/// Replaces the template name in manifests and JSON, where names keep `-`,
/// except in the component's file name, which cargo derives from the
/// library name (`my_app.wasm`).
fn substitute(text: &str, name: &str) -> String {
    let wasm = format!("{TEMPLATE_NAME}.wasm");
    let lib_wasm = format!("{}.wasm", name.replace('-', "_"));
    text.replace(&wasm, &lib_wasm).replace(TEMPLATE_NAME, name)
}

/// Replaces the template name in `tests.toml`: process ids keep the name
/// as typed (`my-app:my-app:sys`); method keys are identifiers (`my_app`).
fn substitute_tests(text: &str, name: &str) -> String {
    let id = format!("\"{TEMPLATE_NAME}:{TEMPLATE_NAME}:");
    let placeholder = "\u{0}PROCESS-ID\u{0}";
    text.replace(&id, placeholder)
        .replace(TEMPLATE_NAME, &name.replace('-', "_"))
        .replace(placeholder, &format!("\"{name}:{name}:"))
}

/// Replaces the template name in Rust source: in comments and string
/// literals the name stays as typed (`my-app`); in code it becomes an
/// identifier (`my_app`), and the type name `Echo` becomes `MyApp`.
fn substitute_rust(text: &str, name: &str) -> String {
    let ident = name.replace('-', "_");
    let type_name = camel_case(name);
    let template_type = camel_case(TEMPLATE_NAME);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        for (kind, segment) in rust_segments(line) {
            match kind {
                Segment::Code => {
                    let segment = segment.replace(&template_type, &type_name);
                    out.push_str(&segment.replace(TEMPLATE_NAME, &ident));
                }
                Segment::Text => out.push_str(&segment.replace(TEMPLATE_NAME, name)),
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// Identifiers, paths, punctuation.
    Code,
    /// String literals and comments.
    Text,
}

/// Splits one line of Rust into code and text (strings, `//` comments).
/// Good enough for the template: no raw strings or block comments.
fn rust_segments(line: &str) -> Vec<(Segment, &str)> {
    let mut segments = Vec::new();
    let (mut start, mut in_string, mut escaped) = (0, false, false);
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    segments.push((Segment::Text, &line[start..=i]));
                    (start, in_string) = (i + 1, false);
                }
                _ => {}
            }
        } else if c == '"' {
            segments.push((Segment::Code, &line[start..i]));
            (start, in_string) = (i, true);
        } else if c == '/' && chars.peek().map(|&(_, next)| next) == Some('/') {
            segments.push((Segment::Code, &line[start..i]));
            segments.push((Segment::Text, &line[i..]));
            return segments;
        }
    }
    let kind = if in_string {
        Segment::Text
    } else {
        Segment::Code
    };
    segments.push((kind, &line[start..]));
    segments
}

/// `my-app` -> `MyApp`.
fn camel_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The process id of the first process in the rendered package, for the
/// "next" hint: `process:package:publisher`.
fn process_id(files: &[(String, String)]) -> Result<String> {
    let find = |path: &str| -> Result<serde_json::Value> {
        let (_, text) = files
            .iter()
            .find(|(p, _)| p == path)
            .with_context(|| format!("template has no {path}"))?;
        serde_json::from_str(text).with_context(|| format!("template {path} is not JSON"))
    };
    let metadata = find("metadata.json")?;
    let properties = &metadata["properties"];
    let manifest = find("pkg/manifest.json")?;
    let field = |value: &serde_json::Value, key: &str| -> Result<String> {
        value[key]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("template lacks `{key}`"))
    };
    Ok(format!(
        "{}:{}:{}",
        field(&manifest[0], "process_name")?,
        field(properties, "package_name")?,
        field(properties, "publisher")?,
    ))
}

/// Makes a workspace member's manifest build on its own; `workspace_root`
/// anchors the workspace's relative path dependencies.
pub(crate) fn standalone_manifest(template: &str, workspace_root: &Path) -> Result<String> {
    let workspace = WorkspaceValues::parse(WORKSPACE_MANIFEST);
    let mut out = String::new();
    let mut section = String::new();
    for line in template.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
            if section == "lints" {
                continue; // `[lints] workspace = true` has nothing to inherit from.
            }
        } else if section == "lints" {
            if trimmed == "workspace = true" || trimmed.is_empty() {
                continue;
            }
            bail!("template [lints] has entries besides `workspace = true`");
        } else if let Some(rewritten) = rewrite_line(trimmed, &section, &workspace, workspace_root)?
        {
            out.push_str(&rewritten);
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\n# Not a member of any enclosing workspace.\n[workspace]\n");
    Ok(out)
}

/// The rewrite of one `key = value` line, or `None` to keep it.
fn rewrite_line(
    line: &str,
    section: &str,
    workspace: &WorkspaceValues,
    workspace_root: &Path,
) -> Result<Option<String>> {
    let Some((key, value)) = line.split_once('=') else {
        return Ok(None);
    };
    let (key, value) = (key.trim(), value.trim());
    if section == "package" {
        let Some(field) = key.strip_suffix(".workspace") else {
            return Ok(None);
        };
        let value = workspace
            .package
            .get(field)
            .with_context(|| format!("the workspace has no package.{field}"))?;
        return Ok(Some(format!("{field} = {value}")));
    }
    if !section.ends_with("dependencies") {
        return Ok(None);
    }
    // `dep.workspace = true` or `dep = { workspace = true, own fields... }`.
    let (dep, own) = match key.strip_suffix(".workspace") {
        Some(dep) => (dep, Vec::new()),
        None => {
            let Some(fields) = inline_table(value) else {
                return Ok(None);
            };
            if !fields.iter().any(|(k, v)| k == "workspace" && v == "true") {
                return Ok(None);
            }
            (
                key,
                fields
                    .into_iter()
                    .filter(|(k, _)| k != "workspace")
                    .collect(),
            )
        }
    };
    let inherited = workspace
        .dependencies
        .get(dep)
        .with_context(|| format!("the workspace has no dependency `{dep}`"))?;
    let mut fields = match inline_table(inherited) {
        Some(fields) => fields,
        None => vec![("version".to_string(), inherited.clone())],
    };
    let mut is_path = false;
    for (k, v) in &mut fields {
        if k == "path" {
            let relative = v.trim_matches('"');
            *v = toml_string(&workspace_root.join(relative).to_string_lossy());
            is_path = true;
        }
    }
    // The workspace's own crates share its version: pinned, so that the
    // SDK a project builds against is the one it was made with.
    if is_path && !fields.iter().any(|(k, _)| k == "version") {
        if let Some(version) = workspace.package.get("version") {
            let version = version.trim_matches('"');
            fields.push(("version".into(), toml_string(&format!("={version}"))));
        }
    }
    for (k, v) in own {
        match fields.iter_mut().find(|(existing, _)| *existing == k) {
            Some((_, existing)) if k == "features" => *existing = merge_arrays(existing, &v),
            Some((_, existing)) => *existing = v,
            None => fields.push((k, v)),
        }
    }
    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    Ok(Some(format!("{dep} = {{ {} }}", fields.join(", "))))
}

/// The `key = value` pairs of a one-line TOML inline table `{ ... }`.
fn inline_table(value: &str) -> Option<Vec<(String, String)>> {
    let inner = value.trim().strip_prefix('{')?.strip_suffix('}')?;
    split_top_level(inner)
        .into_iter()
        .map(|field| {
            let (k, v) = field.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The union of two TOML arrays of strings, `a`'s items first.
fn merge_arrays(a: &str, b: &str) -> String {
    let items = |array: &str| -> Vec<String> {
        let inner = array.trim().trim_start_matches('[').trim_end_matches(']');
        split_top_level(inner)
    };
    let mut merged = items(a);
    for item in items(b) {
        if !merged.contains(&item) {
            merged.push(item);
        }
    }
    format!("[{}]", merged.join(", "))
}

/// Splits on commas outside strings, arrays and tables; drops empty parts.
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut depth, mut in_string, mut start) = (0i32, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '[' | '{' if !in_string => depth += 1,
            ']' | '}' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => {
                parts.push(text[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim().to_string());
    parts.retain(|p| !p.is_empty());
    parts
}

/// `[workspace.package]` and `[workspace.dependencies]` of the workspace
/// manifest, one `key = value` per line (values kept as TOML text).
struct WorkspaceValues {
    package: HashMap<String, String>,
    dependencies: HashMap<String, String>,
}

impl WorkspaceValues {
    fn parse(manifest: &str) -> Self {
        let mut values = Self {
            package: HashMap::new(),
            dependencies: HashMap::new(),
        };
        let mut section = "";
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let table = match section {
                "[workspace.package]" => &mut values.package,
                "[workspace.dependencies]" => &mut values.dependencies,
                _ => continue,
            };
            table.insert(key.trim().to_string(), value.trim().to_string());
        }
        values
    }
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["chat", "my-app", "app2", "a"] {
            validate_name(good).unwrap();
        }
        for bad in [
            "", "My", "my_app", "2app", "-app", "app-", "a.b", "a b", "é",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn gitignore_covers_the_standalone_build() {
        assert_eq!(standalone_gitignore("pkg/*.wasm"), "pkg/*.wasm\ntarget/\n");
        assert_eq!(standalone_gitignore("target/\n"), "target/\n");
    }

    #[test]
    fn paths_are_renamed_by_component() {
        assert_eq!(
            rename_path("echo/src/lib.rs", "my-app"),
            "my-app/src/lib.rs"
        );
        assert_eq!(
            rename_path("pkg/manifest.json", "my-app"),
            "pkg/manifest.json"
        );
        assert_eq!(rename_path("echoes/echo.rs", "x"), "echoes/echo.rs");
    }

    #[test]
    fn rust_names_use_underscores_in_code_only() {
        let src = "//! `echo`: hi\nuse echo::Thing;\nstruct Echo;\n\
                   const ID: &str = \"echo:echo:x.os\"; // echo\n";
        assert_eq!(
            substitute_rust(src, "my-app"),
            "//! `my-app`: hi\nuse my_app::Thing;\nstruct MyApp;\n\
             const ID: &str = \"my-app:my-app:x.os\"; // my-app\n"
        );
        assert_eq!(camel_case("a-b2-c"), "AB2C");
    }

    #[test]
    fn toml_helpers() {
        assert_eq!(
            split_top_level(r#"a = "x,y", b = [1, 2], "#),
            [r#"a = "x,y""#, "b = [1, 2]"]
        );
        assert_eq!(
            merge_arrays(r#"["a", "b"]"#, r#"["b", "c"]"#),
            r#"["a", "b", "c"]"#
        );
        assert_eq!(inline_table("\"1\""), None);
        assert_eq!(
            inline_table("{ workspace = true }"),
            Some(vec![("workspace".to_string(), "true".to_string())])
        );
    }

    #[test]
    fn workspace_values_are_read() {
        let ws = WorkspaceValues::parse(WORKSPACE_MANIFEST);
        assert!(ws.package.contains_key("version"));
        assert!(ws.package.contains_key("edition"));
        assert!(ws.dependencies.contains_key("hearth-sdk"));
    }

    #[test]
    fn manifest_rewrites() {
        let template = "[package]\nname = \"echo\"\nversion.workspace = true\n\n\
                        [lib]\ncrate-type = [\"cdylib\"]\n\n\
                        [dependencies]\nhearth-sdk = { workspace = true }\n\
                        serde = { workspace = true, features = [\"rc\"] }\n\
                        serde_json.workspace = true\n\n[lints]\nworkspace = true\n";
        let out = standalone_manifest(template, Path::new("/repo")).unwrap();
        assert!(
            out.contains("hearth-sdk = { path = \"/repo/process-sdk\", version = \"=0.1.0\" }"),
            "{out}"
        );
        assert!(out.contains("serde_json = { version = \"1\" }"), "{out}");
        let serde = "serde = { version = \"1\", features = [\"derive\", \"rc\"] }";
        assert!(out.contains(serde), "{out}");
        assert!(!out.contains("[lints]"), "{out}");
        assert!(out.trim_end().ends_with("[workspace]"), "{out}");
        assert!(
            !out.contains("workspace = true") && !out.contains(".workspace"),
            "{out}"
        );
    }

    /// The real template renders to a standalone package named `my-app`.
    #[test]
    fn template_renders() {
        let files = render("my-app", Path::new("/repo")).unwrap();
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"my-app/Cargo.toml"), "{paths:?}");
        assert!(paths.contains(&"my-app/src/lib.rs"), "{paths:?}");
        let manifest = &files
            .iter()
            .find(|(p, _)| p == "my-app/Cargo.toml")
            .unwrap()
            .1;
        assert!(manifest.contains("name = \"my-app\""), "{manifest}");
        assert!(
            manifest.contains("path = \"/repo/process-sdk\""),
            "{manifest}"
        );
        assert!(!manifest.contains(".workspace") && !manifest.contains("workspace = true"));
        for (path, text) in &files {
            let lower = text.to_lowercase();
            assert!(
                !lower.contains(TEMPLATE_NAME),
                "{path} still says echo:\n{text}"
            );
        }
        let lib = &files
            .iter()
            .find(|(p, _)| p == "my-app/src/lib.rs")
            .unwrap()
            .1;
        assert!(lib.contains("struct MyApp;"), "{lib}");
        assert!(lib.contains("impl MyApp {"), "{lib}");
        let manifest = &files
            .iter()
            .find(|(p, _)| p == "pkg/manifest.json")
            .unwrap()
            .1;
        assert!(manifest.contains("\"/my_app.wasm\""), "{manifest}");
        let tests = &files.iter().find(|(p, _)| p == "tests.toml").unwrap().1;
        assert!(tests.contains("inject = \"my-app:my-app:sys\""), "{tests}");
        assert!(tests.contains("body = { my_app = {"), "{tests}");
        let id = process_id(&files).unwrap();
        assert!(id.starts_with("my-app:my-app:"), "{id}");
    }
}
