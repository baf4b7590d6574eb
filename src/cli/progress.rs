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
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(render(p).as_bytes());
        let _ = err.flush();
    }))
}

/// One redraw: back to the line's start, clear it, the state; a newline when done.
fn render(p: &PullProgress) -> String {
    format!(
        "\r\x1b[2KPulling {:?}: {}/{} blobs, {} of {}{}",
        p.image,
        p.blobs_done,
        p.blobs,
        mib(p.bytes),
        mib(p.total),
        if p.done { ", unpacked\n" } else { "" }
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_redrawn_in_place_then_ended() {
        let mut p = PullProgress {
            image: "busybox".into(),
            blobs_done: 1,
            blobs: 3,
            bytes: 3 * 1024 * 1024 / 2,
            total: 4 * 1024 * 1024,
            done: false,
        };
        assert_eq!(
            render(&p),
            "\r\x1b[2KPulling \"busybox\": 1/3 blobs, 1.5 MiB of 4.0 MiB"
        );
        p.done = true;
        assert!(render(&p).ends_with(", unpacked\n"));
    }
}
