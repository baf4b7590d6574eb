// Link flags for the wasm32-wasip1 cdylib (a reactor: no `_start`, only the handler export).
//
// rustc links a cdylib with `-shared`, which clang 14 ignores for wasm: it would then add
// wasi-libc's command entry (crt1-command.o, needing `main`). `-nostartfiles` leaves every crt
// object out and `--no-entry` says there is no entry point. Constructors (wasi-libc's preopen
// discovery) then run exactly once, at the start of the first `handler.run` call:
// wit-bindgen's export glue calls `__wasm_call_ctors` itself, and because that reference is
// explicit, wasm-ld does not wrap the other exports (`cabi_realloc`, which the host calls while
// lowering the context) in constructor calls. crt1-reactor.o (`-mexec-model=reactor`) would
// also work but runs the constructors twice (its `_initialize`, then wit-bindgen's).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("wasi") {
        println!("cargo:rustc-link-arg-cdylib=-nostartfiles");
        println!("cargo:rustc-link-arg-cdylib=-Wl,--no-entry");
    }
}
