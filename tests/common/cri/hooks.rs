//! WASI preview 1 modules in WebAssembly text, compiled at test time with `wat`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Common WAT: imports, memory, and `$write(fd, ptr, len)`, `$strlen(ptr)`,
/// `$memeq(a, b, len)`, `$find_preopen(name, len) -> fd | -1` (the preopen whose name,
/// without leading or trailing `/`, is `name`).
const PRELUDE: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 4)
  ;; 0: iovec {ptr, len}; 8: bytes written/read; 16..1023: constant strings.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
(i32.store (i32.const 0) (local.get $ptr))
(i32.store (i32.const 4) (local.get $len))
(drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $strlen (param $p i32) (result i32) (local $n i32)
(block $done (loop $l
  (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
  (local.set $n (i32.add (local.get $n) (i32.const 1)))
  (br $l)))
(local.get $n))
  (func $memeq (param $a i32) (param $b i32) (param $n i32) (result i32)
(block $no (loop $l
  (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
  (br_if $no (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
  (local.set $a (i32.add (local.get $a) (i32.const 1)))
  (local.set $b (i32.add (local.get $b) (i32.const 1)))
  (local.set $n (i32.sub (local.get $n) (i32.const 1)))
  (br $l)))
(i32.const 0))
  ;; Preopen scan: prestat at 1024 (tag, name length), name at 1040 (up to 255 bytes).
  (func $find_preopen (param $name i32) (param $len i32) (result i32)
(local $fd i32) (local $p i32) (local $n i32) (local $c i32)
(local.set $fd (i32.const 3))
(block $end
  (loop $next
    (br_if $end (i32.ge_u (local.get $fd) (i32.const 128)))
    (if (i32.eqz (call $fd_prestat_get (local.get $fd) (i32.const 1024)))
      (then
        (local.set $n (i32.load (i32.const 1028)))
        (if (i32.and (i32.eqz (i32.load8_u (i32.const 1024)))
                     (i32.lt_u (local.get $n) (i32.const 256)))
          (then
            (if (i32.eqz (call $fd_prestat_dir_name (local.get $fd) (i32.const 1040) (local.get $n)))
              (then
                (local.set $p (i32.const 1040))
                ;; strip leading '/'
                (block $b1
                  (loop $l1
                    (br_if $b1 (i32.eqz (local.get $n)))
                    (br_if $b1 (i32.ne (i32.load8_u (local.get $p)) (i32.const 47)))
                    (local.set $p (i32.add (local.get $p) (i32.const 1)))
                    (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                    (br $l1)))
                ;; strip trailing '/' and NUL
                (block $b2
                  (loop $l2
                    (br_if $b2 (i32.eqz (local.get $n)))
                    (local.set $c (i32.load8_u (i32.sub (i32.add (local.get $p) (local.get $n)) (i32.const 1))))
                    (br_if $b2 (i32.and (i32.ne (local.get $c) (i32.const 47))
                                        (i32.ne (local.get $c) (i32.const 0))))
                    (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                    (br $l2)))
                (if (i32.eq (local.get $n) (local.get $len))
                  (then
                    (if (call $memeq (local.get $p) (local.get $name) (local.get $n))
                      (then (return (local.get $fd))))))))))))
    (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
    (br $next)))
(i32.const -1))
"#;

/// `inspect.wasm`: prints (stdout) one `argv=<arg>` line per argument, one `env:<K=V>`
/// line per environment variable, one `preopen:<name>` line per preopened directory,
/// `data:<content>` of `/data/input.txt`, `data-write:denied` (or `allowed`) for an
/// attempt to create `/data/ro-probe.txt`; writes `written by inspect.wasm\n` to
/// `/work/out.txt`; prints `inspect: to stderr` on stderr; exits 0.
/// Failures: exit 10 (no /data), 11 (cannot open input.txt), 12 (no /work),
/// 13 (cannot create /work/out.txt), with the reason on stderr.
pub fn inspect() -> Vec<u8> {
    let wat = format!(
        r#"(module {PRELUDE}
  (data (i32.const 16) "argv=")          ;; 16, 5
  (data (i32.const 24) "env:")           ;; 24, 4
  (data (i32.const 32) "\n")             ;; 32, 1
  (data (i32.const 40) "data")           ;; 40, 4
  (data (i32.const 48) "work")           ;; 48, 4
  (data (i32.const 56) "input.txt")      ;; 56, 9
  (data (i32.const 72) "out.txt")        ;; 72, 7
  (data (i32.const 80) "data:")          ;; 80, 5
  (data (i32.const 88) "written by inspect.wasm\n") ;; 88, 24
  (data (i32.const 120) "inspect: to stderr\n")     ;; 120, 19
  (data (i32.const 144) "inspect: no /data preopen\n") ;; 144, 26
  (data (i32.const 176) "inspect: cannot open /data/input.txt\n") ;; 176, 37
  (data (i32.const 216) "inspect: no /work preopen\n") ;; 216, 26
  (data (i32.const 248) "inspect: cannot create /work/out.txt\n") ;; 248, 37
  (data (i32.const 288) "preopen:")       ;; 288, 8
  (data (i32.const 296) "ro-probe.txt")   ;; 296, 12
  (data (i32.const 312) "data-write:denied\n")  ;; 312, 18
  (data (i32.const 336) "data-write:allowed\n") ;; 336, 19
  (func (export "_start")
(local $i i32) (local $n i32) (local $p i32) (local $fd i32) (local $f i32)
;; argv: count at 2048, buffer size at 2052, pointers at 4096, strings at 8192.
(drop (call $args_sizes_get (i32.const 2048) (i32.const 2052)))
(drop (call $args_get (i32.const 4096) (i32.const 8192)))
(local.set $n (i32.load (i32.const 2048)))
(local.set $i (i32.const 0))
(block $e (loop $l
  (br_if $e (i32.ge_u (local.get $i) (local.get $n)))
  (local.set $p (i32.load (i32.add (i32.const 4096) (i32.mul (local.get $i) (i32.const 4)))))
  (call $write (i32.const 1) (i32.const 16) (i32.const 5))
  (call $write (i32.const 1) (local.get $p) (call $strlen (local.get $p)))
  (call $write (i32.const 1) (i32.const 32) (i32.const 1))
  (local.set $i (i32.add (local.get $i) (i32.const 1)))
  (br $l)))
;; environ: count at 2056, size at 2060, pointers at 65536, strings at 98304.
(drop (call $environ_sizes_get (i32.const 2056) (i32.const 2060)))
(drop (call $environ_get (i32.const 65536) (i32.const 98304)))
(local.set $n (i32.load (i32.const 2056)))
(local.set $i (i32.const 0))
(block $e (loop $l
  (br_if $e (i32.ge_u (local.get $i) (local.get $n)))
  (local.set $p (i32.load (i32.add (i32.const 65536) (i32.mul (local.get $i) (i32.const 4)))))
  (call $write (i32.const 1) (i32.const 24) (i32.const 4))
  (call $write (i32.const 1) (local.get $p) (call $strlen (local.get $p)))
  (call $write (i32.const 1) (i32.const 32) (i32.const 1))
  (local.set $i (i32.add (local.get $i) (i32.const 1)))
  (br $l)))
;; preopens
(local.set $fd (i32.const 3))
(block $e (loop $l
  (br_if $e (i32.ge_u (local.get $fd) (i32.const 128)))
  (if (i32.eqz (call $fd_prestat_get (local.get $fd) (i32.const 1024)))
    (then
      (local.set $n (i32.load (i32.const 1028)))
      (if (i32.lt_u (local.get $n) (i32.const 256))
        (then
          (drop (call $fd_prestat_dir_name (local.get $fd) (i32.const 1040) (local.get $n)))
          (call $write (i32.const 1) (i32.const 288) (i32.const 8))
          (call $write (i32.const 1) (i32.const 1040) (local.get $n))
          (call $write (i32.const 1) (i32.const 32) (i32.const 1))))))
  (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
  (br $l)))
;; /data/input.txt -> stdout
(local.set $fd (call $find_preopen (i32.const 40) (i32.const 4)))
(if (i32.lt_s (local.get $fd) (i32.const 0))
  (then (call $write (i32.const 2) (i32.const 144) (i32.const 26)) (call $proc_exit (i32.const 10))))
;; rights: fd_read | fd_seek | fd_tell
(if (call $path_open (local.get $fd) (i32.const 1) (i32.const 56) (i32.const 9) (i32.const 0)
      (i64.const 38) (i64.const 0) (i32.const 0) (i32.const 2064))
  (then (call $write (i32.const 2) (i32.const 176) (i32.const 37)) (call $proc_exit (i32.const 11))))
(local.set $f (i32.load (i32.const 2064)))
(i32.store (i32.const 0) (i32.const 16384))
(i32.store (i32.const 4) (i32.const 16384))
(drop (call $fd_read (local.get $f) (i32.const 0) (i32.const 1) (i32.const 8)))
(local.set $n (i32.load (i32.const 8)))
(call $write (i32.const 1) (i32.const 80) (i32.const 5))
(call $write (i32.const 1) (i32.const 16384) (local.get $n))
(drop (call $fd_close (local.get $f)))
;; /data is read-only: creating a file there must fail. oflags creat|trunc, rights fd_write.
(if (call $path_open (local.get $fd) (i32.const 1) (i32.const 296) (i32.const 12) (i32.const 9)
      (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 2064))
  (then (call $write (i32.const 1) (i32.const 312) (i32.const 18)))
  (else
    (call $write (i32.const 1) (i32.const 336) (i32.const 19))
    (drop (call $fd_close (i32.load (i32.const 2064))))))
;; /work/out.txt <- a line
(local.set $fd (call $find_preopen (i32.const 48) (i32.const 4)))
(if (i32.lt_s (local.get $fd) (i32.const 0))
  (then (call $write (i32.const 2) (i32.const 216) (i32.const 26)) (call $proc_exit (i32.const 12))))
(if (call $path_open (local.get $fd) (i32.const 1) (i32.const 72) (i32.const 7) (i32.const 9)
      (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 2064))
  (then (call $write (i32.const 2) (i32.const 248) (i32.const 37)) (call $proc_exit (i32.const 13))))
(local.set $f (i32.load (i32.const 2064)))
(call $write (local.get $f) (i32.const 88) (i32.const 24))
(drop (call $fd_close (local.get $f)))
(call $write (i32.const 2) (i32.const 120) (i32.const 19))))
"#
    );
    wat::parse_str(wat).expect("inspect.wat")
}

/// `noop.wasm`: returns at once (exit 0, no output).
pub fn noop() -> Vec<u8> {
    wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#).unwrap()
}

/// `fail.wasm`: `about to fail` on stdout, `failing on purpose` on stderr, exit 3.
pub fn fail() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {PRELUDE}
  (data (i32.const 16) "about to fail\n")       ;; 14
  (data (i32.const 32) "failing on purpose\n")  ;; 19
  (func (export "_start")
(call $write (i32.const 1) (i32.const 16) (i32.const 14))
(call $write (i32.const 2) (i32.const 32) (i32.const 19))
(call $proc_exit (i32.const 3))))"#
    ))
    .unwrap()
}

/// `loop.wasm`: spins forever (until its deadline or cancellation).
pub fn spin() -> Vec<u8> {
    wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#,
    )
    .unwrap()
}

/// `trap.wasm`: `started` on stdout, then executes `unreachable`.
pub fn trap() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {PRELUDE}
  (data (i32.const 16) "started\n")
  (func (export "_start")
(call $write (i32.const 1) (i32.const 16) (i32.const 8))
unreachable))"#
    ))
    .unwrap()
}

/// `big.wasm`: 17 MiB of `x` on stdout (more than the CRI's 16 MiB), then `big: done`
/// on stderr; exits 0.
pub fn big() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {PRELUDE}
  (data (i32.const 16) "big: done\n")
  (func (export "_start") (local $i i32)
(memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
(block $e (loop $l
  (br_if $e (i32.ge_u (local.get $i) (i32.const 272)))
  (call $write (i32.const 1) (i32.const 65536) (i32.const 65536))
  (local.set $i (i32.add (local.get $i) (i32.const 1)))
  (br $l)))
(call $write (i32.const 2) (i32.const 16) (i32.const 10))))"#
    ))
    .unwrap()
}

/// `escape.wasm` (host only): prints `ESCAPED`. No test may ever see it run.
pub fn escaped() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {PRELUDE}
  (data (i32.const 16) "ESCAPED\n")
  (func (export "_start") (call $write (i32.const 1) (i32.const 16) (i32.const 8))))"#
    ))
    .unwrap()
}

/// Write `bytes` to `path`, mode 0755 (as a hook binary ships).
pub fn install(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The image's `/hooks` (into `tree/hooks`) and the host-only module its symlink points
/// at (in `host_only`):
/// - `inspect.wasm`, `noop.wasm`, `fail.wasm`, `loop.wasm`, `trap.wasm`, `big.wasm`:
///   see above;
/// - `hello.wat`: `examples/hooks/bin/hello.wat` (text; prints `hello from a WAT hook`);
/// - `netprobe.wasm`: `examples/hooks/bin/netprobe.component.wasm` (a component that
///   prints what the network policy lets it reach);
/// - `not-wasm.wasm`: a text file, mode 0755 (runc answers `exec format error`);
/// - `bad.wasm`: the wasm header, then garbage (an invalid module);
/// - `escape.wasm` -> `<host_only>/escape.wasm`, an absolute symlink to a path that
///   exists on the host only.
pub fn install_image_hooks(tree: &Path, host_only: &Path) {
    let h = tree.join("hooks");
    install(&h.join("inspect.wasm"), &inspect());
    install(&h.join("noop.wasm"), &noop());
    install(&h.join("fail.wasm"), &fail());
    install(&h.join("loop.wasm"), &spin());
    install(&h.join("trap.wasm"), &trap());
    install(&h.join("big.wasm"), &big());
    let hello = std::fs::read(super::super::repo().join("examples/hooks/bin/hello.wat")).unwrap();
    install(&h.join("hello.wat"), &hello);
    let netprobe =
        std::fs::read(super::super::repo().join("examples/hooks/bin/netprobe.component.wasm"))
            .unwrap();
    install(&h.join("netprobe.wasm"), &netprobe);
    install(&h.join("not-wasm.wasm"), b"this is not a wasm module\n");
    install(&h.join("bad.wasm"), b"\0asm\x01\0\0\0 not a valid module");
    let target = host_only.join("escape.wasm");
    install(&target, &escaped());
    std::os::unix::fs::symlink(&target, h.join("escape.wasm")).unwrap();
}
