//! Starting a child without copying wasmhook's address space: `clone(CLONE_VM | CLONE_VFORK)`,
//! the way glibc's `posix_spawn` does it, plus the two steps `posix_spawn` cannot take:
//! arming `PR_SET_PDEATHSIG` and checking that the parent is still there.
//!
//! Why not `fork` (what `std::process::Command` uses once a `pre_exec` hook is set): its cost
//! grows with the parent's memory. It copies the page tables, write-protects every private
//! page, and each page the parent writes next takes a copy-on-write fault. A node with
//! thousands of containers keeps hundreds of MiB of heap, and a `fork` there cost 5 ms
//! against 0.4 ms for `posix_spawn` (BENCHMARKS.md, "Scale"); every hook and start paid
//! for the faults afterwards too. With `CLONE_VM` the child borrows the parent's memory
//! until `execve`, so the cost is flat.
//!
//! # Descriptors
//! A new process also gets a copy of the descriptor table, and `execve` then closes every
//! close-on-exec descriptor one by one. Each running container holds three (its exit pidfd,
//! its stdout and stderr pipes), so that too would grow with the node. So, where the kernel
//! has `close_range` (Linux 5.9), the child shares our table (`CLONE_FILES`) and its first
//! step is `close_range(first_free, ~0, CLOSE_RANGE_UNSHARE)`: the kernel gives it a table of
//! only the descriptors below `first_free`. For that to be a handful, the spawner thread
//! reserves three low descriptors at start-up ([`reserve_stdio_slots`]) and, for each spawn,
//! puts the child's stdin, stdout and stderr into them with `dup3`; after `clone` it puts
//! placeholders back. Only the spawner thread touches the slots, and it is suspended while
//! the child shares the table. The child then moves the slots to 0–2 and closes everything
//! else from 3 up, so it inherits no descriptor of ours, close-on-exec or not.
//!
//! # Invariants of the child
//! Between `clone` and `execve` the child runs in the parent's memory while the calling
//! thread is suspended (`CLONE_VFORK`). It must therefore only make system calls on data the
//! parent prepared: no allocation, no locks, no panics, nothing that could leave the
//! parent's state half-changed. Every signal is blocked across `clone`, and the child resets
//! every signal to its default before unblocking, so no handler of the parent ever runs on
//! the child's stack. The libc wrappers it calls set `errno` in the suspended parent
//! thread's TLS; the parent never reads it after `clone` succeeded.

use std::ffi::{c_char, c_int, c_void, CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

/// The child's own stack while it runs the setup below (it does not run Rust code that
/// needs more than a few hundred bytes; glibc's `posix_spawn` uses a similar size).
const CHILD_STACK: usize = 64 * 1024;

/// Highest signal number on Linux (`_NSIG - 1`).
const MAX_SIGNAL: c_int = 64;

/// What [`spawn`] starts.
pub(super) struct SpawnSpec<'a> {
    pub program: &'a Path,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    /// Pipes for stdout and stderr; `/dev/null` otherwise. Stdin is always `/dev/null`.
    pub capture: bool,
}

/// A started child: the leader of a new process group, armed with `PDEATHSIG = SIGKILL`.
/// The caller owns reaping it.
pub(super) struct Started {
    pub pid: rustix::process::Pid,
    /// Read ends of the stdout and stderr pipes (when captured), close-on-exec.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Three descriptors of the spawner thread, reserved low in the table: see "Descriptors".
struct StdioSlots {
    /// Hold `/dev/null` between spawns, and the child's stdio during one.
    slots: [OwnedFd; 3],
    placeholder: OwnedFd,
    /// The child keeps only the descriptors below this (the slots are the highest of them).
    first_free: c_int,
}

thread_local! {
    /// The spawner thread's slots; `None` where `close_range` is missing (the child then
    /// gets a full copy of the table).
    static SLOTS: std::cell::OnceCell<Option<StdioSlots>> = const { std::cell::OnceCell::new() };
}

/// Reserve this thread's stdio slots now, while the table is small: the spawner thread calls
/// it as it starts, so the slots sit below every container's descriptors.
pub(super) fn reserve_stdio_slots() {
    SLOTS.with(|cell| {
        cell.get_or_init(|| {
            StdioSlots::new().unwrap_or_else(|e| {
                tracing::debug!("children get a full descriptor table: {e}");
                None
            })
        });
    });
}

impl StdioSlots {
    fn new() -> io::Result<Option<StdioSlots>> {
        // SAFETY: close_range of a descriptor that is never open closes nothing; it only
        // tells whether the kernel has the system call.
        if unsafe { libc::syscall(libc::SYS_close_range, c_int::MAX, c_int::MAX, 0) } != 0 {
            return Ok(None);
        }
        let placeholder = open_dev_null(libc::O_RDONLY)?;
        // At or above 3, even if this process was started with 0–2 closed.
        let slot = || -> io::Result<OwnedFd> {
            // SAFETY: F_DUPFD_CLOEXEC of an open descriptor; the result is checked.
            let fd = unsafe { libc::fcntl(placeholder.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor owned by nobody else.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let slots = [slot()?, slot()?, slot()?];
        let first_free = slots.iter().map(|s| s.as_raw_fd()).max().unwrap_or(2) + 1;
        Ok(Some(StdioSlots {
            slots,
            placeholder,
            first_free,
        }))
    }

    /// Put `fds` into the slots (close-on-exec, so no other child inherits them).
    fn fill(&self, fds: [RawFd; 3]) -> io::Result<()> {
        for (slot, fd) in self.slots.iter().zip(fds) {
            // SAFETY: both descriptors are open; dup3 replaces only the slot.
            if unsafe { libc::dup3(fd, slot.as_raw_fd(), libc::O_CLOEXEC) } < 0 {
                let e = io::Error::last_os_error();
                self.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Put the placeholders back, dropping our references to the child's stdio (a pipe's
    /// reader sees EOF only once every writer is closed).
    fn clear(&self) {
        for slot in &self.slots {
            // SAFETY: as in `fill`.
            unsafe {
                libc::dup3(
                    self.placeholder.as_raw_fd(),
                    slot.as_raw_fd(),
                    libc::O_CLOEXEC,
                )
            };
        }
    }
}

/// Everything the child reads, prepared by the parent; `error` is the one field it writes.
struct ChildArgs {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    /// Descriptors to become 0, 1 and 2.
    stdio: [RawFd; 3],
    /// With a shared table: unshare it, keeping only the descriptors below this.
    first_free: Option<c_int>,
    parent: libc::pid_t,
    /// The errno of the failed step, or 0 if `execve` succeeded.
    error: c_int,
}

/// Start `req.program` with exactly `req.argv` and `req.env`, in `req.cwd`, as described on
/// [`Started`]. An error (`ENOENT`, `EACCES`, a `cwd` that is gone) is the errno of the step
/// that failed, and no child is left behind.
pub(super) fn spawn(req: &SpawnSpec<'_>) -> io::Result<Started> {
    let program = cstring(req.program.as_os_str())?;
    let cwd = cstring(req.cwd.as_os_str())?;
    let argv = req
        .argv
        .iter()
        .map(|a| cstring(OsStr::new(a)))
        .collect::<io::Result<Vec<_>>>()?;
    let envp = req
        .env
        .iter()
        .map(|(k, v)| cstring(OsStr::new(&format!("{k}={v}"))))
        .collect::<io::Result<Vec<_>>>()?;
    let argv_ptrs = null_terminated(&argv);
    let envp_ptrs = null_terminated(&envp);

    let stdin = open_dev_null(libc::O_RDONLY)?;
    let (out_parent, out_child, err_parent, err_child) = if req.capture {
        let (r1, w1) = pipe()?;
        let (r2, w2) = pipe()?;
        (Some(r1), w1, Some(r2), w2)
    } else {
        (
            None,
            open_dev_null(libc::O_WRONLY)?,
            None,
            open_dev_null(libc::O_WRONLY)?,
        )
    };

    let stdio = [
        stdin.as_raw_fd(),
        out_child.as_raw_fd(),
        err_child.as_raw_fd(),
    ];
    let prepared = Prepared {
        program: program.as_ptr(),
        argv: &argv_ptrs,
        envp: &envp_ptrs,
        cwd: cwd.as_ptr(),
    };
    let pid = SLOTS.with(|cell| match cell.get().and_then(Option::as_ref) {
        Some(slots) => {
            slots.fill(stdio)?;
            let fds = slots.slots.each_ref().map(|s| s.as_raw_fd());
            let result = clone_child(&prepared, fds, Some(slots.first_free));
            slots.clear();
            result
        }
        None => clone_child(&prepared, stdio, None),
    })?;
    Ok(Started {
        pid,
        stdout: out_parent,
        stderr: err_parent,
    })
}

/// The parent's C strings for the child, null-terminated arrays included.
struct Prepared<'a> {
    program: *const c_char,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    cwd: *const c_char,
}

/// `clone` the child with these stdio descriptors and wait until it called `execve` (or
/// failed before it: that errno is the error, and the child is reaped).
fn clone_child(
    prepared: &Prepared<'_>,
    stdio: [RawFd; 3],
    first_free: Option<c_int>,
) -> io::Result<rustix::process::Pid> {
    let mut args = ChildArgs {
        program: prepared.program,
        argv: prepared.argv.as_ptr(),
        envp: prepared.envp.as_ptr(),
        cwd: prepared.cwd,
        stdio,
        first_free,
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        error: 0,
    };
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // The stack grows down on every Linux target we build for; keep the top 16-byte aligned.
    let top = ((stack.as_mut_ptr() as usize + CHILD_STACK) & !15) as *mut c_void;
    let share_files = if first_free.is_some() {
        libc::CLONE_FILES
    } else {
        0
    };

    let pid = {
        let _blocked = SignalsBlocked::new()?;
        // SAFETY: `child` only makes system calls on `args`, which outlives the child's use
        // of it: with CLONE_VFORK this call returns only after the child called execve or
        // exited. `top` points at the end of `stack`, which is alive until then as well.
        unsafe {
            libc::clone(
                child,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | share_files | libc::SIGCHLD,
                ptr::addr_of_mut!(args).cast(),
            )
        }
    };
    drop(stack);
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a positive pid returned by clone.
    let pid = unsafe { rustix::process::Pid::from_raw_unchecked(pid) };
    if args.error != 0 {
        // The child exited with 127 before execve; reap it so it leaves no zombie.
        while let Err(rustix::io::Errno::INTR) =
            rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        {}
        return Err(io::Error::from_raw_os_error(args.error));
    }
    Ok(pid)
}

/// The child, on its own small stack in the parent's memory (see the module docs).
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent passed to clone and keeps alive.
    let args = unsafe { &mut *arg.cast::<ChildArgs>() };
    // SAFETY: each call below is a thin system-call wrapper on valid, parent-prepared data.
    unsafe {
        // A container starts as its runtime would start it: every signal at its default
        // and none blocked (see below), whatever wasmhook itself was started with. A shell
        // starts a background job with SIGINT and SIGQUIT ignored, and a container that
        // inherited that could not be stopped by its `stopSignal` (a shell cannot even trap
        // a signal ignored on entry). Handlers must go in any case: they are the parent's
        // code on the parent's memory, so this happens before unblocking.
        let mut dfl: libc::sigaction = MaybeUninit::zeroed().assume_init();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=MAX_SIGNAL {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                // glibc refuses its own (SIGCANCEL, SIGSETXID): not ours to reset.
                libc::sigaction(sig, &dfl, ptr::null_mut());
            }
        }
        // Our own table, of only the few descriptors below the slots (see "Descriptors").
        if let Some(first_free) = args.first_free {
            let unshare = libc::CLOSE_RANGE_UNSHARE as c_int;
            if libc::syscall(libc::SYS_close_range, first_free, c_int::MAX, unshare) != 0 {
                fail(args);
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail(args);
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            fail(args);
        }
        // If the parent died before prctl, the signal was never armed: the child was already
        // reparented, so bail out rather than run unsupervised.
        if libc::getppid() != args.parent {
            *libc::__errno_location() = libc::ESRCH;
            fail(args);
        }
        if libc::chdir(args.cwd) != 0 {
            fail(args);
        }
        for (target, &fd) in args.stdio.iter().enumerate() {
            let target = target as c_int;
            let ok = if fd == target {
                // Already in place (the parent had closed it): only drop close-on-exec.
                libc::fcntl(fd, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, target) == target
            };
            if !ok {
                fail(args);
            }
        }
        // Nothing of ours beyond stdio, close-on-exec or not (the table is small by now).
        if args.first_free.is_some() && libc::syscall(libc::SYS_close_range, 3, c_int::MAX, 0) != 0
        {
            fail(args);
        }
        // No signal blocked, not even one blocked in the thread that spawned us.
        let mut none: libc::sigset_t = MaybeUninit::zeroed().assume_init();
        libc::sigemptyset(&mut none);
        if libc::pthread_sigmask(libc::SIG_SETMASK, &none, ptr::null_mut()) != 0 {
            fail(args);
        }
        libc::execve(args.program, args.argv, args.envp);
        fail(args)
    }
}

/// Record the errno of the step that failed for the parent and exit; runs in the child.
unsafe fn fail(args: &mut ChildArgs) -> ! {
    // SAFETY: errno is readable on any thread; _exit ends only this child.
    unsafe {
        args.error = *libc::__errno_location();
        if args.error == 0 {
            args.error = libc::EINVAL;
        }
        libc::_exit(127)
    }
}

/// Every signal blocked on this thread while alive (glibc's own included, through the raw
/// system call); the previous mask is restored on drop.
struct SignalsBlocked {
    saved: libc::sigset_t,
}

impl SignalsBlocked {
    fn new() -> io::Result<SignalsBlocked> {
        // SAFETY: sigfillset initialises `all`, an all-zero sigset_t is a valid set for the
        // kernel to overwrite; rt_sigprocmask with valid set pointers and the kernel's sigset
        // size only changes this thread's mask.
        unsafe {
            let mut all: libc::sigset_t = MaybeUninit::zeroed().assume_init();
            libc::sigfillset(&mut all);
            let mut saved: libc::sigset_t = MaybeUninit::zeroed().assume_init();
            let rc = libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &all as *const libc::sigset_t,
                &mut saved as *mut libc::sigset_t,
                MAX_SIGNAL as usize / 8,
            );
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(SignalsBlocked { saved })
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new` on the same thread.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &self.saved as *const libc::sigset_t,
                ptr::null_mut::<libc::sigset_t>(),
                MAX_SIGNAL as usize / 8,
            );
        }
    }
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s:?} contains a NUL byte"),
        )
    })
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

fn open_dev_null(flags: c_int) -> io::Result<OwnedFd> {
    // SAFETY: a valid C string; the result is checked before it is owned.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a freshly opened descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two freshly created descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
