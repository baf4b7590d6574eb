;; hello.wat: the smallest useful exec hook, in WebAssembly text (WASI preview 1).
;;
;;   command: ["hello.wat"]
;;
;; wasmhook compiles .wat files on load, so there is nothing to build. The module writes one line
;; to stdout with fd_write and ends with proc_exit(0): success, with "hello from a WAT hook" as the
;; hook's output. (Returning from _start without proc_exit would succeed too.)
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param $fd i32) (param $iovs i32) (param $iovs_len i32) (param $nwritten i32)
      (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param $code i32)))

  (memory (export "memory") 1)
  ;; The line at offset 16; one iovec {ptr, len} at offset 0; bytes written at offset 8.
  (data (i32.const 16) "hello from a WAT hook\n")

  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 22))
    ;; fd 1 = stdout; a non-zero errno would mean the write failed: exit 1 then.
    (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
      (then (call $proc_exit (i32.const 1))))
    (call $proc_exit (i32.const 0))))
