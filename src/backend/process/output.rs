//! Reading container output: log lines for containers, bounded buffers for exec.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc::UnboundedSender;

use crate::backend::{LogLine, LogStream};

/// Longer lines are split into several [`LogLine`]s, like the CRI's 16 KiB partial lines,
/// so one endless line cannot grow memory without bound.
pub(super) const MAX_LOG_LINE: usize = 16 * 1024;

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
