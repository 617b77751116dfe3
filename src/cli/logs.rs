//! `butte logs`: a task's stdout or stderr through the agent's
//! `/files/read`, paged by offset and length as the Mesos web UI reads it;
//! `-f` follows the file until the task has ended and all of it is read.

use super::client::{AgentArgs, Client, ClientError, Page};
use super::view::{self, TaskView};
use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Bytes asked for per read (the agent's most, Mesos' 16 pages).
const PAGE: u64 = 16 * 4096;

/// Between two reads at the end of a followed file.
const POLL: Duration = Duration::from_millis(500);

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Keep printing what the task writes until it has ended.
    #[arg(short, long)]
    pub follow: bool,
    /// The task's stderr instead of its stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Start with the last N lines.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<usize>,
    /// The task: its id, or a prefix of one id.
    pub task: String,
}

/// Reads pages of one file.
pub trait Source {
    fn read(&self, offset: i64, length: u64) -> Result<Page, ClientError>;
}

/// One file of the agent's `/files`.
pub struct AgentFile<'a> {
    pub client: &'a Client,
    pub path: String,
}

impl Source for AgentFile<'_> {
    fn read(&self, offset: i64, length: u64) -> Result<Page, ClientError> {
        self.client.read(&self.path, offset, length)
    }
}

/// The part of a page to print and the file bytes it stands for. The
/// agent replaces bytes that are not UTF-8 with U+FFFD, so a character
/// cut by the end of a page arrives as one U+FFFD: unless this is the
/// `last` read, it is left for the next page, which starts at its first
/// byte. (Invalid bytes elsewhere in a page are shown replaced.)
pub fn usable(data: &str, last: bool) -> (&str, u64) {
    let text = match data.strip_suffix('\u{FFFD}') {
        Some(cut) if !last => cut,
        _ => data,
    };
    (text, text.len() as u64)
}

/// Where the last `n` lines of `buf` begin (a final `\n` ends the last
/// line, it does not start another); 0 when `buf` holds fewer.
pub fn tail_start(buf: &str, n: usize) -> Option<usize> {
    if n == 0 {
        return Some(buf.len());
    }
    let body = buf.strip_suffix('\n').unwrap_or(buf);
    let mut seen = 0;
    for (i, b) in body.bytes().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The offset of the file's last `n` lines, read backwards page by page
/// from its end.
pub fn tail_offset(src: &dyn Source, n: usize) -> Result<u64, ClientError> {
    let size = src.read(-1, 0)?.offset;
    let mut pos = size;
    let mut buf = String::new();
    while pos > 0 {
        let start = pos.saturating_sub(PAGE);
        let page = src.read(start as i64, pos - start)?;
        buf.insert_str(0, &page.data);
        pos = start;
        if let Some(at) = tail_start(&buf, n) {
            return Ok(pos + at as u64);
        }
    }
    Ok(0)
}

/// Prints what the file holds from `offset` on; returns the new offset.
/// A file not there yet counts as empty when `missing_ok`.
pub fn drain(
    src: &dyn Source,
    mut offset: u64,
    last: bool,
    missing_ok: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    loop {
        let page = match src.read(offset as i64, PAGE) {
            Ok(p) => p,
            Err(e) if missing_ok && e.status() == Some(404) => return Ok(offset),
            Err(e) => return Err(e.into()),
        };
        let (text, n) = usable(&page.data, last);
        if n == 0 {
            out.flush()?;
            return Ok(offset);
        }
        out.write_all(text.as_bytes())?;
        offset += n;
    }
}

/// The task now, looked up again by framework and id (`None`: the agent
/// has forgotten it).
fn current(client: &Client, task: &TaskView) -> anyhow::Result<Option<TaskView>> {
    let state = client.state().context("reading the agent's state")?;
    Ok(view::tasks(&state)
        .into_iter()
        .find(|t| t.id == task.id && t.framework_id == task.framework_id))
}

/// The first of PATHS the agent serves (the first if none is there yet).
fn pick(client: &Client, paths: Vec<String>) -> Result<AgentFile<'_>, ClientError> {
    let mut files = paths.into_iter().map(|path| AgentFile { client, path });
    let first = files.next().expect("a task has a log path");
    if first.read(-1, 0).is_ok() {
        return Ok(first);
    }
    for f in files {
        match f.read(-1, 0) {
            Ok(_) => return Ok(f),
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(first)
}

pub fn main(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.agent)?;
    let state = client.state().context("reading the agent's state")?;
    let tasks = view::tasks(&state);
    let task = view::find(&tasks, |t| t.id.as_str(), &args.task, "task")?.clone();
    let stream = if args.stderr { "stderr" } else { "stdout" };
    let file = pick(&client, task.log_paths(stream))?;
    let what = || format!("reading {stream} of task {} ({})", task.id, file.path);
    let follow = args.follow && !task.terminal();
    let mut offset = match args.tail {
        Some(n) => match tail_offset(&file, n) {
            Ok(o) => o,
            Err(e) if follow && e.status() == Some(404) => 0,
            Err(e) => return Err(anyhow::Error::new(e).context(what())),
        },
        None => 0,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !follow {
        drain(&file, offset, true, false, &mut out).with_context(what)?;
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        offset = drain(&file, offset, false, true, &mut out).with_context(what)?;
        std::thread::sleep(POLL);
        if current(&client, &task)?.map_or(true, |t| t.terminal()) {
            // The task's last words may still be on their way through
            // the container logger's pipe: read once more a poll later.
            offset = drain(&file, offset, false, true, &mut out).with_context(what)?;
            std::thread::sleep(POLL);
            drain(&file, offset, true, true, &mut out).with_context(what)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A file served as the agent's `/files/read` serves it: lossy UTF-8,
    /// at most `max` bytes a read; every read recorded.
    struct Fake {
        bytes: Vec<u8>,
        max: u64,
        reads: RefCell<Vec<(i64, u64)>>,
    }

    impl Fake {
        fn new(bytes: &[u8], max: u64) -> Fake {
            Fake {
                bytes: bytes.to_vec(),
                max,
                reads: RefCell::default(),
            }
        }
    }

    impl Source for Fake {
        fn read(&self, offset: i64, length: u64) -> Result<Page, ClientError> {
            self.reads.borrow_mut().push((offset, length));
            let size = self.bytes.len() as u64;
            let Ok(start) = u64::try_from(offset) else {
                return Ok(Page {
                    data: String::new(),
                    offset: size,
                });
            };
            let start = start.min(size);
            let end = (start + length.min(self.max)).min(size);
            Ok(Page {
                data: String::from_utf8_lossy(&self.bytes[start as usize..end as usize])
                    .into_owned(),
                offset: start,
            })
        }
    }

    #[test]
    fn the_last_lines_start_after_the_nth_newline_from_the_end() {
        assert_eq!(tail_start("a\nb\nc\n", 2), Some(2));
        assert_eq!(tail_start("a\nb\nc", 2), Some(2));
        assert_eq!(tail_start("a\nb\nc\n", 3), None);
        assert_eq!(tail_start("a\nb\nc\n", 0), Some(6));
        assert_eq!(tail_start("", 1), None);
    }

    #[test]
    fn tail_reads_backwards_page_by_page_from_the_end() {
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let f = Fake::new(text.as_bytes(), PAGE);
        let at = tail_offset(&f, 3).unwrap();
        assert_eq!(&text[at as usize..], "line 19997\nline 19998\nline 19999\n");
        // The size first (offset -1), then one page before the end.
        let reads = f.reads.borrow().clone();
        assert_eq!(reads[0], (-1, 0));
        assert_eq!(reads[1], (text.len() as i64 - PAGE as i64, PAGE));
        assert_eq!(reads.len(), 2);
        // More lines than the file has: all of it, read to its start.
        let f = Fake::new(b"one\ntwo\n", PAGE);
        assert_eq!(tail_offset(&f, 10).unwrap(), 0);
        assert_eq!(tail_offset(&Fake::new(b"", PAGE), 5).unwrap(), 0);
    }

    #[test]
    fn drain_pages_through_the_whole_file_and_returns_its_end() {
        let text: String = (0..50_000).map(|i| format!("{i}\n")).collect();
        let f = Fake::new(text.as_bytes(), PAGE);
        let mut out = Vec::new();
        let end = drain(&f, 0, true, false, &mut out).unwrap();
        assert_eq!(end, text.len() as u64);
        assert_eq!(out, text.as_bytes());
        // Reads go offset by offset, a page each, then one at the end.
        let offsets: Vec<i64> = f.reads.borrow().iter().map(|r| r.0).collect();
        let pages = text.len().div_ceil(PAGE as usize);
        assert_eq!(offsets.len(), pages + 1);
        assert_eq!(offsets[1], PAGE as i64);
        // From the end again: nothing more.
        let mut more = Vec::new();
        assert_eq!(drain(&f, end, true, false, &mut more).unwrap(), end);
        assert!(more.is_empty());
    }

    #[test]
    fn a_character_cut_by_a_page_end_is_read_whole_with_the_next_page() {
        // "é" is two bytes; a 5-byte page cuts the one at bytes 4..6.
        let text = "abcdé fgh é";
        let f = Fake::new(text.as_bytes(), 5);
        let mut out = Vec::new();
        let end = drain(&f, 0, false, false, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), text);
        assert_eq!(end, text.len() as u64);
        // A cut character at the very end of a file still being written
        // waits; on the last read it is shown replaced.
        let f = Fake::new(&text.as_bytes()[..text.len() - 1], 64);
        let mut out = Vec::new();
        let end = drain(&f, 0, false, false, &mut out).unwrap();
        assert_eq!(end, text.len() as u64 - 2);
        let mut last = Vec::new();
        drain(&f, end, true, false, &mut last).unwrap();
        assert_eq!(String::from_utf8(last).unwrap(), "\u{FFFD}");
    }
}
