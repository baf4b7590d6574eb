//! Output helpers. The engine captures stdout and stderr into one buffer, in write order, and
//! shows it with the hook's result (in full in the failure message), so plain lines are the log.
//!
//! Every function writes one whole line and ignores write errors: logging never fails a hook.
//! stdout is line-buffered and stderr unbuffered, so lines keep their order across the two.

use std::fmt;
use std::io::{self, Write};

/// Writes `<message>\n` to stdout.
pub fn info(message: impl fmt::Display) {
    line(&mut io::stdout().lock(), "", message);
}

/// Writes `warning: <message>\n` to stderr.
pub fn warn(message: impl fmt::Display) {
    line(&mut io::stderr().lock(), "warning: ", message);
}

/// Writes `error: <message>\n` to stderr. This does not fail the hook: return a
/// [`crate::HookError`] for that.
pub fn error(message: impl fmt::Display) {
    line(&mut io::stderr().lock(), "error: ", message);
}

/// Formats the whole line first, so it reaches the (unbuffered) stream in one write.
fn line(w: &mut dyn Write, prefix: &str, message: impl fmt::Display) {
    let text = format!("{prefix}{message}\n");
    let _ = w.write_all(text.as_bytes());
    let _ = w.flush();
}

/// `info!("format", args..)`: a line on stdout (see [`log::info`](crate::log::info)).
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::info(::core::format_args!($($arg)*)) };
}

/// `warn!("format", args..)`: `warning: ...` on stderr (see [`log::warn`](crate::log::warn)).
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::warn(::core::format_args!($($arg)*)) };
}

/// `error!("format", args..)`: `error: ...` on stderr (see [`log::error`](crate::log::error)).
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::error(::core::format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::line;

    #[test]
    fn lines_are_prefixed_and_terminated() {
        let mut out = Vec::new();
        line(&mut out, "warning: ", format_args!("slow: {}ms", 1500));
        line(&mut out, "", "plain");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "warning: slow: 1500ms\nplain\n"
        );
    }

    #[test]
    fn macros_accept_format_arguments() {
        // Expansion check only (the output would bypass the test harness' capture).
        let n = 3;
        if n == 0 {
            crate::info!("drained {n} connections");
            crate::warn!("slow: {}ms", 1500);
            crate::error!("plain");
        }
    }
}
