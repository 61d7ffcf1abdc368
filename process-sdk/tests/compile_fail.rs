//! Misuse of `#[app]` fails to compile with a message on the user's code.

#[test]
fn app_macro_misuse() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
