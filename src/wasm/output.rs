//! The bounded buffer that captures a hook's stdout and stderr.
//!
//! Invariants:
//! - Writes never fail and never block: past the cap the bytes are counted and dropped, so a
//!   chatty hook cannot trap or stall because its output is full.
//! - stdout and stderr land in one buffer in the order written (what users read); each is
//!   also kept on its own (bounded by the same cap): stderr for the kubelet's
//!   `command '...' exited with N: <stderr>` error text, both for the CRI's `ExecSync` reply,
//!   which carries them apart.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// What a hook printed, after it finished.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    /// stdout and stderr interleaved in write order, at most the cap.
    pub combined: Vec<u8>,
    /// stdout alone, at most the cap.
    pub stdout: Vec<u8>,
    /// stderr alone, at most the cap.
    pub stderr: Vec<u8>,
    /// Bytes written past the cap and dropped (counted on `combined`).
    pub dropped: u64,
}

#[derive(Debug)]
struct State {
    cap: usize,
    combined: Vec<u8>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    dropped: u64,
}

impl State {
    fn push(&mut self, bytes: &[u8], is_stderr: bool) {
        let room = self.cap.saturating_sub(self.combined.len());
        let kept = room.min(bytes.len());
        self.combined.extend_from_slice(&bytes[..kept]);
        self.dropped += (bytes.len() - kept) as u64;
        let alone = if is_stderr {
            &mut self.stderr
        } else {
            &mut self.stdout
        };
        let room = self.cap.saturating_sub(alone.len());
        alone.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }
}

/// A shared, capped output buffer. Clone it into the hook's stdout and stderr with
/// [`OutputBuffer::stdout`] and [`OutputBuffer::stderr`].
#[derive(Clone, Debug)]
pub struct OutputBuffer {
    state: Arc<Mutex<State>>,
}

impl OutputBuffer {
    pub fn new(cap: usize) -> Self {
        OutputBuffer {
            state: Arc::new(Mutex::new(State {
                cap,
                combined: Vec::new(),
                stdout: Vec::new(),
                stderr: Vec::new(),
                dropped: 0,
            })),
        }
    }

    pub fn stdout(&self) -> OutputStreamHandle {
        OutputStreamHandle {
            buffer: self.clone(),
            is_stderr: false,
        }
    }

    pub fn stderr(&self) -> OutputStreamHandle {
        OutputStreamHandle {
            buffer: self.clone(),
            is_stderr: true,
        }
    }

    /// Take what was captured so far, leaving the buffer empty.
    pub fn take(&self) -> CapturedOutput {
        let mut s = self.lock();
        CapturedOutput {
            combined: std::mem::take(&mut s.combined),
            stdout: std::mem::take(&mut s.stdout),
            stderr: std::mem::take(&mut s.stderr),
            dropped: std::mem::replace(&mut s.dropped, 0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave `State` inconsistent (plain appends).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One end (stdout or stderr) of an [`OutputBuffer`], given to WASI.
#[derive(Clone, Debug)]
pub struct OutputStreamHandle {
    buffer: OutputBuffer,
    is_stderr: bool,
}

impl OutputStreamHandle {
    fn push(&self, bytes: &[u8]) {
        self.buffer.lock().push(bytes, self.is_stderr);
    }
}

/// The permit we hand out for each write: large enough for the WASI adapters' buffers,
/// irrelevant for the cap (writes past it are dropped, not refused).
const WRITE_PERMIT: usize = 1 << 20;

impl IsTerminal for OutputStreamHandle {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputStreamHandle {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for OutputStreamHandle {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputStreamHandle {
    async fn ready(&mut self) {}
}

impl AsyncWrite for OutputStreamHandle {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_and_caps() {
        let buf = OutputBuffer::new(8);
        buf.stdout().push(b"abc");
        buf.stderr().push(b"DEF");
        buf.stdout().push(b"ghijk");
        let out = buf.take();
        assert_eq!(out.combined, b"abcDEFgh");
        assert_eq!(out.stdout, b"abcghijk");
        assert_eq!(out.stderr, b"DEF");
        assert_eq!(out.dropped, 3);
    }
}
