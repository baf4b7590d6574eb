;; healthy.wat: an exec probe (liveness, readiness) that passes while the container's first
;; volume mount holds a file named `healthy` (WASI preview 1).
;;
;;   livenessProbe: {exec: {command: ["healthy.wat"]}}
;;
;; The first volume mount is preopened as fd 3. Exit 0 and "healthy" on stdout when
;; `healthy` is there; else "unhealthy: no file named healthy in the first volume" on stderr
;; and exit 1, which the prober reports as `Liveness probe failed: <that output>`.
(module
  (import "wasi_snapshot_preview1" "path_filestat_get"
    (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  (memory (export "memory") 1)
  (data (i32.const 64) "healthy")
  (data (i32.const 80) "healthy\n")
  (data (i32.const 96) "unhealthy: no file named healthy in the first volume\n")

  ;; Write `len` bytes at `ptr` to `fd` (iovec at 0, count at 8).
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func (export "_start")
    ;; filestat lands at 256 (64 bytes); errno 0 means the file exists.
    (if (i32.eqz (call $path_filestat_get (i32.const 3) (i32.const 0)
                   (i32.const 64) (i32.const 7) (i32.const 256)))
      (then
        (call $write (i32.const 1) (i32.const 80) (i32.const 8))
        (call $proc_exit (i32.const 0))))
    (call $write (i32.const 2) (i32.const 96) (i32.const 53))
    (call $proc_exit (i32.const 1))))
