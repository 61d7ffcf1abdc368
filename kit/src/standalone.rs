//! Makes a crate of the workspace build on its own: `*.workspace = true`
//! replaced by the workspace's values, path dependencies on the
//! workspace's own crates anchored at a given root (the unpacked SDK) and
//! version-pinned, and an empty `[workspace]` table so an enclosing
//! workspace does not claim it. Used by `kit new` (templates), the SDK
//! unpack (`sdk.rs`) and `kit bench`'s scratch builds.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The workspace manifest, for the values `*.workspace = true` refers to.
const WORKSPACE_MANIFEST: &str = include_str!("../../Cargo.toml");

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
}
