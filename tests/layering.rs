//! The architecture's rules, checked by reading the source: the layering
//! table of ARCHITECTURE.md and the one place allowed to use `unsafe`.

use std::fs;
use std::path::{Path, PathBuf};

const L0: &[&str] = &["support", "mount", "archive", "proto"];
const L1: &[&str] = &["runtime", "image", "fetch", "net"];
const L2: &[&str] = &["wire", "api"];
const L3: &[&str] = &["containerizer", "state"];

/// Which top-level modules each module may use (`crate::<other>`), as the
/// table in ARCHITECTURE.md says; `None` for a module the table lacks.
fn allowed(module: &str) -> Option<Vec<&'static str>> {
    let levels = |ls: &[&[&'static str]]| ls.concat();
    Some(match module {
        "support" | "mount" | "proto" => vec![],
        "archive" => vec!["support"],
        m if L1.contains(&m) => L0.iter().copied().filter(|m| *m != "proto").collect(),
        m if L2.contains(&m) => vec!["proto", "support"],
        m if L3.contains(&m) => levels(&[L0, L1, L3]),
        "agent" => levels(&[L0, L1, L2, L3]),
        "executors" => vec!["proto", "api", "support"],
        _ => return None,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module a file belongs to: `src/runtime/sys/mod.rs` -> `runtime`.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    // main.rs, the CLI modules it declares (src/cli/) and src/bin/ are
    // programs, not modules of the library.
    (!matches!(name, "main" | "lib" | "bin" | "cli")).then(|| name.to_string())
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = Vec::new();
    for f in &files {
        let Some(module) = module_of(f) else { continue };
        let allowed = allowed(&module)
            .unwrap_or_else(|| panic!("module {module} is not in the layering table"));
        let text = fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + 7..];
                let other: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if other != module && !allowed.contains(&other.as_str()) {
                    violations.push(format!("{}:{}: {module} uses {other}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

#[test]
fn unsafe_is_allowed_in_exactly_one_place() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut allows = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("allow(unsafe_code)") {
                let next = text.lines().nth(n + 1).unwrap_or("").trim().to_string();
                allows.push(format!(
                    "{}: {next}",
                    f.strip_prefix(src()).unwrap().display()
                ));
            }
            if line.trim_start().starts_with("unsafe ") || line.contains(" unsafe {") {
                let in_sys = f.starts_with(src().join("runtime/sys"));
                assert!(
                    in_sys,
                    "unsafe outside src/runtime/sys: {}:{}",
                    f.display(),
                    n + 1
                );
            }
        }
    }
    assert_eq!(
        allows,
        ["runtime/mod.rs: mod sys;"],
        "the only allow(unsafe_code) is on `mod sys`"
    );
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("unsafe_code = \"deny\""),
        "Cargo.toml must deny unsafe_code"
    );
}

#[test]
fn every_unsafe_block_in_sys_has_a_safety_comment() {
    let mut files = Vec::new();
    rust_files(&src().join("runtime/sys"), &mut files);
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            if line.contains("unsafe {") && !line.trim_start().starts_with("//") {
                let before = lines[..n]
                    .iter()
                    .rev()
                    .take(4)
                    .any(|l| l.contains("// SAFETY:"));
                assert!(
                    before,
                    "{}:{}: unsafe block without a SAFETY comment",
                    f.display(),
                    n + 1
                );
            }
        }
    }
}
