//! The formats of a package: `metadata.json` and `pkg/manifest.json`, both
//! read from outside bytes (an upload) and so property-tested in
//! `upload.rs`.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub properties: Properties,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Properties {
    pub package_name: String,
    pub publisher: String,
    pub current_version: String,
}

/// One entry of `pkg/manifest.json`; the fields of the reference system.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestEntry {
    pub process_name: String,
    pub process_wasm_path: String,
    #[serde(default)]
    pub on_exit: ManifestOnExit,
    #[serde(default)]
    pub request_networking: bool,
    #[serde(default)]
    pub request_capabilities: Vec<CapabilityRef>,
    #[serde(default)]
    pub grant_capabilities: Vec<CapabilityRef>,
    #[serde(default)]
    pub public: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub enum ManifestOnExit {
    #[default]
    None,
    Restart,
    Requests(Vec<ManifestExitRequest>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManifestExitRequest {
    /// `process:package:publisher` (this node) or a full address.
    pub target: String,
    pub body: serde_json::Value,
}

/// A capability as written in a manifest: a process id, or an object with
/// the process id and parameters (only messaging is known for now).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CapabilityRef {
    Process(String),
    Full {
        process: String,
        #[serde(default)]
        params: Option<String>,
    },
}

impl CapabilityRef {
    pub fn process(&self) -> &str {
        match self {
            Self::Process(p) | Self::Full { process: p, .. } => p,
        }
    }
}
