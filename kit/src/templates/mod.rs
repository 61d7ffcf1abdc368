//! The templates of `kit new --template NAME`, embedded when kit is
//! compiled. Each is a package written with a placeholder name (`echo`,
//! `tally`, `guestbook`) that `kit new` replaces by the new package's
//! name (see `new.rs`). `echo` is `apps/echo` itself; the others live
//! beside this file.

/// One embedded file; `path` is relative to the package root.
pub struct TemplateFile {
    pub path: &'static str,
    pub text: &'static str,
}

/// One template.
pub struct Template {
    pub name: &'static str,
    /// One line for `kit new --list`.
    pub description: &'static str,
    /// The package name the files are written with.
    pub placeholder: &'static str,
    pub files: &'static [TemplateFile],
    /// A request for the printed next steps; `{method}` becomes the new
    /// package's identifier.
    pub example: &'static str,
    /// What the example answers, as printed.
    pub answer: &'static str,
    /// Whether the package has a page (its URL is printed).
    pub has_ui: bool,
}

/// The template `kit new` uses without `--template`.
pub const DEFAULT: &str = "echo";

macro_rules! file {
    ($path:literal, $source:literal) => {
        TemplateFile {
            path: $path,
            text: include_str!($source),
        }
    };
}

pub const TEMPLATES: &[Template] = &[
    Template {
        name: "echo",
        description: "the smallest app: one method answering the message it was given",
        placeholder: "echo",
        files: &[
            file!("metadata.json", "../../../apps/echo/metadata.json"),
            file!("pkg/manifest.json", "../../../apps/echo/pkg/manifest.json"),
            file!("echo/Cargo.toml", "../../../apps/echo/echo/Cargo.toml"),
            file!("echo/src/lib.rs", "../../../apps/echo/echo/src/lib.rs"),
            file!("tests.toml", "../../../apps/echo/tests.toml"),
            file!(".gitignore", "../../../apps/echo/.gitignore"),
        ],
        example: r#"{"{method}": {"message": "world"}}"#,
        answer: r#"{"ok":"world"}"#,
        has_ui: false,
    },
    Template {
        name: "app",
        description: "an #[app] with durable state, typed errors and a two-node kit t test",
        placeholder: "tally",
        files: &[
            file!("metadata.json", "app/metadata.json"),
            file!("pkg/manifest.json", "app/pkg/manifest.json"),
            file!("tally/Cargo.toml", "app/tally/Cargo.toml"),
            file!("tally/src/lib.rs", "app/tally/src/lib.rs"),
            file!("tests.toml", "app/tests.toml"),
            file!(".gitignore", "app/gitignore"),
        ],
        example: r#"{"add": {"name": "cups", "by": 2}}"#,
        answer: r#"{"ok":2}"#,
        has_ui: false,
    },
    Template {
        name: "ui",
        description: "an #[app] with an HTTP API, a live room and a page using /hearth.js",
        placeholder: "guestbook",
        files: &[
            file!("metadata.json", "ui/metadata.json"),
            file!("pkg/manifest.json", "ui/pkg/manifest.json"),
            file!("pkg/ui/index.html", "ui/pkg/ui/index.html"),
            file!("pkg/ui/app.js", "ui/pkg/ui/app.js"),
            file!("pkg/ui/style.css", "ui/pkg/ui/style.css"),
            file!("guestbook/Cargo.toml", "ui/guestbook/Cargo.toml"),
            file!("guestbook/src/lib.rs", "ui/guestbook/src/lib.rs"),
            file!("tests.toml", "ui/tests.toml"),
            file!(".gitignore", "ui/gitignore"),
        ],
        example: r#"{"sign": {"name": "Ada", "text": "hello"}}"#,
        answer: r#"{"ok":{"id":1,"name":"Ada","text":"hello"}}"#,
        has_ui: true,
    },
];

/// The template called `name`.
pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}
