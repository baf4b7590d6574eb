//! The hook failure type.

use std::fmt;

/// The largest exit code a hook can report. wasmtime's WASI `proc_exit` only accepts `0..126`
/// (larger values become a trap with a different message), so [`HookError`] keeps its code in
/// `1..=125`.
pub const MAX_EXIT_CODE: i32 = 125;

/// Why a hook failed.
///
/// The message is what the engine shows as the failure reason: [`crate::main`] prints it to
/// stderr as `error: <message>` (stderr is part of the hook's captured output) and exits with
/// [`HookError::exit_code`], 1 unless set. Only preview 1 modules keep the exact code: a
/// preview 2 component built with the WASI adapter can only report ok/err, so any failure is
/// exit 1 there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookError {
    message: String,
    exit_code: i32,
}

impl HookError {
    /// A failure with this message and exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            exit_code: 1,
        }
    }

    /// The same failure with another exit code. Codes outside `1..=125` (0 would mean success,
    /// 126 and up are refused by the WASI host) are replaced by 1.
    pub fn with_exit_code(mut self, code: i32) -> Self {
        self.exit_code = if (1..=MAX_EXIT_CODE).contains(&code) {
            code
        } else {
            1
        };
        self
    }

    /// Prefixes the message: `"<context>: <message>"`. The exit code is kept.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The failure message (without the `error: ` prefix that [`crate::main`] prints).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The exit code the hook ends with, always in `1..=125`.
    pub fn exit_code(&self) -> i32 {
        self.exit_code
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HookError {}

impl From<std::io::Error> for HookError {
    fn from(e: std::io::Error) -> Self {
        HookError::new(e.to_string())
    }
}

impl From<String> for HookError {
    fn from(message: String) -> Self {
        HookError::new(message)
    }
}

impl From<&str> for HookError {
    fn from(message: &str) -> Self {
        HookError::new(message)
    }
}

/// Adds context to any error that converts into a [`HookError`] (I/O errors, strings, other
/// hook errors), as in `fs::write(p, s).context("writing the message")?`.
pub trait ResultExt<T> {
    /// On `Err`, converts the error and prefixes its message with `"<context>: "`.
    fn context(self, context: impl fmt::Display) -> Result<T, HookError>;

    /// Like [`ResultExt::context`], computing the context only on error.
    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T, HookError>;
}

impl<T, E: Into<HookError>> ResultExt<T> for Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T, HookError> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T, HookError> {
        self.map_err(|e| e.into().context(f()))
    }
}

/// Returns early with a [`HookError`] built from a format string: `bail!("no {} volume", name)`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return ::core::result::Result::Err($crate::HookError::new(::std::format!($($arg)*)))
    };
}

/// Returns early with a [`HookError`] unless the condition holds:
/// `ensure!(n > 0, "count must be positive, got {n}")`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::bail!($($arg)*);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn default_exit_code_is_one() {
        let e = HookError::new("boom");
        assert_eq!(e.exit_code(), 1);
        assert_eq!(e.message(), "boom");
        assert_eq!(e.to_string(), "boom");
    }

    #[test]
    fn exit_code_is_clamped_to_the_wasi_range() {
        assert_eq!(HookError::new("x").with_exit_code(3).exit_code(), 3);
        assert_eq!(HookError::new("x").with_exit_code(125).exit_code(), 125);
        assert_eq!(HookError::new("x").with_exit_code(0).exit_code(), 1);
        assert_eq!(HookError::new("x").with_exit_code(126).exit_code(), 1);
        assert_eq!(HookError::new("x").with_exit_code(-2).exit_code(), 1);
    }

    #[test]
    fn context_prefixes_and_keeps_the_code() {
        let e = HookError::new("denied")
            .with_exit_code(7)
            .context("writing /v/f");
        assert_eq!(e.message(), "writing /v/f: denied");
        assert_eq!(e.exit_code(), 7);
    }

    #[test]
    fn result_ext_converts_io_errors() {
        let r: Result<(), io::Error> = Err(io::Error::new(io::ErrorKind::NotFound, "gone"));
        let e = r.context("reading /v/x").unwrap_err();
        assert_eq!(e.message(), "reading /v/x: gone");
        let r: Result<u8, &str> = Err("bad");
        assert_eq!(
            r.with_context(|| format!("step {}", 2))
                .unwrap_err()
                .message(),
            "step 2: bad"
        );
        let ok: Result<u8, HookError> = Ok(4);
        assert_eq!(ok.context("unused").unwrap(), 4);
    }

    fn bails(flag: bool) -> Result<u8, HookError> {
        crate::ensure!(!flag, "flag was {}", flag);
        if flag {
            unreachable!();
        }
        crate::bail!("plain {}", 1)
    }

    #[test]
    fn bail_and_ensure_return_errors() {
        assert_eq!(bails(true).unwrap_err().message(), "flag was true");
        assert_eq!(bails(false).unwrap_err().message(), "plain 1");
    }
}
