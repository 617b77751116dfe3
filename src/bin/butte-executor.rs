//! `butte-executor`: butte's command and default executors as a program
//! of their own. The agent starts it (when it sits next to `butte`) instead
//! of `butte executor`: without the rest of butte linked in, an idle
//! executor keeps a few MB resident rather than twice that. It also runs
//! `butte-executor enter ...`, which the executors use to prepare a task's
//! image (`enter --prepare`, `--serve`) before they drop `CAP_SYS_ADMIN`.
//!
//! Installed as `mesos-executor` and `mesos-default-executor` in a Mesos
//! agent's `--launcher_dir`, it stands in for Mesos' own executors: it takes
//! their flags and picks the default executor by its name.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = if std::env::args_os().nth(1).is_some_and(|a| a == "enter") {
        use clap::Parser;
        #[derive(Parser)]
        #[command(name = "enter")]
        struct Enter {
            #[command(flatten)]
            args: butte::runtime::EnterArgs,
        }
        butte::runtime::enter_main(Enter::parse_from(std::env::args_os().skip(1)).args)
    } else {
        // Named `mesos-default-executor` (installed in a Mesos agent's
        // launcher_dir), it is the default executor.
        let program = std::env::args_os().next();
        match butte::executors::ExecutorArgs::from_args(
            program.as_deref(),
            std::env::args_os().skip(1),
        ) {
            Ok(args) => butte::executors::main(args),
            Err(e) => {
                let name = program
                    .as_deref()
                    .map(std::path::Path::new)
                    .and_then(|p| p.file_name())
                    .map_or("butte-executor".into(), |n| n.to_string_lossy());
                let default = name == butte::executors::MESOS_DEFAULT_EXECUTOR;
                eprintln!("{name}: {e}\n{}", butte::executors::usage(&name, default));
                1
            }
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
