//! How the CLI ends: every subcommand returns `Result<ExitCode, CliError>`, and
//! [`super::main`] turns an error into one `wasmhook: ` message on stderr and its exit code
//! ([`CliError::exit_code`], the only place that maps errors to codes).
//!
//! A closed stdout is a normal end, as in ripgrep: `wasmhook validate pods.yaml | head -1`
//! stops writing when `head` is done and exits 0, silently. Rust ignores `SIGPIPE`, so such
//! a write fails with [`std::io::ErrorKind::BrokenPipe`]; subcommands write stdout through
//! [`Stdout`] and return that error as [`CliError::Output`].
//!
//! Messages go to stderr through [`message`] and [`warn`], with the one `wasmhook: ` prefix;
//! a failing stderr is ignored (there is nowhere left to report it).

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use super::hook::exit;

/// Why a subcommand could not do its job. The message is printed once, by `cli::main`.
#[derive(Debug)]
pub enum CliError {
    /// Bad usage or an invalid value of a flag. Exit 2.
    Usage(String),
    /// Invalid manifests: one message per error. Exit 2.
    InvalidManifest(Vec<String>),
    /// The hook module does not exist. Exit 127.
    ModuleNotFound(String),
    /// The hook module cannot be loaded or compiled. Exit 126.
    InvalidModule(String),
    /// Anything else that stopped the command (the wasm engine, the async runtime, the
    /// backend, writing a file). Exit 1.
    Failed(String),
    /// Writing stdout failed. A broken pipe exits 0 without a message; anything else is
    /// reported and exits 1.
    Output(io::Error),
}

impl CliError {
    /// The process exit code. Exhaustive, without a wildcard arm: a new error must choose.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::InvalidManifest(_) => 2,
            CliError::ModuleNotFound(_) => exit::NOT_FOUND,
            CliError::InvalidModule(_) => exit::INVALID_MODULE,
            CliError::Failed(_) => 1,
            CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
            CliError::Output(_) => 1,
        }
    }

    /// Print the messages (none for a closed stdout) and return the exit code.
    pub fn report(&self) -> ExitCode {
        match self {
            CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            CliError::InvalidManifest(errors) => errors.iter().for_each(message),
            other => message(other),
        }
        ExitCode::from(self.exit_code())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m)
            | CliError::ModuleNotFound(m)
            | CliError::InvalidModule(m)
            | CliError::Failed(m) => f.write_str(m),
            CliError::InvalidManifest(errors) => f.write_str(&errors.join("\n")),
            CliError::Output(e) => write!(f, "writing the output: {e}"),
        }
    }
}

impl std::error::Error for CliError {}

impl From<io::Error> for CliError {
    /// I/O errors that reach `?` in a subcommand come from writing stdout.
    fn from(e: io::Error) -> Self {
        CliError::Output(e)
    }
}

/// What a subcommand returns: its exit code, or the error `cli::main` reports.
pub type CliResult = Result<ExitCode, CliError>;

/// `wasmhook: <msg>` on stderr (errors and notes).
pub fn message(msg: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "wasmhook: {msg}");
}

/// `wasmhook: warning: <msg>` on stderr.
pub fn warn(msg: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "wasmhook: warning: {msg}");
}

/// Locked stdout whose write errors are returned (never a panic, unlike `println!`), so a
/// closed pipe ends the command through [`CliError::Output`].
pub struct Stdout(io::StdoutLock<'static>);

impl Stdout {
    pub fn lock() -> Self {
        Stdout(io::stdout().lock())
    }

    /// Write `line` and a newline.
    pub fn line(&mut self, line: impl fmt::Display) -> Result<(), CliError> {
        writeln!(self.0, "{line}")?;
        Ok(())
    }

    /// Write `bytes` as they are.
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        self.0.write_all(bytes)?;
        Ok(())
    }

    /// Flush, so a write error surfaces here rather than being lost when dropped.
    pub fn flush(mut self) -> Result<(), CliError> {
        self.0.flush()?;
        Ok(())
    }
}
