//! Every config fixture on disk: files under `tests/fixtures/config/valid` must load, files
//! under `tests/fixtures/config/invalid` must fail with the text their first line promises
//! (`# expect: <substring>`), and the shipped config files must load.

use std::path::{Path, PathBuf};

use ici_connector::config::{Config, DEFAULT_TOML};

const EXPECT: &str = "# expect:";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.toml` files of a directory, sorted; fails the test when there are none, so a
/// moved directory cannot make these tests pass vacuously.
fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .toml files in {}", dir.display());
    files
}

#[test]
fn valid_fixtures_load() {
    let files = toml_files(&root().join("tests/fixtures/config/valid"));
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            Config::load(path)
                .err()
                .map(|errs| format!("{}:\n{errs}", path.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn invalid_fixtures_fail_with_the_expected_message() {
    let files = toml_files(&root().join("tests/fixtures/config/invalid"));
    assert!(files.len() >= 8, "only {} invalid fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let first = text.lines().next().unwrap_or_default();
        let Some(expected) = first.strip_prefix(EXPECT).map(str::trim) else {
            failures.push(format!(
                "{}: first line must be `{EXPECT} <text>`",
                path.display()
            ));
            continue;
        };
        assert!(
            !expected.is_empty(),
            "{}: empty expectation",
            path.display()
        );
        match Config::load(path) {
            Ok(_) => failures.push(format!("{}: loaded, expected an error", path.display())),
            Err(errs) => {
                let output = errs.to_string();
                if !output.contains(expected) {
                    failures.push(format!(
                        "{}: expected {expected:?} in:\n{output}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn shipped_default_config_loads_and_is_the_default() {
    let config = Config::load(&root().join("config/ici-connector.toml"))
        .unwrap_or_else(|errs| panic!("config/ici-connector.toml:\n{errs}"));
    assert_eq!(config, Config::default());
    assert_eq!(Config::from_toml_str(DEFAULT_TOML), Ok(Config::default()));
}

#[test]
fn shipped_examples_load() {
    for path in toml_files(&root().join("config/examples")) {
        let config =
            Config::load(&path).unwrap_or_else(|errs| panic!("{}:\n{errs}", path.display()));
        // What check-config prints for it must be a usable config file again.
        let effective = config.effective_toml();
        assert!(
            Config::from_toml_str(&effective).is_ok(),
            "{}: effective config does not parse:\n{effective}",
            path.display()
        );
    }
}
