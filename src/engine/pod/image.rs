//! Ensuring a container's image before it is created (`lifecycle-semantics.md` §4 step 1),
//! as the kubelet's image manager (`EnsureImageExists`) does it, with its events and waiting
//! reasons:
//!
//! | case | events | waiting reason |
//! |---|---|---|
//! | backend without images (process) | none | |
//! | in `--images DIR`, or pulled and policy `IfNotPresent`/`Never` | `Pulled` `Container image "X" already present on machine` | |
//! | absent and `Never` | `ErrImageNeverPull` `Container image "X" is not present with pull policy of Never`, `Failed` `Error: ErrImageNeverPull` | `ErrImageNeverPull` |
//! | pull (`Always`, or absent) | `Pulling` `Pulling image "X"`, then `Pulled` `Successfully pulled image "X" in 1.2s (1.2s including waiting). Image size: N bytes.` | |
//! | the pull failed | `Failed` `Failed to pull image "X": <err>`, `Failed` `Error: ErrImagePull` | `ErrImagePull` |
//! | in the pull back-off | `BackOff` `Back-off pulling image "X"`, `Failed` `Error: ImagePullBackOff` | `ImagePullBackOff` |
//! | unparsable reference | `InspectFailed` `Failed to apply default image tag "X": <err>`, `Failed` `Error: InvalidImageName` | `InvalidImageName` |
//!
//! The pull back-off is [`PullBackoff`](crate::engine::backoff::PullBackoff) with the
//! engine's back-off constants (the kubelet's 10 s … 300 s, scaled by `--backoff-scale`);
//! a failed pull is followed at once by the back-off report, as the kubelet's next pod sync
//! does. Failures without a back-off (`Never`, an inspect error) are retried every
//! `initial` (the kubelet retries on every pod sync). The wait ends early when the pod
//! terminates.
//!
//! As in the kubelet's `SyncPod`, an app container whose image is not there yet does not
//! hold back the app containers after it: the first start makes one attempt
//! ([`Pod::image_attempt`]) and goes on, and the container's supervisor keeps trying
//! ([`Pod::ensure_image`]). Init containers and sidecars (init containers to the kubelet)
//! are started in order, each waiting for its image.

use std::time::{Duration, Instant};

use super::{waiting, Pod};
use crate::backend::{ErrorKind, ImagePresence, PullPolicy};
use crate::events::{go_duration, go_quote, reason, EventType};

/// What one attempt to ensure an image ended with.
pub(super) enum ImageAttempt {
    /// The image is there: the container can be created.
    Ready,
    /// Not yet (its events and waiting reason are recorded): try again after this long.
    RetryIn(Duration),
    /// The pod began terminating first.
    Terminating,
}

impl Pod {
    /// Make sure container `idx`'s image is there (pulling it as its policy says), retrying
    /// until it is. `false` when the pod began terminating first.
    pub(super) async fn ensure_image(&self, idx: usize) -> bool {
        loop {
            match self.image_attempt(idx).await {
                ImageAttempt::Ready => return true,
                ImageAttempt::Terminating => return false,
                ImageAttempt::RetryIn(delay) => {
                    if !self.retry_in(delay).await {
                        return false;
                    }
                }
            }
        }
    }

    /// One attempt, as one pod sync of the kubelet makes it: look the image up, then report
    /// it present, refuse it (`Never`), report the pull back-off, or pull it. After a failed
    /// pull the next attempt is due at once: it reports the back-off just started.
    pub(super) async fn image_attempt(&self, idx: usize) -> ImageAttempt {
        let c = &self.plan.containers[idx];
        let Some(image) = c.image.as_deref().filter(|i| !i.is_empty()) else {
            return ImageAttempt::Ready; // validation requires one; a backend without images ignores it
        };
        if self.terminating.is_cancelled() {
            return ImageAttempt::Terminating;
        }
        let quoted = go_quote(image.as_bytes());
        let backend = &self.engine.backend;
        // Failures without a back-off of their own are retried at the back-off's start.
        let retry = ImageAttempt::RetryIn(self.engine.config.backoff.initial);
        let presence = match backend.image_presence(image).await {
            Ok(p) => p,
            Err(e) => {
                let (what, state) = if e.kind() == ErrorKind::InvalidArgument {
                    ("Failed to apply default image tag", "InvalidImageName")
                } else {
                    ("Failed to inspect image", "ImageInspectError")
                };
                let msg = format!("{what} {quoted}: {e}");
                self.image_failure(idx, EventType::Warning, reason::INSPECT_FAILED, msg, state);
                return retry;
            }
        };
        let pull = match (presence, c.pull_policy) {
            (ImagePresence::NoImages, _) => return ImageAttempt::Ready,
            (ImagePresence::Provided, _)
            | (ImagePresence::Present, PullPolicy::IfNotPresent | PullPolicy::Never) => {
                self.event(
                    EventType::Normal,
                    reason::PULLED,
                    Some(idx),
                    format!("Container image {quoted} already present on machine"),
                );
                return ImageAttempt::Ready;
            }
            (ImagePresence::Absent, PullPolicy::Never) => false,
            (ImagePresence::Absent, _) | (ImagePresence::Present, PullPolicy::Always) => true,
        };
        if !pull {
            let msg = format!("Container image {quoted} is not present with pull policy of Never");
            self.image_failure(
                idx,
                EventType::Warning,
                reason::ERR_IMAGE_NEVER_PULL,
                msg,
                "ErrImageNeverPull",
            );
            return retry;
        }
        let remaining = self.state().containers[idx]
            .pull_backoff
            .remaining(Instant::now());
        if let Some(wait) = remaining {
            let msg = format!("Back-off pulling image {quoted}");
            self.image_failure(
                idx,
                EventType::Normal,
                reason::BACK_OFF,
                msg,
                "ImagePullBackOff",
            );
            return ImageAttempt::RetryIn(wait);
        }
        self.event(
            EventType::Normal,
            reason::PULLING,
            Some(idx),
            format!("Pulling image {quoted}"),
        );
        let started = Instant::now();
        let result = tokio::select! {
            r = backend.pull_image(image) => r,
            _ = self.terminating.cancelled() => return ImageAttempt::Terminating,
        };
        match result {
            Ok(pulled) => {
                self.state().containers[idx].pull_backoff.succeeded();
                let ms = |d: Duration| go_duration(Duration::from_millis(d.as_millis() as u64));
                self.event(
                    EventType::Normal,
                    reason::PULLED,
                    Some(idx),
                    format!(
                        "Successfully pulled image {quoted} in {} ({} including waiting). \
                         Image size: {} bytes.",
                        ms(pulled.duration),
                        ms(started.elapsed()),
                        pulled.size
                    ),
                );
                ImageAttempt::Ready
            }
            Err(e) => {
                self.event(
                    EventType::Warning,
                    reason::FAILED,
                    Some(idx),
                    format!("Failed to pull image {quoted}: {e}"),
                );
                self.state().containers[idx]
                    .pull_backoff
                    .failed(&self.engine.config.backoff, Instant::now());
                self.event(
                    EventType::Warning,
                    reason::FAILED,
                    Some(idx),
                    "Error: ErrImagePull".into(),
                );
                self.set_state(idx, waiting("ErrImagePull", e.to_string()));
                ImageAttempt::RetryIn(Duration::ZERO)
            }
        }
    }

    /// One failure to ensure the image: its event, then `Failed` `Error: <state>` (as
    /// `startContainer` reports it), and the waiting reason `state` with the message.
    fn image_failure(
        &self,
        idx: usize,
        kind: EventType,
        reason: &'static str,
        msg: String,
        state: &str,
    ) {
        self.event(kind, reason, Some(idx), msg.clone());
        self.event(
            EventType::Warning,
            reason::FAILED,
            Some(idx),
            format!("Error: {state}"),
        );
        self.set_state(idx, waiting(state, msg));
    }

    /// Wait `delay`; `false` when the pod began terminating first.
    pub(super) async fn retry_in(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.terminating.cancelled() => false,
        }
    }
}
