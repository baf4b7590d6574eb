//! Loading: invalid modules, precompiled artifacts, the disk cache.

use super::*;

#[tokio::test]
async fn invalid_modules_are_load_errors() {
    let rt = runtime();
    let err = rt.load_file(&fixture("nostart.wat")).unwrap_err();
    assert!(matches!(err, LoadError::Invalid { .. }));
    assert!(err.to_string().contains("exports no `_start`"), "{err}");

    let err = rt
        .load_bytes("garbage.wasm", b"\0asm\x01\0\0\0garbage")
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("garbage.wasm: invalid hook module"),
        "{err}"
    );

    let err = rt
        .load_bytes("text.wat", b"(module (func $f (result i32)))")
        .unwrap_err();
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");

    let err = rt
        .load_file(Path::new("/nonexistent/hook.wasm"))
        .unwrap_err();
    assert!(matches!(err, LoadError::NotFound(_)));

    let import = br#"(module (import "env" "nope" (func)) (func (export "_start")))"#;
    let err = rt.load_bytes("imports.wat", import).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn precompiled_modules_need_an_explicit_allow() {
    let dir = tempfile::tempdir().unwrap();
    let cwasm = runtime()
        .precompile(&std::fs::read(fixture("exit3.wat")).unwrap())
        .unwrap();
    let file = dir.path().join("exit3.cwasm");
    std::fs::write(&file, &cwasm).unwrap();

    let err = runtime().load_file(&file).unwrap_err();
    assert!(matches!(err, LoadError::PrecompiledRefused(_)), "{err}");

    let rt = runtime_with(None, true);
    let module = rt.load_file(&file).unwrap();
    assert_eq!(module.kind(), ModuleKind::P1Command);
    let out = rt.run(&module, inv(&["exit3.cwasm"])).await;
    assert_eq!(out.status, ExecStatus::Exited(3));
}

#[tokio::test]
async fn the_disk_cache_is_reused_and_a_corrupt_entry_is_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    let first = runtime_with(Some(cache.path()), false);
    let module = first.load_file(&fixture("exit3.wat")).unwrap();
    assert_eq!(first.cache_stats().compiled, 1);
    // A second load of the same content is served from memory.
    first
        .load_bytes("again.wat", &std::fs::read(fixture("exit3.wat")).unwrap())
        .unwrap();
    assert_eq!(first.cache_stats().compiled, 1);

    let entries: Vec<PathBuf> = walk(cache.path());
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert!(entry
        .to_string_lossy()
        .ends_with(&format!("{}.cwasm", module.content_hash())));

    // A new process (runtime) deserializes instead of compiling.
    let second = runtime_with(Some(cache.path()), false);
    let module = second.load_file(&fixture("exit3.wat")).unwrap();
    assert_eq!(second.cache_stats().disk_hits, 1);
    assert_eq!(second.cache_stats().compiled, 0);
    assert_eq!(
        second.run(&module, inv(&["x"])).await.status,
        ExecStatus::Exited(3)
    );

    // Flip one byte in the artifact: rejected, deleted, recompiled and rewritten.
    let mut bytes = std::fs::read(entry).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0xff;
    std::fs::write(entry, &bytes).unwrap();
    let third = runtime_with(Some(cache.path()), false);
    let module = third.load_file(&fixture("exit3.wat")).unwrap();
    let stats = third.cache_stats();
    assert_eq!(
        (stats.disk_rejected, stats.compiled, stats.disk_hits),
        (1, 1, 0)
    );
    assert_eq!(
        third.run(&module, inv(&["x"])).await.status,
        ExecStatus::Exited(3)
    );
    assert_ne!(
        std::fs::read(entry).unwrap(),
        bytes,
        "the entry was rewritten"
    );

    // A foreign file of the right name is not trusted either.
    std::fs::write(entry, b"wasmhook-cwasm-1 but not really").unwrap();
    let fourth = runtime_with(Some(cache.path()), false);
    fourth.load_file(&fixture("exit3.wat")).unwrap();
    assert_eq!(fourth.cache_stats().disk_rejected, 1);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
