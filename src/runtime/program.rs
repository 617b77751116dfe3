//! Finding a task's program as `execvp` would, for the launch helper and
//! `butte enter` alike, and the error phrasing both report with.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why a program cannot be run.
#[derive(Debug)]
pub struct Unrunnable {
    /// Nothing by that name (exit 127), rather than something that cannot
    /// be executed (exit 126).
    pub missing: bool,
    pub message: String,
}

/// Finds `arg0`: taken as is when it holds a `/`, else the first match in
/// `path_var`. A candidate that exists but cannot be run is reported only
/// if no later one can be (as `execvp` does). `place` names where the
/// search happened ("sandbox", "root filesystem").
pub fn find_program(arg0: &str, path_var: &str, place: &str) -> Result<PathBuf, Unrunnable> {
    let check = |p: &Path| -> Result<(), Unrunnable> {
        let meta = fs::metadata(p).map_err(|e| Unrunnable {
            missing: e.kind() == io::ErrorKind::NotFound,
            message: if p == Path::new(arg0) {
                phrase(&e)
            } else {
                format!("{}: {}", p.display(), phrase(&e))
            },
        })?;
        let refuse = |message: &str| Unrunnable {
            missing: false,
            message: message.to_string(),
        };
        if meta.is_dir() {
            return Err(refuse("is a directory"));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(refuse("not executable: no execute permission"));
        }
        Ok(())
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        check(&p)?;
        return Ok(p);
    }
    let mut first_error = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        match check(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.missing => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| Unrunnable {
        missing: true,
        message: format!("command not found in the {place} (PATH={path_var})"),
    }))
}

/// An I/O error as a lower-case phrase, without std's "(os error N)".
pub fn phrase(e: &io::Error) -> String {
    let text = e.to_string().to_lowercase();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

pub fn errno(e: nix::Error) -> io::Error {
    io::Error::from(e)
}
