//! Profile settings every guest build gets, on top of the crate's own:
//! `kit b` passes them to cargo, and so do the e2e tests when they build
//! the workspace's guests. They are cargo `--config` values, not a
//! `[profile]` in the workspace's Cargo.toml: that would apply to the host
//! too, and rebuild wasmtime (which uses serde_json) for no gain there.
//!
//! Why they matter: a component's static data is its memory image, and
//! the node maps the whole image into every instance on its first read of
//! it (the kernel's fault-around), so each KiB of it is a KiB of every idle
//! process.

/// `(package, key, value)` of `[profile.release.package.<package>]`.
///
/// `zmij` (serde_json's float formatter) keeps 17 KiB of lookup tables in
/// the data at `opt-level = 3` and computes them from 0.9 KiB at `"s"`;
/// only formatting a float pays a few multiplications more.
pub const GUEST_PROFILE: &[(&str, &str, &str)] = &[("zmij", "opt-level", "\"s\"")];

/// The `--config` arguments that apply [`GUEST_PROFILE`] to a cargo build.
pub fn cargo_args() -> Vec<String> {
    GUEST_PROFILE
        .iter()
        .flat_map(|(package, key, value)| {
            [
                "--config".to_string(),
                format!("profile.release.package.{package}.{key}={value}"),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_setting_is_one_config_pair() {
        let args = cargo_args();
        assert_eq!(args.len(), 2 * GUEST_PROFILE.len());
        assert_eq!(
            args[..2],
            ["--config", "profile.release.package.zmij.opt-level=\"s\""]
        );
    }
}
