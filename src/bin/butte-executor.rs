//! `butte-executor`: butte's command and default executors as a program
//! of their own. The agent starts it (when it sits next to `butte`) instead
//! of `butte executor`: without the rest of butte linked in, an idle
//! executor keeps a few MB resident rather than twice that. It also runs
//! `butte-executor enter ...`, which the executors use to prepare a task's
//! image (`enter --prepare`, `--serve`) before they drop `CAP_SYS_ADMIN`.

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
        match butte::executors::ExecutorArgs::from_args(std::env::args_os().skip(1)) {
            Some(args) => butte::executors::main(args),
            None => {
                eprintln!("usage: butte-executor [--default] [--launch-info FILE]");
                2
            }
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
