//! Reading container output, the same way in every backend: log lines for containers
//! ([`pump_lines`]), bounded buffers for native execs ([`capture`], [`collect`]).
//!
//! Rules (one each):
//! - A log line is at most [`MAX_LOG_LINE`] bytes; longer ones are split, like the CRI's
//!   16 KiB partial lines, so one endless line cannot grow memory without bound.
//! - Output is drained to EOF even when nobody listens, so a container never blocks on a
//!   full pipe.
//! - After a process exits, its readers get [`OUTPUT_DRAIN_GRACE`] to reach EOF; only a
//!   process that escaped the container (or a background child of an exec) can hold a pipe
//!   longer. Log pumps are then left to finish on their own (so that process does not get
//!   `SIGPIPE`); exec captures are abandoned with what they have not returned yet.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::{LogLine, LogStream};

/// Longer lines are split into several [`LogLine`]s.
pub(super) const MAX_LOG_LINE: usize = 16 * 1024;

/// Captured stdout, and separately stderr, of a native exec is cut at this size.
pub const EXEC_OUTPUT_LIMIT: usize = 16 << 20;

/// After a process exits, how long its output readers may still take to reach EOF.
pub(super) const OUTPUT_DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Read `reader` to EOF and send every line (without its `\n`; invalid UTF-8 replaced) to
/// `tx`. A final line without a newline is sent too. Output keeps being drained after the
/// receiver is gone, so the container never blocks on a full pipe.
pub(super) async fn pump_lines<R: AsyncRead + Unpin>(
    reader: R,
    tx: UnboundedSender<LogLine>,
    pod: String,
    container: String,
    stream: LogStream,
) {
    let mut r = BufReader::with_capacity(64 * 1024, reader);
    let mut line: Vec<u8> = Vec::new();
    let emit = |line: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(line).into_owned();
        line.clear();
        let _ = tx.send(LogLine {
            pod: pod.clone(),
            container: container.clone(),
            stream,
            line: text,
        });
    };
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!("reading {stream:?} of {container}: {e}");
                break;
            }
        };
        if buf.is_empty() {
            break;
        }
        let room = MAX_LOG_LINE - line.len();
        let chunk = &buf[..buf.len().min(room)];
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&chunk[..i]);
                r.consume(i + 1);
                emit(&mut line);
            }
            None => {
                let n = chunk.len();
                line.extend_from_slice(chunk);
                r.consume(n);
                if line.len() >= MAX_LOG_LINE {
                    emit(&mut line);
                }
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line);
    }
}

/// Read `reader` to EOF, keeping the first `cap` bytes and discarding the rest.
pub(super) async fn capture<R: AsyncRead + Unpin>(mut reader: R, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                let keep = n.min(cap - out.len());
                out.extend_from_slice(&buf[..keep]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    out
}

/// [`capture`] of an exec's stdout or stderr on a task of its own, up to
/// [`EXEC_OUTPUT_LIMIT`]; `None` (no pipe) captures nothing.
pub(super) fn spawn_capture<R: AsyncRead + Unpin + Send + 'static>(
    reader: Option<R>,
) -> Option<JoinHandle<Vec<u8>>> {
    reader.map(|r| tokio::spawn(capture(r, EXEC_OUTPUT_LIMIT)))
}

/// What a [`spawn_capture`] task read, once the process has exited: it gets
/// [`OUTPUT_DRAIN_GRACE`] to reach EOF, then is aborted and counts as empty (a background
/// process the command left may hold the pipe forever).
pub(super) async fn collect(h: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    let Some(mut h) = h else {
        return Vec::new();
    };
    match tokio::time::timeout(OUTPUT_DRAIN_GRACE, &mut h).await {
        Ok(Ok(v)) => v,
        _ => {
            h.abort();
            Vec::new()
        }
    }
}

/// Wait for log pumps to reach EOF, at most [`OUTPUT_DRAIN_GRACE`] in all; pumps still
/// running keep running (and draining) until their EOF.
pub(super) async fn join_pumps(pumps: &mut [JoinHandle<()>]) {
    let _ = tokio::time::timeout(OUTPUT_DRAIN_GRACE, async {
        for h in pumps.iter_mut() {
            let _ = h.await;
        }
    })
    .await;
}
