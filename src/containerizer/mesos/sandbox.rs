//! The executor's sandbox directory, laid out as the Mesos agent lays it
//! out: `slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>/`,
//! with `runs/latest` pointing at the newest run (an absolute link, as in
//! Mesos), owned by the user the executor runs as; and the `stdout` and
//! `stderr` files the executor's streams are appended to.

use crate::state::paths::{WorkDir, LATEST};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Who owns the sandbox and its files: `None` leaves them to the agent.
pub type Owner = Option<(u32, u32)>;

/// Creates (or, on a retried launch, reuses) the sandbox of one executor
/// run and points `runs/latest` at it. Returns its path.
pub fn create(
    work: &WorkDir,
    agent: &str,
    framework: &str,
    executor: &str,
    container: &str,
    owner: Owner,
) -> io::Result<PathBuf> {
    let runs = work.executor_sandboxes(agent, framework, executor);
    let sandbox = runs.join(container);
    make_dir(&sandbox, owner)?;
    link_latest(&runs, &sandbox)?;
    Ok(sandbox)
}

/// Creates (or reuses) the sandbox of standalone container `container`:
/// `<work_dir>/containers/<container>`, as Mesos' `getContainerPath`.
pub fn create_standalone(work: &WorkDir, container: &str, owner: Owner) -> io::Result<PathBuf> {
    let sandbox = work.container_sandbox(container);
    make_dir(&sandbox, owner)?;
    Ok(sandbox)
}

/// Creates (or reuses) the sandbox of a nested container, `path` (its
/// parent's `containers/` directory is made as needed).
pub fn create_nested(path: &Path, owner: Owner) -> io::Result<PathBuf> {
    make_dir(path, owner)?;
    Ok(path.to_path_buf())
}

/// Creates a sandbox directory (mode 0755, parents as needed), owned by
/// `owner` when given.
fn make_dir(sandbox: &Path, owner: Owner) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(sandbox)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(sandbox, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Points `<runs>/latest` at `target`, replacing the old link atomically.
fn link_latest(runs: &Path, target: &Path) -> io::Result<()> {
    let latest = runs.join(LATEST);
    let tmp = runs.join(format!(".{LATEST}.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp)?;
    fs::rename(&tmp, &latest).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Opens `<sandbox>/<name>` for appending (created `0644` if missing, and
/// given to `owner`), for the executor's stdout or stderr.
pub fn output(sandbox: &Path, name: &str, owner: Owner) -> io::Result<File> {
    let path = sandbox.join(name);
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sandbox_is_laid_out_as_mesos_does_with_runs_latest() {
        let t = tempfile::tempdir().unwrap();
        let work = WorkDir::new(t.path());
        let first = create(&work, "S1", "F1", "E1", "C1", None).unwrap();
        assert_eq!(
            first,
            t.path()
                .join("slaves/S1/frameworks/F1/executors/E1/runs/C1")
        );
        assert!(first.is_dir());
        let latest = t
            .path()
            .join("slaves/S1/frameworks/F1/executors/E1/runs/latest");
        assert_eq!(fs::read_link(&latest).unwrap(), first);
        // A second run moves `latest`; the first sandbox stays.
        let second = create(&work, "S1", "F1", "E1", "C2", None).unwrap();
        assert_eq!(fs::read_link(&latest).unwrap(), second);
        assert!(first.is_dir());
        // Creating again (a retried launch) is not an error.
        create(&work, "S1", "F1", "E1", "C2", None).unwrap();
        let names: Vec<String> = fs::read_dir(latest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn output_files_are_appended_to() {
        let t = tempfile::tempdir().unwrap();
        output(t.path(), "stdout", None)
            .unwrap()
            .write_all(b"one\n")
            .unwrap();
        output(t.path(), "stdout", None)
            .unwrap()
            .write_all(b"two\n")
            .unwrap();
        assert_eq!(
            fs::read_to_string(t.path().join("stdout")).unwrap(),
            "one\ntwo\n"
        );
        // A planted symlink is not followed.
        symlink("/etc/passwd", t.path().join("stderr")).unwrap();
        assert!(output(t.path(), "stderr", None).is_err());
    }
}
