//! Whole files and directories, as `wasmhook validate` checks them; every example pod
//! validates.

use super::*;

#[test]
fn check_files_reports_everything() {
    let dir = fixtures();
    let calls = std::cell::Cell::new(0);
    let counting = |p: &Path| {
        calls.set(calls.get() + 1);
        checker(p)
    };
    let files = vec![
        dir.join("web.yaml"),
        dir.join("multi/pods.yaml"),
        dir.join("multi/dup.yaml"),
        dir.join("syntax-error.yaml"),
        dir.join("web.json"),
        dir.join("does-not-exist.yaml"),
    ];
    let report = check_files(&files, &LoadOptions::default(), &counting);
    assert!(!report.is_valid());
    // ready.wat is referenced from web.yaml and multi/pods.yaml but compiled once
    assert_eq!(calls.get(), 1);
    let names: Vec<&str> = report.pods.iter().map(|p| p.name()).collect();
    assert_eq!(names, vec!["web", "one", "two", "three", "web-json"]);
    assert_eq!(report.errors.len(), 3, "{:#?}", report.errors);
    assert_eq!(
        report.errors[0],
        format!(
            r#"{}: pod "one": metadata.name: Duplicate value: "one": pod already defined in {} (document 1)"#,
            dir.join("multi/dup.yaml").display(),
            dir.join("multi/pods.yaml").display()
        )
    );
    assert!(
        report.errors[1].starts_with(&format!("{}:9:", dir.join("syntax-error.yaml").display()))
    );
    assert!(
        report.errors[2].starts_with(&format!("{}: ", dir.join("does-not-exist.yaml").display()))
    );
    assert_eq!(
        report.valid_lines()[0],
        format!(r#"{}: pod "web" is valid"#, dir.join("web.yaml").display())
    );
    assert!(report.warnings.is_empty());
}

/// Every example pod in `examples/pods` loads and validates. Compiled `.wasm` hooks are build
/// artifacts (`scripts/build-hooks.sh`), so a missing `.wasm` is tolerated; anything else
/// must be clean.
#[test]
fn example_pods_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(entries) = std::fs::read_dir(root.join("examples/pods")) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    let opts = LoadOptions {
        unknown_fields: UnknownFields::Error,
        hooks_dir: Some(root.join("examples/hooks")),
        ..LoadOptions::default()
    };
    let exists = |p: &Path| {
        if p.is_file() {
            Ok(HostCommand::Module)
        } else {
            Err("missing".to_string())
        }
    };
    let mut problems = Vec::new();
    for f in &files {
        match load_file(f, &opts) {
            Err(e) => problems.extend(e.lines()),
            Ok(pods) => {
                for p in &pods {
                    for e in validate(p, &opts, &exists) {
                        let unbuilt = e.path.ends_with(".exec.command[0]")
                            && matches!(&e.kind, wasmhook::manifest::ErrorKind::NotFound(wasmhook::manifest::BadValue::Str(m)) if m.ends_with(".wasm"));
                        if !unbuilt {
                            problems.push(p.render(&e.to_string()));
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
