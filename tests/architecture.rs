//! The import rules of `ARCHITECTURE.md`, checked on the source text: which top-level module
//! may name which (`crate::<module>` outside comments), and that no two import each other.
//! Cheap (no build of the crate's code involved) and strict: a new edge fails here until
//! the rule and the document change with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module and the modules it may import. Anything not listed here (root items such as
/// `crate::lock`) is free to use. `cli` is the top and may import everything.
const RULES: &[(&str, &[&str])] = &[
    ("hook", &[]),
    // gRPC wire helpers (framing, status codes, unary calls): the CRI proxy and grpc probes.
    ("grpc", &[]),
    ("events", &[]),
    ("manifest", &["hook", "events"]),
    ("wasm", &["hook", "events"]),
    // `backend` for the container an exec handler runs in (lookup, native exec).
    ("handlers", &["hook", "wasm", "backend", "events"]),
    (
        "probe",
        &["hook", "grpc", "wasm", "handlers", "backend", "events"],
    ),
    ("backend", &["events"]),
    (
        "engine",
        &["backend", "handlers", "probe", "hook", "manifest", "events"],
    ),
    // The CRI front: beside the engine, never below it.
    (
        "cri",
        &["hook", "grpc", "wasm", "handlers", "manifest", "events"],
    ),
    (
        "cli",
        &[
            "hook", "grpc", "events", "manifest", "wasm", "handlers", "probe", "backend", "engine",
            "cri",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `module → modules it names`, from every file below `src/<module>` and `src/<module>.rs`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<&str> = RULES.iter().map(|(m, _)| *m).collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if !modules.contains(module.as_str()) {
            continue; // lib.rs, main.rs
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(name.as_str()) && name != module {
                    edges.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn modules_import_only_what_architecture_md_allows() {
    let rules: BTreeMap<&str, &[&str]> = RULES.iter().copied().collect();
    let mut broken = Vec::new();
    for (module, uses) in imports() {
        for used in uses {
            if !rules[module.as_str()].contains(&used.as_str()) {
                broken.push(format!("`{module}` imports `{used}`"));
            }
        }
    }
    assert!(broken.is_empty(), "against ARCHITECTURE.md: {broken:#?}");
}

#[test]
fn the_import_graph_has_no_cycle() {
    let graph = imports();
    // Depth-first search; a node met again while on the stack closes a cycle.
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = stack.iter().position(|s| *s == n) {
            panic!("import cycle: {} -> {n}", stack[at..].join(" -> "));
        }
        if !done.insert(n) {
            return;
        }
        stack.push(n);
        for m in g.get(n).into_iter().flatten() {
            visit(m, g, stack, done);
        }
        stack.pop();
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn nothing_but_cli_imports_cri() {
    for (module, uses) in imports() {
        assert!(
            module == "cli" || !uses.contains("cri"),
            "`{module}` imports `cri`"
        );
    }
}
