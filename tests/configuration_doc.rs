//! `docs/CONFIGURATION.md` cannot drift from the code: every environment variable the workspace's non-test Rust
//! sources read is a row of one of its tables, and every row names a variable some code reads.
//!
//! A variable counts as read when its name is the string literal given to a lookup (`get("REDIS_URL")`,
//! `std::env::var("CPC_WEB_ADDR")`, `var_os(..)`, the typed helpers `millis(&get, "DB_REPLICA_RECHECK_MS")` and
//! `num(&get, "DB_POOL_MAX")`), or sits in a constant that names variables (`const REPLICA_URLS_ENV: &str = ..`,
//! `const ENV_VARS: [&str; 3] = [..]`). Comment lines, test files and `#[cfg(test)]` modules are not read.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The source folders scanned: the library crates, the test-server harness (tooling) and the examples.
const SOURCE_DIRS: &[&str] = &[
    "src",
    "ports/src",
    "domain/src",
    "adapters/src",
    "adapters/pool/src",
    "adapters/diesel/src",
    "adapters/redis/src",
    "adapters/memory/src",
    "adapters/observe/src",
    "adapters/tower/src",
    "adapters/worker/src",
    "testkit/src",
    "testkit/servers/src",
    "examples",
];

/// Functions whose first string argument (possibly after a `&get,` lookup argument) is a variable name.
const LOOKUPS: &[&str] = &["get", "var", "var_os", "millis", "num"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An environment variable's shape: upper-case letters, digits and underscores, starting with a letter.
fn is_variable_name(s: &str) -> bool {
    s.len() >= 3
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name == "tests.rs" || name.starts_with("tests_") || path.components().any(|c| c.as_os_str() == "tests")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !is_test_file(&path) {
            out.push(path);
        }
    }
}

/// The code of a file without comment lines, and cut before its `#[cfg(test)] mod … {` (clippy's
/// `items_after_test_module` keeps test modules last). `#[cfg(test)] mod tests;` only drops that line.
fn non_test_code(source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut code = String::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]" {
            let next = lines[i + 1..].iter().map(|l| l.trim()).find(|l| !l.starts_with("#["));
            match next {
                Some(n) if (n.starts_with("mod ") || n.starts_with("pub(crate) mod ")) && n.ends_with('{') => break,
                _ => continue,
            }
        }
        if !trimmed.starts_with("//") {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

/// The string literal at the start of `s` (after whitespace), if any.
fn leading_literal(s: &str) -> Option<&str> {
    let s = s.trim_start().strip_prefix('"')?;
    s.find('"').map(|end| &s[..end])
}

/// Every literal in `s`.
fn literals(mut s: &str) -> Vec<&str> {
    let mut found = Vec::new();
    while let Some(start) = s.find('"') {
        let rest = &s[start + 1..];
        let Some(end) = rest.find('"') else { break };
        found.push(&rest[..end]);
        s = &rest[end + 1..];
    }
    found
}

/// The variables `code` reads.
fn variables_read(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    // Lookups: `get("X")`, `var("X")`, `millis(&get, "X")`, ...
    for lookup in LOOKUPS {
        let call = format!("{lookup}(");
        for (at, _) in code.match_indices(&call) {
            if code[..at].ends_with(is_ident) {
                continue; // `target(`, `env_var(`: another function
            }
            let mut args = &code[at + call.len()..];
            if let Some(comma) = args.find(',')
                && args[..comma].trim().trim_start_matches('&').chars().all(is_ident)
                && !args[..comma].trim().is_empty()
            {
                args = &args[comma + 1..]; // the lookup function passed first
            }
            if let Some(name) = leading_literal(args).filter(|n| is_variable_name(n)) {
                names.insert(name.to_owned());
            }
        }
    }
    // Constants naming variables: `const X_ENV: &str = "X";`, `const ENV_VARS: [&str; N] = [..];`.
    for (at, _) in code.match_indices("const ") {
        let rest = &code[at + "const ".len()..];
        let ident: String = rest.chars().take_while(|&c| is_ident(c)).collect();
        // Up to the `;` after the `=` (the type may hold one: `[&str; 3]`).
        let Some(end) = rest.find('=').and_then(|eq| rest[eq..].find(';').map(|semi| eq + semi)) else { continue };
        let declaration = &rest[..end];
        let single = ident.ends_with("_ENV") && declaration[ident.len()..].trim_start().starts_with(": &str");
        if single || ident.ends_with("ENV_VARS") {
            names.extend(literals(declaration).into_iter().filter(|n| is_variable_name(n)).map(str::to_owned));
        }
    }
    names
}

/// The variables the workspace's code reads.
fn read_by_code() -> BTreeSet<String> {
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        rust_files(&root().join(dir), &mut files);
    }
    let mut names = BTreeSet::new();
    for file in files {
        let source = fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        names.extend(variables_read(&non_test_code(&source)));
    }
    names
}

/// The variables `docs/CONFIGURATION.md` documents: the first cell of each table row, `` | `NAME` | ``.
fn documented() -> BTreeSet<String> {
    let doc = fs::read_to_string(root().join("docs/CONFIGURATION.md")).expect("docs/CONFIGURATION.md");
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |").map(|(name, _)| name))
        .filter(|name| is_variable_name(name))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_variable_the_code_reads_is_documented_and_every_documented_one_is_read() {
    let read = read_by_code();
    let documented = documented();
    // The scan itself works: variables read in each of its forms are found.
    for sure in ["REDIS_URL", "DATABASE_STATEMENT_TIMEOUT", "DATABASE_REPLICA_URLS", "DB_POOL_MAX", "CPC_WEB_ADDR"] {
        assert!(read.contains(sure), "the scan missed {sure}: found {read:?}");
    }
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(
        undocumented.is_empty() && unread.is_empty(),
        "docs/CONFIGURATION.md is out of date.\n  read by the code, not documented: {undocumented:?}\n  documented, read by \
         no code: {unread:?}"
    );
}

#[test]
fn the_scan_reads_lookups_and_constants_and_skips_comments_and_tests() {
    let code = non_test_code(
        r#"
        let a = get("A_URL").or_else(|| get("USER"));
        let b = std::env::var("B_ADDR");
        if let Some(ms) = millis(&get, "C_MS")? {}
        let d = target("NOT_A_LOOKUP");
        pub const E_ENV: &str = "E_URL";
        const ENV_VARS: [&str; 2] =
            ["F_ONE", "F_TWO"];
        const PG_ENV: &[&str] = &["REMOVED_VAR"];
        // get("IN_A_COMMENT")
        #[cfg(test)]
        mod tests;
        let g = num(&get, "G_N");
        #[cfg(test)]
        mod tests {
            fn t() { get("IN_A_TEST"); }
        }
        "#,
    );
    let found = variables_read(&code);
    let expected = ["A_URL", "B_ADDR", "C_MS", "E_URL", "F_ONE", "F_TWO", "G_N", "USER"];
    assert_eq!(found, expected.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
}
