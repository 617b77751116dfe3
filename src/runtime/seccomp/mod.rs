//! Seccomp profiles in Docker's JSON format (the format Mesos'
//! `--seccomp_config_dir` profiles use), compiled with libseccomp into the
//! kernel's BPF program once, then installed by the launch helper right
//! before exec ([`install`]).
//!
//! libseccomp (through the `libseccomp` crate) is used rather than a pure
//! Rust compiler because it is what runc, crun and Docker compile these
//! profiles with: per-rule actions (`clone3` gets `ENOSYS`, the rest
//! `EPERM`), argument comparisons, sub-architectures (x86 and x32 system
//! calls on x86_64) and system call names resolved per architecture, so
//! a profile means exactly what it means to Docker.
//!
//! Entries are kept or skipped as Docker does: `excludes.caps` drops an
//! entry when the sandbox keeps any of those capabilities, `includes.caps`
//! keeps it only when the sandbox keeps all of them; likewise for
//! architectures and `minKernel`.
//!
//! The built-in profile is Docker's default with one addition: `pivot_root`
//! for sandboxes that keep `CAP_SYS_ADMIN` (Mesos' seccomp documentation
//! asks for it too: its containerizer pivots inside confined containers),
//! which butte's executors need to pivot their tasks into their images.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;
use std::io::{Read, Seek};

/// The built-in default profile, equal in effect to Docker's.
pub const DEFAULT_PROFILE: &str = include_str!("default.json");

/// Why a profile cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile {name}: {message}")]
    Profile { name: String, message: String },
    #[error("seccomp profile {name}: libseccomp: {source}")]
    Compile {
        name: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("seccomp profile {name}: export the program: {source}")]
    Export {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<Syscall>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Arg>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

/// What the entries of a profile are matched against.
#[derive(Debug, Clone)]
pub struct Target {
    /// The capabilities the sandbox keeps (`CAP_CHOWN`, ...).
    pub capabilities: Vec<String>,
    /// The running kernel's version, (major, minor).
    pub kernel: (u32, u32),
}

impl Target {
    /// The running kernel and the given capabilities.
    pub fn host(capabilities: Vec<String>) -> Self {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Target {
            capabilities,
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        }
    }
}

fn parse_kernel(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().unwrap_or("0").parse().unwrap_or(0);
    Some((major, minor))
}

/// The native architecture's names: libseccomp's and Go's (Docker writes
/// `amd64` in `includes.arches`).
fn native_arch_names() -> &'static [&'static str] {
    if cfg!(target_arch = "x86_64") {
        &["SCMP_ARCH_X86_64", "amd64", "x86_64"]
    } else if cfg!(target_arch = "aarch64") {
        &["SCMP_ARCH_AARCH64", "arm64", "aarch64"]
    } else {
        &[]
    }
}

fn action(name: &str, errno: Option<u32>, default_errno: u32) -> Option<ScmpAction> {
    Some(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno.unwrap_or(default_errno) as i32),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno.unwrap_or(default_errno) as u16),
        _ => return None,
    })
}

fn compare(a: &Arg) -> Option<ScmpArgCompare> {
    let op = match a.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        // Docker: value is the mask, valueTwo the value compared.
        "SCMP_CMP_MASKED_EQ" => {
            return Some(ScmpArgCompare::new(
                a.index,
                ScmpCompareOp::MaskedEqual(a.value),
                a.value_two,
            ))
        }
        _ => return None,
    };
    Some(ScmpArgCompare::new(a.index, op, a.value))
}

/// Whether an entry applies to `target` on the native architecture.
fn applies(s: &Syscall, target: &Target) -> bool {
    let native = native_arch_names();
    let has_cap = |c: &String| target.capabilities.iter().any(|k| k == c);
    let kernel_at_least = |v: &Option<String>| match v.as_deref().and_then(parse_kernel) {
        Some(min) => target.kernel >= min,
        None => true,
    };
    if s.excludes
        .arches
        .iter()
        .any(|a| native.contains(&a.as_str()))
        || s.excludes.caps.iter().any(has_cap)
        || (s.excludes.min_kernel.is_some() && kernel_at_least(&s.excludes.min_kernel))
    {
        return false;
    }
    (s.includes.arches.is_empty()
        || s.includes
            .arches
            .iter()
            .any(|a| native.contains(&a.as_str())))
        && s.includes.caps.iter().all(has_cap)
        && kernel_at_least(&s.includes.min_kernel)
}

/// Compiles a profile (Docker's JSON) for `target` into the raw BPF
/// program (`struct sock_filter` array) that [`install`] loads.
pub fn compile(name: &str, json: &str, target: &Target) -> Result<Vec<u8>, SeccompError> {
    let bad = |message: String| SeccompError::Profile {
        name: name.to_string(),
        message,
    };
    let lib = |source| SeccompError::Compile {
        name: name.to_string(),
        source,
    };
    let profile: Profile =
        serde_json::from_str(json).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let default_errno = profile.default_errno_ret.unwrap_or(libc::EPERM as u32);
    let default = action(&profile.default_action, None, default_errno).ok_or_else(|| {
        bad(format!(
            "unknown default action {:?}",
            profile.default_action
        ))
    })?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib)?;
    // The kernel refuses new_privs-less filters from unprivileged callers;
    // the helper sets no_new_privs itself before installing.
    ctx.set_ctl_nnp(false).map_err(lib)?;
    let native = native_arch_names();
    let mut arches: Vec<String> = Vec::new();
    for m in &profile.arch_map {
        if native.contains(&m.architecture.as_str()) {
            arches.extend(m.sub_architectures.iter().cloned());
        }
    }
    if profile.arch_map.is_empty() {
        arches.extend(
            profile
                .architectures
                .iter()
                .filter(|a| !native.contains(&a.as_str()))
                .cloned(),
        );
    }
    for a in &arches {
        let arch: ScmpArch = a
            .parse()
            .map_err(|_| bad(format!("unknown architecture {a:?}")))?;
        ctx.add_arch(arch).map_err(lib)?;
    }
    for s in profile.syscalls.iter().filter(|s| applies(s, target)) {
        let act = action(&s.action, s.errno_ret, default_errno)
            .ok_or_else(|| bad(format!("unknown action {:?}", s.action)))?;
        if act == default {
            continue;
        }
        let conds: Vec<ScmpArgCompare> = s
            .args
            .iter()
            .map(|a| compare(a).ok_or_else(|| bad(format!("unknown operator {:?}", a.op))))
            .collect::<Result<_, _>>()?;
        // Conditions on distinct arguments are ANDed in one rule; several
        // on the same argument cannot be, so each becomes its own rule
        // (ORed), as runc does.
        let mut indexes: Vec<u32> = s.args.iter().map(|a| a.index).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let rules: Vec<Vec<ScmpArgCompare>> = if indexes.len() == s.args.len() {
            vec![conds]
        } else {
            conds.into_iter().map(|c| vec![c]).collect()
        };
        for n in s.names.iter().chain(s.name.iter()) {
            // A name this libseccomp does not know (a newer call) is
            // skipped, as runc does: the default action covers it.
            let Ok(call) = ScmpSyscall::from_name(n) else {
                continue;
            };
            for conds in &rules {
                let r = if conds.is_empty() {
                    ctx.add_rule(act, call)
                } else {
                    ctx.add_rule_conditional(act, call, conds)
                };
                r.map_err(lib)?;
            }
        }
    }
    let export = |source| SeccompError::Export {
        name: name.to_string(),
        source,
    };
    let memfd = nix::sys::memfd::memfd_create(
        c"butte-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| export(e.into()))?;
    let mut file = std::fs::File::from(memfd);
    ctx.export_bpf(&file).map_err(lib)?;
    file.rewind().map_err(export)?;
    let mut prog = Vec::new();
    file.read_to_end(&mut prog).map_err(export)?;
    Ok(prog)
}

/// Installs a compiled program on the calling thread (the single-threaded
/// launch helper, after `no_new_privs`, right before exec).
pub fn install(prog: &[u8]) -> std::io::Result<()> {
    super::sys::seccomp_install(prog)
}

#[cfg(test)]
mod tests;
