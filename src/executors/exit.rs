//! How a process ended, and the words Mesos uses for it in status
//! messages ("Command exited with status 3", "Command terminated with
//! signal Killed").

use std::fmt;

/// The end of a process: an exit code or a terminating signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// True for exit code 0.
    pub fn succeeded(self) -> bool {
        self == Exit::Code(0)
    }
}

/// "exited with status N" / "terminated with signal NAME", as Mesos'
/// `WSTRINGIFY` words it (the signal described as `strsignal(3)` does).
impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(s) => write!(f, "terminated with signal {}", describe_signal(*s)),
        }
    }
}

/// The status message of a task's command: "Command exited with status 3".
pub fn command_message(exit: Exit) -> String {
    format!("Command {exit}")
}

/// A signal as glibc's `strsignal(3)` describes it.
pub fn describe_signal(signal: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "Hangup",
        "Interrupt",
        "Quit",
        "Illegal instruction",
        "Trace/breakpoint trap",
        "Aborted",
        "Bus error",
        "Floating point exception",
        "Killed",
        "User defined signal 1",
        "Segmentation fault",
        "User defined signal 2",
        "Broken pipe",
        "Alarm clock",
        "Terminated",
        "Stack fault",
        "Child exited",
        "Continued",
        "Stopped (signal)",
        "Stopped",
        "Stopped (tty input)",
        "Stopped (tty output)",
        "Urgent I/O condition",
        "CPU time limit exceeded",
        "File size limit exceeded",
        "Virtual timer expired",
        "Profiling timer expired",
        "Window changed",
        "I/O possible",
        "Power failure",
        "Bad system call",
    ];
    match signal {
        1..=31 => NAMES[signal as usize].to_string(),
        34..=64 => format!("Real-time signal {}", signal - 34),
        _ => format!("Unknown signal {signal}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_mesos_writes_them() {
        assert_eq!(
            command_message(Exit::Code(3)),
            "Command exited with status 3"
        );
        assert_eq!(
            command_message(Exit::Signal(9)),
            "Command terminated with signal Killed"
        );
        assert_eq!(
            command_message(Exit::Signal(15)),
            "Command terminated with signal Terminated"
        );
        assert_eq!(describe_signal(11), "Segmentation fault");
        assert_eq!(describe_signal(35), "Real-time signal 1");
        assert_eq!(describe_signal(99), "Unknown signal 99");
    }

    #[test]
    fn only_a_zero_exit_succeeds() {
        assert!(Exit::Code(0).succeeded());
        assert!(!Exit::Code(1).succeeded());
        assert!(!Exit::Signal(9).succeeded());
    }
}
