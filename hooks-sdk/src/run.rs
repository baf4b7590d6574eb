//! The hook runner: context in, exit code out.

use std::io::{self, Write};

use crate::{Context, HookError};

/// Runs a hook and ends the module the way wasmhook expects.
///
/// Reads the [`Context`] from argv and the environment, calls `hook` with it, and:
/// - on `Ok(())` returns normally, so `main` returns and the hook succeeds (a preview 1 `_start`
///   that returns, or `ok` from a preview 2 `wasi:cli/run`);
/// - on `Err(e)` (or if the context cannot be read) prints `error: <message>` to stderr and calls
///   `std::process::exit(e.exit_code())` (1 unless set; `proc_exit(n)` for the host), which
///   fails the hook with that message in its output.
///
/// A panic in `hook` is not caught: WASI builds abort, which the host reports as a trap, with
/// the panic message on stderr.
pub fn main<F>(hook: F)
where
    F: FnOnce(&Context) -> Result<(), HookError>,
{
    let code = run(Context::from_env(), hook, &mut io::stderr());
    let _ = io::stdout().flush();
    if code != 0 {
        std::process::exit(code);
    }
}

/// The testable core of [`main`]: runs `hook` on `context` (or reports the context error),
/// writes `error: <message>\n` to `stderr` on failure and returns the exit code, 0 on success.
pub fn run<F>(context: Result<Context, HookError>, hook: F, stderr: &mut dyn Write) -> i32
where
    F: FnOnce(&Context) -> Result<(), HookError>,
{
    let result = context.and_then(|ctx| hook(&ctx));
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "error: {}", e.message());
            let _ = stderr.flush();
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Result<Context, HookError> {
        Context::from_parts(
            vec!["h.wasm".into(), "a".into()],
            vec![
                ("WASMHOOK_POD".into(), "p".into()),
                ("WASMHOOK_CONTAINER".into(), "c".into()),
                ("WASMHOOK_HOOK".into(), "postStart".into()),
            ],
        )
    }

    #[test]
    fn success_is_zero_and_silent() {
        let mut err = Vec::new();
        let mut seen = None;
        let code = run(
            ctx(),
            |c| {
                seen = Some(c.param(0).unwrap().to_string());
                Ok(())
            },
            &mut err,
        );
        assert_eq!(code, 0);
        assert!(err.is_empty());
        assert_eq!(seen.as_deref(), Some("a"));
    }

    #[test]
    fn failure_prints_the_message_and_returns_its_code() {
        let mut err = Vec::new();
        let code = run(
            ctx(),
            |_| Err(HookError::new("app did not drain").with_exit_code(4)),
            &mut err,
        );
        assert_eq!(code, 4);
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "error: app did not drain\n"
        );
    }

    #[test]
    fn context_errors_fail_without_calling_the_hook() {
        let mut err = Vec::new();
        let code = run(
            Err(HookError::new("WASMHOOK_POD is not set")),
            |_| panic!("hook must not run"),
            &mut err,
        );
        assert_eq!(code, 1);
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "error: WASMHOOK_POD is not set\n"
        );
    }
}
