//! Image pull progress on a terminal (`wasmhook run --backend runc` with stderr a tty and
//! text output): one line on stderr per pull, redrawn in place, e.g.
//! `Pulling "busybox": 1/2 blobs, 1.2 MiB of 2.1 MiB`, ended by a newline when done. Drawn
//! at most every 100 ms per sink (and for every blob completed).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::runc::pull::{ProgressSink, PullProgress};
use crate::lock;

/// A sink drawing on stderr.
pub fn terminal() -> ProgressSink {
    let last: Mutex<Option<(Instant, usize)>> = Mutex::new(None);
    ProgressSink(Arc::new(move |p: &PullProgress| {
        {
            let mut last = lock(&last);
            let now = Instant::now();
            let due = match *last {
                Some((at, blobs)) => {
                    p.done || blobs != p.blobs_done || now - at >= Duration::from_millis(100)
                }
                None => true,
            };
            if !due {
                return;
            }
            *last = Some((now, p.blobs_done));
        }
        let line = format!(
            "\r\x1b[2KPulling {:?}: {}/{} blobs, {} of {}{}",
            p.image,
            p.blobs_done,
            p.blobs,
            mib(p.bytes),
            mib(p.total),
            if p.done { ", unpacked\n" } else { "" }
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
