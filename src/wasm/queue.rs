//! Calls beyond the instance pool wait for a slot, in arrival order, instead of failing.
//!
//! wasmtime's pooling allocator is the one count of slots. A call instantiates straight away;
//! when the pool is full (a `PoolConcurrencyLimitError`: instances, memories, tables or fiber
//! stacks), it drops what it built and queues here. So the common case, a pool with room,
//! only reads shared state of ours (one atomic load before, a fence and a load after), and
//! never writes it: calls on different cores do not contend for a counter of their own. A
//! tokio semaphore in front of the pool took a mutex on every release, ~0.4 µs a call at 64
//! concurrent calls on 2 cores.
//!
//! Invariants:
//! - Queued calls get freed slots in arrival order: only the head of the queue (the holder of
//!   a FIFO tokio mutex) retries; the others wait for the mutex. While anyone is queued, new
//!   calls queue too rather than take a freed slot first.
//! - No lost wake-up: a queued call is counted in `waiting` before its retry, and a call
//!   that released its instance reads `waiting` after a fence. Either the releaser sees the
//!   waiter and wakes the head, or the head's retry finds the freed slot.
//! - A call leaves the queue once it has its slot, not when it ends: the next in line may
//!   then retry at once. A full pool shows in an attempt's first poll (instantiation and
//!   the fiber stack come before the guest can wait), so the call gives up its place when
//!   that poll leaves it running.

use std::sync::atomic::{fence, AtomicUsize, Ordering::SeqCst};

use tokio::sync::futures::Notified;
use tokio::sync::{Mutex, MutexGuard, Notify};

/// The queue of one pooling engine.
#[derive(Debug, Default)]
pub(crate) struct PoolQueue {
    /// Calls queued: the head and those behind it.
    waiting: AtomicUsize,
    /// Held by the head of the queue while it retries.
    head: Mutex<()>,
    /// Woken when a call releases its instance while some call is queued.
    released: Notify,
}

/// Whether an instantiation failed because the pool was full, not because of the module.
pub(crate) fn is_pool_full(e: &wasmtime::Error) -> bool {
    e.is::<wasmtime::PoolConcurrencyLimitError>()
}

impl PoolQueue {
    /// Whether a new call may take a slot straight away: nobody is queued before it.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.load(SeqCst) == 0
    }

    /// Join the queue and wait to be its head. Keep the place until the call has its slot.
    pub(crate) async fn enter(&self) -> Place<'_> {
        self.waiting.fetch_add(1, SeqCst);
        let counted = Counted(self);
        let head = self.head.lock().await;
        Place {
            _counted: counted,
            _head: head,
        }
    }

    /// The next release of an instance while calls are queued. The head enables it before
    /// each retry, so a release during the retry wakes it.
    pub(crate) fn next_release(&self) -> Notified<'_> {
        self.released.notified()
    }

    /// A call dropped its store: its instance is back in the pool.
    fn released(&self) {
        // Pairs with `enter`'s increment and the head's retry (see the module docs).
        fence(SeqCst);
        if self.waiting.load(SeqCst) > 0 {
            self.released.notify_one();
        }
    }
}

/// A call's place in the queue, from joining it until it has its slot (or is stopped).
pub(crate) struct Place<'a> {
    _counted: Counted<'a>,
    _head: MutexGuard<'a, ()>,
}

struct Counted<'a>(&'a PoolQueue);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, SeqCst);
    }
}

/// Declared before a call's store, so dropped after it: tells the queue the instance is back.
/// Disarmed when the attempt found the pool full (it released nothing another
/// call could use, and waking the queue for it would make the head spin).
pub(crate) struct ReleaseOnDrop<'a> {
    pub(crate) queue: Option<&'a PoolQueue>,
}

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(q) = self.queue {
            q.released();
        }
    }
}
