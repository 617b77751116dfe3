//! `butte exec [-i] [-t] TASK -- CMD...`: runs a command inside a running
//! task's container, as `docker exec` and Mesos' `mesos task exec` do,
//! through the agent's v1 operator API:
//!
//! 1. the task's container: a task of a group run in a nested container
//!    (its status names one, and GET_CONTAINERS with `show_nested` lists
//!    it), else its executor's container; or a standalone container by its
//!    id (or a unique prefix);
//! 2. LAUNCH_NESTED_CONTAINER_SESSION of a debug container (a new UUID) in
//!    it with the command (`shell: false`), with `-t` a terminal of this
//!    terminal's size; the answer streams the command's stdout and stderr,
//!    printed as they come, until it ends;
//! 3. with `-i` (or `-t`), a second connection, ATTACH_CONTAINER_INPUT,
//!    carries stdin, the window size when it changes (SIGWINCH) and a
//!    heartbeat every 30 s;
//! 4. WAIT_NESTED_CONTAINER gives the command's exit status, which becomes
//!    this program's exit code (128 + N for a signal N), and
//!    REMOVE_NESTED_CONTAINER forgets the debug container.
//!
//! With `-t` this terminal is in raw mode while the command runs, and is
//! restored on every way out (an error included).

use super::client::{AgentArgs, Client};
use super::view::{self, MatchError, TaskView};
use anyhow::{bail, Context};
use base64::Engine as _;
use butte::api::recordio;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Send this program's stdin to the command.
    #[arg(short, long)]
    pub interactive: bool,
    /// Run the command on a terminal (this one's size; this terminal in
    /// raw mode meanwhile).
    #[arg(short, long)]
    pub tty: bool,
    /// The task (its id or a unique prefix), or a standalone container.
    pub task: String,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// How often the input connection says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(30);

pub fn main(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.agent)?;
    let state = client.state().context("reading the agent's state")?;
    let tasks = view::tasks(&state);
    let (parent, name) = match view::find(&tasks, |t| t.id.as_str(), &args.task, "task") {
        Ok(task) => {
            if task.terminal() {
                bail!("task {} has already ended ({})", task.id, task.state);
            }
            if task.container_id.is_empty() {
                bail!("task {} has no container yet ({})", task.id, task.state);
            }
            (
                container_of(&client, &state, task)?,
                format!("task {}", task.id),
            )
        }
        Err(MatchError::None { .. }) => {
            let c = super::standalone_container(&client, &args.task)?;
            (json!({"value": c.id}), format!("container {}", c.id))
        }
        Err(e) => return Err(e.into()),
    };
    let stdin = std::io::stdin();
    let size = if args.tty {
        if !nix::unistd::isatty(std::os::fd::AsRawFd::as_raw_fd(&stdin)).unwrap_or(false) {
            bail!("-t needs a terminal on stdin");
        }
        Some(butte::runtime::window_size(stdin.as_fd()).unwrap_or((24, 80)))
    } else {
        None
    };
    let child = butte::support::random_uuid().context("making the session's container id")?;
    let container_id = json!({"value": child, "parent": parent});
    let output = client
        .call_streaming(&session_call(&container_id, &args.command, size))
        .with_context(|| format!("starting {:?} in {name}", args.command))?;
    // From here on the terminal is raw; the guard restores it.
    let raw = match size {
        Some(_) => Some(RawMode::enter().context("putting the terminal in raw mode")?),
        None => None,
    };
    if args.interactive || args.tty {
        start_input(&args, &container_id);
    }
    let printed = print_output(output);
    let status = client.call_waiting(&json!({
        "type": "WAIT_NESTED_CONTAINER",
        "wait_nested_container": {"container_id": container_id},
    }));
    let removed = client.call(&json!({
        "type": "REMOVE_NESTED_CONTAINER",
        "remove_nested_container": {"container_id": container_id},
    }));
    drop(raw);
    printed.context("reading the command's output")?;
    let status = status.context("waiting for the command's end")?;
    if let Err(e) = removed {
        eprintln!("butte exec: the debug container {child} was not removed: {e}");
    }
    let code = status["wait_nested_container"]["exit_status"]
        .as_i64()
        .map(exit_code)
        .unwrap_or(255);
    Ok(ExitCode::from(code))
}

/// The container to run in: the task's nested container when its latest
/// status names one that the agent lists, else its executor's.
fn container_of(client: &Client, state: &Value, task: &TaskView) -> anyhow::Result<Value> {
    let executor = json!({"value": task.container_id});
    let Some(nested) = nested_container(state, task) else {
        return Ok(executor);
    };
    let listed = client
        .call(&json!({
            "type": "GET_CONTAINERS",
            "get_containers": {"show_nested": true, "show_standalone": false}
        }))
        .context("reading the agent's containers")?;
    let known = listed["get_containers"]["containers"]
        .as_array()
        .is_some_and(|l| l.iter().any(|c| c["container_id"] == nested));
    Ok(if known { nested } else { executor })
}

/// The nested container a task's latest status names (one with a parent).
fn nested_container(state: &Value, task: &TaskView) -> Option<Value> {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    for fw in list(&state["frameworks"]) {
        if fw["id"].as_str() != Some(task.framework_id.as_str()) {
            continue;
        }
        for ex in list(&fw["executors"]) {
            for t in list(&ex["tasks"]) {
                if t["id"].as_str() != Some(task.id.as_str()) {
                    continue;
                }
                let id = list(&t["statuses"])
                    .iter()
                    .rev()
                    .map(|s| s["container_status"]["container_id"].clone())
                    .find(|c| c.is_object())?;
                return id["parent"].is_object().then_some(id);
            }
        }
    }
    None
}

/// LAUNCH_NESTED_CONTAINER_SESSION of the command, on a terminal of
/// `size` (rows, columns) if given.
fn session_call(container_id: &Value, command: &[String], size: Option<(u16, u16)>) -> Value {
    let mut launch = json!({
        "container_id": container_id,
        "command": {"shell": false, "value": command[0], "arguments": command},
    });
    if let Some((rows, cols)) = size {
        launch["container"] = json!({
            "type": "MESOS",
            "tty_info": {"window_size": {"rows": rows, "columns": cols}},
        });
    }
    json!({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": launch})
}

/// Prints the output records until the stream ends.
fn print_output(mut stream: Box<dyn Read + Send>) -> anyhow::Result<()> {
    let mut decoder = recordio::Decoder::new(recordio::DEFAULT_MAX_RECORD);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // ureq says "Error while decoding chunks": name the cause.
            Err(e) => bail!(
                "the agent closed the connection before the command ended ({e}): \
                 the agent stopped, or killed the session"
            ),
        };
        for record in decoder.feed(&buf[..n])? {
            let (kind, bytes) = data_of(&record)?;
            match kind {
                Some(Stream::Stdout) => {
                    out.write_all(&bytes)?;
                    out.flush()?;
                }
                Some(Stream::Stderr) => {
                    err.write_all(&bytes)?;
                    err.flush()?;
                }
                None => {}
            }
        }
    }
    decoder.finish()?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// A `ProcessIO` record in JSON: which stream its data is for (`None`: a
/// control record) and the bytes.
fn data_of(record: &[u8]) -> anyhow::Result<(Option<Stream>, Vec<u8>)> {
    let v: Value = serde_json::from_slice(record).context("an output record is not JSON")?;
    if v["type"] != "DATA" {
        return Ok((None, Vec::new()));
    }
    let kind = match v["data"]["type"].as_str() {
        Some("STDOUT") => Stream::Stdout,
        Some("STDERR") => Stream::Stderr,
        other => bail!("an output record of type {other:?}"),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"]["data"].as_str().unwrap_or(""))
        .context("an output record's data is not base64")?;
    Ok((Some(kind), bytes))
}

/// `process_io` wrapped in an ATTACH_CONTAINER_INPUT call, framed.
fn input_record(process_io: Value) -> Vec<u8> {
    let call = json!({
        "type": "ATTACH_CONTAINER_INPUT",
        "attach_container_input": {"type": "PROCESS_IO", "process_io": process_io},
    });
    recordio::encode(call.to_string().as_bytes())
}

fn stdin_record(bytes: &[u8]) -> Vec<u8> {
    input_record(json!({
        "type": "DATA",
        "data": {"type": "STDIN", "data": base64::engine::general_purpose::STANDARD.encode(bytes)},
    }))
}

fn window_record(rows: u16, cols: u16) -> Vec<u8> {
    input_record(json!({
        "type": "CONTROL",
        "control": {"type": "TTY_INFO", "tty_info": {"window_size": {"rows": rows, "columns": cols}}},
    }))
}

fn heartbeat_record() -> Vec<u8> {
    input_record(json!({
        "type": "CONTROL",
        "control": {"type": "HEARTBEAT", "heartbeat": {"interval": {"nanoseconds": HEARTBEAT.as_nanos() as i64}}},
    }))
}

/// The input connection's body: the records handed to it, as they come;
/// its end when every sender is gone.
///
/// ureq sends a body of unknown size in chunks, each filled by reading
/// until 16 KiB or a read of 0 bytes (and a chunk of 0 bytes ends the
/// body). So that each record leaves at once, a read after the last byte
/// of a record says 0 once ("this chunk is complete"), and the next read
/// waits for the next record; at the end of the records, the first read
/// says 0 (the empty, last chunk).
struct Records {
    rx: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    /// A record was given out since the last 0.
    chunk_open: bool,
}

impl Read for Records {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.current.len() {
            if self.chunk_open {
                self.chunk_open = false;
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(next) => {
                    self.current = next;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        self.chunk_open = true;
        Ok(n)
    }
}

/// Starts the input connection and the threads that feed it: stdin (with
/// `-i`), window size changes (with `-t`), heartbeats. They run until the
/// program exits.
fn start_input(args: &ExecArgs, container_id: &Value) {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(16);
    let first = json!({
        "type": "ATTACH_CONTAINER_INPUT",
        "attach_container_input": {"type": "CONTAINER_ID", "container_id": container_id},
    });
    let _ = tx.send(recordio::encode(first.to_string().as_bytes()));
    let agent = args.agent.clone();
    std::thread::spawn(move || {
        let body = Records {
            rx,
            current: Vec::new(),
            at: 0,
            chunk_open: false,
        };
        let sent = Client::new(&agent).and_then(|c| c.send_streaming(body));
        if let Err(e) = sent {
            eprintln!("butte exec: input: {e}\r");
        }
    });
    if args.interactive {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(stdin_record(b""));
                        return;
                    }
                    Ok(n) => {
                        if tx.send(stdin_record(&buf[..n])).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        let _ = tx.send(stdin_record(b""));
                        return;
                    }
                }
            }
        });
    }
    if args.tty {
        let tx = tx.clone();
        std::thread::spawn(move || watch_window(tx));
    }
    std::thread::spawn(move || loop {
        std::thread::sleep(HEARTBEAT);
        if tx.send(heartbeat_record()).is_err() {
            return;
        }
    });
}

/// Sends the terminal's size each time it changes (SIGWINCH).
fn watch_window(tx: mpsc::SyncSender<Vec<u8>>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut changes) = signal(SignalKind::window_change()) else {
            return;
        };
        while changes.recv().await.is_some() {
            if let Ok((rows, cols)) = butte::runtime::window_size(std::io::stdin().as_fd()) {
                if tx.send(window_record(rows, cols)).is_err() {
                    return;
                }
            }
        }
    });
}

/// This terminal in raw mode until dropped.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enter() -> nix::Result<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// A wait(2) status as a shell exit code: the code, or 128 + the signal.
fn exit_code(status: i64) -> u8 {
    let status = status as i32;
    let signal = status & 0x7f;
    if signal == 0 {
        ((status >> 8) & 0xff) as u8
    } else {
        (128 + signal).min(255) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_become_shell_exit_codes() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), 137);
        assert_eq!(exit_code(15), 143);
    }

    #[test]
    fn the_session_call_and_input_records_are_what_mesos_takes() {
        let id = json!({"value": "d", "parent": {"value": "e"}});
        let cmd = ["cat".to_string(), "/etc/hostname".to_string()];
        let call = session_call(&id, &cmd, None);
        assert_eq!(
            call["launch_nested_container_session"]["command"],
            json!({"shell": false, "value": "cat", "arguments": ["cat", "/etc/hostname"]})
        );
        assert!(call["launch_nested_container_session"]["container"].is_null());
        let call = session_call(&id, &cmd, Some((24, 80)));
        assert_eq!(
            call["launch_nested_container_session"]["container"]["tty_info"]["window_size"],
            json!({"rows": 24, "columns": 80})
        );
        // Each record decodes as the agent decodes it.
        let mut stream = Vec::new();
        for r in [
            stdin_record(b"ls\n"),
            window_record(50, 132),
            heartbeat_record(),
            stdin_record(b""),
        ] {
            stream.extend(r);
        }
        let mut d = recordio::Decoder::new(1 << 20);
        let records = d.feed(&stream).unwrap();
        assert_eq!(records.len(), 4);
        let first: Value = serde_json::from_slice(&records[0]).unwrap();
        assert_eq!(
            first["attach_container_input"]["process_io"]["data"]["data"],
            "bHMK"
        );
    }

    #[test]
    fn each_input_record_is_a_chunk_of_its_own() {
        let (tx, rx) = mpsc::sync_channel(4);
        tx.send(b"ab".to_vec()).unwrap();
        tx.send(b"cde".to_vec()).unwrap();
        drop(tx);
        let mut r = Records {
            rx,
            current: Vec::new(),
            at: 0,
            chunk_open: false,
        };
        // As ureq reads a chunk: to the end of a 16 KiB take.
        let mut chunks = Vec::new();
        loop {
            let mut chunk = Vec::new();
            (&mut r).take(16 * 1024).read_to_end(&mut chunk).unwrap();
            if chunk.is_empty() {
                break;
            }
            chunks.push(chunk);
        }
        assert_eq!(chunks, [b"ab".to_vec(), b"cde".to_vec()]);
    }

    #[test]
    fn output_records_are_read_by_stream() {
        let (kind, bytes) =
            data_of(br#"{"type":"DATA","data":{"type":"STDERR","data":"aGkK"}}"#).unwrap();
        assert_eq!(
            (kind, bytes.as_slice()),
            (Some(Stream::Stderr), &b"hi\n"[..])
        );
        let (kind, _) = data_of(br#"{"type":"CONTROL","control":{"type":"HEARTBEAT"}}"#).unwrap();
        assert_eq!(kind, None);
        assert!(data_of(b"{x").is_err());
    }

    #[test]
    fn a_task_of_a_group_runs_in_the_nested_container_its_status_names() {
        let state = json!({"frameworks": [{"id": "fw", "executors": [{"tasks": [
            {"id": "web", "statuses": [
                {"state": "TASK_STARTING"},
                {"state": "TASK_RUNNING", "container_status":
                    {"container_id": {"value": "n1", "parent": {"value": "ex1"}}}}]},
            {"id": "plain", "statuses": [{"state": "TASK_RUNNING", "container_status":
                {"container_id": {"value": "ex1"}}}]}]}]}]});
        let task = |id: &str| TaskView {
            id: id.into(),
            name: String::new(),
            framework_id: "fw".into(),
            framework: "fw".into(),
            executor_id: "ex".into(),
            executor_type: "DEFAULT".into(),
            container_id: "ex1".into(),
            directory: String::new(),
            state: "TASK_RUNNING".into(),
            image: None,
            started: None,
        };
        assert_eq!(
            nested_container(&state, &task("web")),
            Some(json!({"value": "n1", "parent": {"value": "ex1"}}))
        );
        assert_eq!(nested_container(&state, &task("plain")), None);
        assert_eq!(nested_container(&state, &task("other")), None);
    }
}
