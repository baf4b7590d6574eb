//! `drain-http`: a preStop hook that asks the application to drain over HTTP.
//!
//! ```text
//! command: ["drain-http.component.wasm", "<url>", "[timeout=30s]"]
//! ```
//!
//! POSTs (empty body) to `<url>`, then, while the answer is not `200`, POSTs again every 200 ms
//! until `<timeout>` (`500ms`, `8s`, `1m30s`, or plain seconds) has passed, then fails with
//! `<url> did not answer 200 within <timeout>`. Each POST is bounded by the time left. A
//! connection error other than a timeout (`connection-refused`, `destination-ip-prohibited`,
//! ...) fails at once. Redirects are not followed (a `3xx` counts as "not 200").
//!
//! Runs only as a component (`drain-http.component.wasm`) on a host with `wasi:http`, in a pod
//! whose `wasmhook.dev/hook-network` policy allows `<url>` (e.g. `pod` for the pod's own address).

use std::time::Duration;

use hooks_sdk::wait::Deadline;
use hooks_sdk::{bail, http, info, parse_duration, Context, HookError};

fn main() {
    hooks_sdk::main(drain);
}

fn drain(ctx: &Context) -> Result<(), HookError> {
    let url = ctx.require_param(0, "drain URL")?;
    let timeout = parse_duration(ctx.param(1).unwrap_or("30s"))?;
    let deadline = Deadline::after(timeout);
    let (mut attempts, mut last) = (0, String::new());
    loop {
        attempts += 1;
        let answer = match http::Request::post(url)
            .timeout(deadline.remaining())
            .send()
        {
            Ok(r) if r.status() == 200 => break,
            Ok(r) => r.status().to_string(),
            Err(e) if e.is_timeout() => format!("no answer ({})", e.code().unwrap_or("timeout")),
            Err(e) => return Err(e.into()),
        };
        if answer != last {
            info!("POST {url}: {answer} (attempt {attempts}), retrying every 200ms");
            last = answer;
        }
        if !deadline.sleep(Duration::from_millis(200)) {
            bail!(
                "{url} did not answer 200 within {timeout:?} ({attempts} attempt(s), last: {last})"
            );
        }
    }
    let ms = deadline.elapsed().as_millis();
    info!("POST {url}: 200 after {attempts} attempt(s) in {ms}ms");
    Ok(())
}
