//! `kit new NAME [--template echo|app|ui]`: create a package from a
//! template ([`crate::templates`]); `kit new --list` shows them.
//!
//! The template's placeholder name (`echo`, `tally`, `guestbook`) is
//! replaced by the new name, the crate directory is renamed, and the
//! crate's `Cargo.toml` is made standalone ([`crate::standalone`]): an
//! empty `[workspace]` table, `hearth-sdk` as a path dependency, version
//! pinned, on the SDK kit carries (unpacked by [`crate::sdk`] under
//! `~/.hearth/sdk/`), and every `*.workspace = true` replaced by the
//! workspace's value. Nothing in the new package refers to the checkout
//! kit was built from.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::standalone::standalone_manifest;
use crate::templates::{self, Template};

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// Package name: lowercase letters, digits and `-`, starting with a letter
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// Create the package in this directory
    #[arg(long, default_value = ".", value_name = "PARENT")]
    pub dir: PathBuf,
    /// Template: echo (the default), app or ui; `--list` describes them
    #[arg(long, short, default_value = templates::DEFAULT)]
    pub template: String,
    /// List the templates, one line each, and exit
    #[arg(long)]
    pub list: bool,
    /// Language of the process: `rust` or `python` (see kit/src/python.rs)
    #[arg(long, default_value = "rust", value_parser = ["rust", "python"])]
    pub lang: String,
}

pub fn run(args: &NewArgs) -> Result<()> {
    if args.list {
        for template in templates::TEMPLATES {
            println!("{:<6} {}", template.name, template.description);
        }
        return Ok(());
    }
    let Some(name) = args.name.as_deref() else {
        bail!("give the new package's name (or --list)");
    };
    validate_name(name)?;
    let Some(template) = templates::find(&args.template) else {
        let names: Vec<&str> = templates::TEMPLATES.iter().map(|t| t.name).collect();
        bail!(
            "no template `{}`; there are: {}",
            args.template,
            names.join(", ")
        );
    };
    if args.lang == "python" {
        if template.name != templates::DEFAULT {
            bail!("Python packages have one template (echo); drop --template");
        }
        return crate::python::new_package(name, &args.dir);
    }
    let root = args.dir.join(name);
    if root.exists() {
        bail!(
            "{} already exists; pick another name or --dir",
            root.display()
        );
    }
    let sdk = crate::sdk::ensure().context("unpacking the guest SDK")?;
    let files = render(template, name, &sdk)?;
    for (path, text) in &files {
        let dest = root.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&dest, text).with_context(|| format!("writing {}", dest.display()))?;
    }
    println!(
        "created package {name} from template {} in {}:",
        template.name,
        root.display()
    );
    for (path, _) in &files {
        println!("  {path}");
    }
    println!("SDK {} in {}", crate::sdk::sdk_id(), sdk.display());
    for line in next_steps(template, &root, name, &process_id(&files)?) {
        println!("{line}");
    }
    Ok(())
}

/// The "next" hint: commands that work as printed (CI runs them; lines
/// are run up to their `#`).
fn next_steps(template: &Template, root: &Path, name: &str, process_id: &str) -> Vec<String> {
    let example = template
        .example
        .replace("{method}", &name.replace('-', "_"));
    let mut steps = vec![
        "next:".into(),
        format!("  cd {}", root.display()),
        "  kit f                 # in another terminal: a development node".into(),
        "  kit bs                # build and start the package on it".into(),
        format!("  kit i {process_id} '{example}'"),
        format!("                        # answers {}", template.answer),
        "  kit t                 # its tests (tests.toml) on throw-away nodes".into(),
    ];
    if template.has_ui {
        steps.push(format!(
            "  # the page: http://localhost:<kit f's port>/{process_id}/ (a new node asks you \
             to set its password first)"
        ));
    }
    steps
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

/// The files of the new package `name` made from `template`: (path
/// relative to its root, text).
fn render(template: &Template, name: &str, sdk: &Path) -> Result<Vec<(String, String)>> {
    let placeholder = template.placeholder;
    template
        .files
        .iter()
        .map(|file| {
            let path = rename_path(file.path, placeholder, name);
            let text = if file.path.ends_with("Cargo.toml") {
                let manifest = standalone_manifest(file.text, sdk)?;
                substitute(&manifest, placeholder, name)
            } else if file.path.ends_with(".rs") {
                substitute_rust(file.text, placeholder, name)
            } else if file.path == "tests.toml" {
                substitute_tests(file.text, placeholder, name)
            } else if file.path == ".gitignore" {
                standalone_gitignore(file.text)
            } else {
                substitute(file.text, placeholder, name)
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
fn rename_path(path: &str, from: &str, name: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .map(|part| if part == from { name } else { part })
        .collect();
    parts.join("/")
}

/// Replaces the template name in manifests and JSON, where names keep `-`,
/// except in the component's file name, which cargo derives from the
/// library name (`my_app.wasm`).
fn substitute(text: &str, from: &str, name: &str) -> String {
    let wasm = format!("{from}.wasm");
    let marker = "\u{0}WASM\u{0}";
    let lib_wasm = format!("{}.wasm", name.replace('-', "_"));
    text.replace(&wasm, marker)
        .replace(from, name)
        .replace(marker, &lib_wasm)
}

/// Replaces the template name in `tests.toml`: process ids keep the name
/// as typed (`my-app:my-app:sys`); method keys are identifiers (`my_app`).
fn substitute_tests(text: &str, from: &str, name: &str) -> String {
    let id = format!("\"{from}:{from}:");
    let placeholder = "\u{0}PROCESS-ID\u{0}";
    text.replace(&id, placeholder)
        .replace(from, &name.replace('-', "_"))
        .replace(placeholder, &format!("\"{name}:{name}:"))
}

/// Replaces the template name in Rust source: in comments and string
/// literals the name stays as typed (`my-app`); in code it becomes an
/// identifier (`my_app`), and the type name `Echo` becomes `MyApp`.
fn substitute_rust(text: &str, from: &str, name: &str) -> String {
    let ident = name.replace('-', "_");
    let type_name = camel_case(name);
    let template_type = camel_case(from);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        for (kind, segment) in rust_segments(line) {
            match kind {
                Segment::Code => {
                    let segment = segment.replace(&template_type, &type_name);
                    out.push_str(&segment.replace(from, &ident));
                }
                Segment::Text => out.push_str(&segment.replace(from, name)),
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
            rename_path("echo/src/lib.rs", "echo", "my-app"),
            "my-app/src/lib.rs"
        );
        assert_eq!(
            rename_path("pkg/manifest.json", "echo", "my-app"),
            "pkg/manifest.json"
        );
        assert_eq!(rename_path("echoes/echo.rs", "echo", "x"), "echoes/echo.rs");
    }

    #[test]
    fn rust_names_use_underscores_in_code_only() {
        let src = "//! `echo`: hi\nuse echo::Thing;\nstruct Echo;\n\
                   const ID: &str = \"echo:echo:x.os\"; // echo\n";
        assert_eq!(
            substitute_rust(src, "echo", "my-app"),
            "//! `my-app`: hi\nuse my_app::Thing;\nstruct MyApp;\n\
             const ID: &str = \"my-app:my-app:x.os\"; // my-app\n"
        );
        assert_eq!(camel_case("a-b2-c"), "AB2C");
    }

    /// The real template renders to a standalone package named `my-app`.
    #[test]
    fn template_renders() {
        let echo = templates::find("echo").unwrap();
        let files = render(echo, "my-app", Path::new("/repo")).unwrap();
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
            assert!(!lower.contains("echo"), "{path} still says echo:\n{text}");
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

    /// Every template renders with no trace of its placeholder, and a
    /// `tests.toml` that `kit t` accepts.
    #[test]
    fn every_template_renders() {
        for template in templates::TEMPLATES {
            let files = render(template, "my-app", Path::new("/sdk")).unwrap();
            for (path, text) in &files {
                assert!(
                    !path.contains(template.placeholder)
                        && !text.to_lowercase().contains(template.placeholder),
                    "{}: {path} still says {}:\n{text}",
                    template.name,
                    template.placeholder
                );
            }
            let tests = &files.iter().find(|(p, _)| p == "tests.toml").unwrap().1;
            let parsed = crate::ktest::spec::parse(tests).unwrap();
            assert!(parsed[0].nodes.len() >= 2, "{}", template.name);
            assert!(process_id(&files).unwrap().starts_with("my-app:my-app:"));
            let lib = &files
                .iter()
                .find(|(p, _)| p == "my-app/src/lib.rs")
                .unwrap()
                .1;
            assert!(lib.contains("impl MyApp {"), "{lib}");
        }
        assert!(templates::find("nope").is_none());
        // The new name may contain the placeholder.
        let app = templates::find("app").unwrap();
        let files = render(app, "my-tally", Path::new("/sdk")).unwrap();
        let manifest = &files
            .iter()
            .find(|(p, _)| p == "pkg/manifest.json")
            .unwrap()
            .1;
        assert!(manifest.contains("\"/my_tally.wasm\""), "{manifest}");
        assert!(manifest.contains("\"my-tally\""), "{manifest}");
    }
}
