//! `lifecycle.stopSignal`: the names the API server accepts (`supportedStopSignalsLinux` in
//! `pkg/apis/core/validation`) and their Linux numbers (as the runtimes map them: glibc's
//! `SIGRTMIN` is 34, `SIGRTMAX` 64).

/// Linux's stop signals by name, aliases (`SIGCLD`, `SIGIOT`, `SIGPOLL`) included.
const NAMED: [(&str, i32); 36] = [
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGIOT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPOLL", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
    ("SIGRTMIN", RTMIN),
    ("SIGRTMAX", RTMAX),
];

const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// The Linux number of a stop signal the API accepts for `spec.os.name: linux`:
/// the names above, `SIGRTMIN+1`…`SIGRTMIN+15` and `SIGRTMAX-14`…`SIGRTMAX-1`.
pub fn linux_stop_signal(name: &str) -> Option<i32> {
    if let Some((_, n)) = NAMED.iter().find(|(s, _)| *s == name) {
        return Some(*n);
    }
    let offset = |rest: &str| -> Option<i32> {
        // Exactly as written in the API's list: no sign, no leading zero.
        let n: i32 = rest.parse().ok()?;
        (rest == n.to_string()).then_some(n)
    };
    if let Some(n) = name.strip_prefix("SIGRTMIN+").and_then(offset) {
        return (1..=15).contains(&n).then_some(RTMIN + n);
    }
    if let Some(n) = name.strip_prefix("SIGRTMAX-").and_then(offset) {
        return (1..=14).contains(&n).then_some(RTMAX - n);
    }
    None
}

/// Every name [`linux_stop_signal`] accepts, sorted as the API server lists them.
pub fn linux_stop_signal_names() -> Vec<String> {
    let mut names: Vec<String> = NAMED.iter().map(|(s, _)| s.to_string()).collect();
    names.extend((1..=15).map(|n| format!("SIGRTMIN+{n}")));
    names.extend((1..=14).map(|n| format!("SIGRTMAX-{n}")));
    names.sort();
    names.dedup();
    names
}

/// The stop signals the API accepts for `spec.os.name: windows`, sorted.
pub const WINDOWS_STOP_SIGNALS: [&str; 2] = ["SIGKILL", "SIGTERM"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_aliases() {
        assert_eq!(linux_stop_signal("SIGTERM"), Some(15));
        assert_eq!(linux_stop_signal("SIGQUIT"), Some(3));
        assert_eq!(linux_stop_signal("SIGCLD"), Some(17));
        assert_eq!(linux_stop_signal("SIGPOLL"), Some(29));
        assert_eq!(linux_stop_signal("SIGRTMIN"), Some(34));
        assert_eq!(linux_stop_signal("SIGRTMIN+15"), Some(49));
        assert_eq!(linux_stop_signal("SIGRTMAX-14"), Some(50));
        assert_eq!(linux_stop_signal("SIGRTMAX"), Some(64));
        for bad in [
            "TERM",
            "sigterm",
            "SIGRTMIN+16",
            "SIGRTMIN+0",
            "SIGRTMAX-15",
            "SIGRTMIN+01",
            "15",
        ] {
            assert_eq!(linux_stop_signal(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_list_is_sorted_and_complete() {
        let names = linux_stop_signal_names();
        assert_eq!(names.len(), 36 + 15 + 14);
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert!(names.iter().all(|n| linux_stop_signal(n).is_some()));
    }
}
