;; fail.wat: an exec hook that always fails, for trying out failure handling (WASI preview 1).
;;
;;   command: ["fail.wat"]
;;
;; Writes "error: failing on purpose" to stderr and ends with proc_exit(3), which the engine
;; reports as `command '<argv>' exited with 3: ...`.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "error: failing on purpose\n")

  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 26))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 3))))
