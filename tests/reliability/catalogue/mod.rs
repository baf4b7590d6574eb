//! The sandbox catalogue, through the engine: each hostile hook in a pod beside a
//! well-behaved one ([`run_case`]); the limits it must hit are in [`limits`], the ways out of
//! the sandbox it must not find in [`escapes`].

mod escapes;
mod limits;

use super::*;

/// What a hostile pod's hook is and where it sits.
struct Case<'a> {
    name: &'a str,
    /// `postStart` or `preStop`.
    hook: &'a str,
    /// The YAML `command` list of the exec hook.
    command: Vec<String>,
    annotations: Vec<(&'a str, &'a str)>,
    /// Extra YAML under the container (indented 4), e.g. env or volumeMounts.
    container_extra: String,
    /// Extra YAML under `spec` (indented 2), e.g. volumes.
    spec_extra: String,
}

impl<'a> Case<'a> {
    fn new(name: &'a str, hook: &'a str, module: &Path, args: &[&str]) -> Self {
        let mut command = vec![p(module).to_string()];
        command.extend(args.iter().map(|s| s.to_string()));
        Case {
            name,
            hook,
            command,
            annotations: vec![("wasmhook.dev/hook-timeout", "1s")],
            container_extra: String::new(),
            spec_extra: String::new(),
        }
    }

    fn annotate(mut self, k: &'a str, v: &'a str) -> Self {
        self.annotations.retain(|(key, _)| *key != k);
        self.annotations.push((k, v));
        self
    }

    /// The host directory `dir` as the container's volume `data` at `/data`.
    fn with_volume(mut self, dir: &Path, read_only: bool) -> Self {
        self.container_extra = format!(
            "    volumeMounts:\n    - name: data\n      mountPath: /data\n      readOnly: {read_only}\n"
        );
        self.spec_extra = format!(
            "  volumes:\n  - name: data\n    hostPath:\n      path: {}\n",
            p(dir)
        );
        self
    }

    fn yaml(&self, pod: &str) -> String {
        let ann: String = self
            .annotations
            .iter()
            .map(|(k, v)| format!("    {k}: {}\n", serde_json::to_string(v).unwrap()))
            .collect();
        let cmd = serde_json::to_string(&self.command).unwrap();
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  annotations:\n{ann}spec:\n  \
             terminationGracePeriodSeconds: 10\n  restartPolicy: Never\n{spec}  containers:\n  \
             - name: app\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n{extra}    \
             lifecycle:\n      {hook}:\n        exec:\n          command: {cmd}\n",
            spec = self.spec_extra,
            extra = self.container_extra,
            hook = self.hook,
        )
    }
}

/// What the engine made of one hostile pod, with the neighbour checked.
struct CaseResult {
    hostile: PodRecords,
    status: PodStatus,
    /// The hostile hook's own duration (its time to stop).
    hook_ms: u128,
}

impl CaseResult {
    fn error(&self, hook: &str) -> String {
        self.hostile
            .hook(hook)
            .and_then(|h| h.error.clone())
            .unwrap_or_else(|| "(no error: hook succeeded)".into())
    }
}

/// Run the hostile pod and, 200 ms later (while its hook is running), a good pod on the same
/// engine. A preStop case is stopped as soon as it has started. Asserts the good pod saw
/// nothing unusual, and that the hostile hook reported a result.
async fn run_case(case: &Case<'_>) -> CaseResult {
    let tmp = TempDir::new(case.name);
    let manifest = tmp.path().join("pods.yaml");
    std::fs::write(
        &manifest,
        format!("{}---\n{}", case.yaml("hostile"), good_pod("good")),
    )
    .unwrap();
    let rt = runtime(None);
    let pods = load_pods(&rt, &manifest);
    let engine = engine(rt);
    let (recorder, mut rx) = Recorder::channel();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                seen.lock().unwrap().push(r);
            }
        })
    };
    let has_hook = |pod: &str, kind: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r, Record::Hook(h) if h.pod == pod && h.hook == kind))
    };
    let started = Instant::now();
    let bad = engine.start_pod(&pods[0], recorder.clone());
    if case.hook == "preStop" {
        tokio::time::sleep(Duration::from_millis(300)).await;
        bad.stop(None);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let good = engine.start_pod(&pods[1], recorder.clone());
    drop(recorder);
    // A hook that succeeds leaves its pod running: stop it once the result is in.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !has_hook("hostile", case.hook) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bad.stop(None);
    let status = tokio::time::timeout(Duration::from_secs(60), bad.wait())
        .await
        .unwrap_or_else(|_| panic!("{}: the hostile pod did not end within 60 s", case.name));
    let bad_wall = started.elapsed();
    // Let the neighbour get through its postStart before stopping it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    good.stop(None);
    let good_status = tokio::time::timeout(Duration::from_secs(60), good.wait())
        .await
        .expect("the good pod stops");
    drop(engine);
    tokio::time::timeout(Duration::from_secs(10), collector)
        .await
        .expect("recorder closes")
        .unwrap();
    let records = std::mem::take(&mut *seen.lock().unwrap());
    let mut by_pod = split_records(records);
    let good_recs = by_pod.remove("good").unwrap_or_default();
    let hostile = by_pod.remove("hostile").unwrap_or_default();

    // The neighbour: both hooks succeeded, output intact, only normal events.
    for kind in ["postStart", "preStop"] {
        let h = good_recs
            .hook(kind)
            .unwrap_or_else(|| panic!("{}: good pod has no {kind} result", case.name));
        assert_eq!(h.error, None, "{}: good pod {kind} failed", case.name);
        assert_eq!(h.output, b"out 1\nerr\nout 2\n", "{}", case.name);
        assert!(
            h.duration < Duration::from_secs(5),
            "{}: good pod {kind} took {:?} next to the hostile hook",
            case.name,
            h.duration
        );
    }
    assert!(
        good_recs
            .events
            .iter()
            .all(|(t, _, _)| *t == EventType::Normal),
        "{}: good pod had warnings: {:?}",
        case.name,
        good_recs.events
    );
    assert_eq!(
        good_recs.reasons(),
        ["Created", "Started", "Killing"],
        "{}",
        case.name
    );
    assert!(
        good_status.stopped_cleanly(),
        "{}: {good_status:?}",
        case.name
    );

    let hook_ms = hostile
        .hook(case.hook)
        .unwrap_or_else(|| panic!("{}: no {} HookResult: {hostile:?}", case.name, case.hook))
        .duration
        .as_millis();
    assert!(
        bad_wall < Duration::from_secs(30),
        "{}: hostile pod took {bad_wall:?}",
        case.name
    );
    CaseResult {
        hostile,
        status,
        hook_ms,
    }
}

/// The case failed its hook the engine's way: the Warning event and the error naming `cause`.
fn assert_failed(case: &Case<'_>, r: &CaseResult, cause: &str) -> String {
    let want = match case.hook {
        "postStart" => reason::FAILED_POST_START_HOOK,
        _ => reason::FAILED_PRE_STOP_HOOK,
    };
    assert!(
        r.hostile
            .events
            .iter()
            .any(|(t, why, _)| *t == EventType::Warning && why == want),
        "{}: no {want} event: {:?}",
        case.name,
        r.hostile.events
    );
    let err = r.error(case.hook);
    assert!(
        err.contains(cause),
        "{}: error does not name {cause:?}: {err}",
        case.name
    );
    // The short cause: what follows `error: ` up to `, message:`.
    let short = err
        .split_once("error: ")
        .map(|(_, rest)| rest.split(", message:").next().unwrap_or(rest))
        .unwrap_or(&err);
    short.to_string()
}

/// Bound on the time to stop a 1 s-timeout hook, generous for a loaded 2-core machine.
const STOP_BOUND_MS: u128 = 5_000;

async fn limit_case(case: Case<'_>, expected: &str, cause: &str) {
    let r = run_case(&case).await;
    let observed = assert_failed(&case, &r, cause);
    assert!(
        r.hook_ms < STOP_BOUND_MS,
        "{}: took {} ms to stop",
        case.name,
        r.hook_ms
    );
    // With restartPolicy Never the failed postStart leaves the pod Failed, never hanging.
    let _ = &r.status;
    emit(case.name, expected, &observed, r.hook_ms);
}
