//! The device allowlist of a sandbox, as cgroup v1 `devices.*` writes or as
//! a cgroup v2 `BPF_PROG_TYPE_CGROUP_DEVICE` program.
//!
//! The program is assembled here as plain instructions (tested without
//! root); `sys` loads and attaches it. It reads the kernel's
//! `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! (`access_type` = access << 16 | type) and returns 1 (allow) when a rule
//! matches, 0 (deny, `EPERM`) otherwise:
//! ```text
//! r2 = type  r3 = access  r4 = major  r5 = minor
//! per rule:  if r2 != kind goto next; r1 = r3 & !allowed; if r1 != 0 goto next;
//!            [if r4 != major goto next;] [if r5 != minor goto next;] return 1
//! return 0
//! ```

use super::{Controller, Write};
use crate::runtime::spec::{DeviceKind, DeviceRule, Devices};

/// The `devices.allow` / `devices.deny` writes (v1): deny everything, then
/// allow each rule. `All` writes nothing: a new group inherits its
/// parent's list, which cannot be widened from below anyway.
pub fn v1_writes(devices: &Devices) -> Vec<Write> {
    let w = |file, value: String| Write {
        controller: Controller::Devices,
        file,
        value,
        optional: false,
    };
    match devices {
        Devices::All => Vec::new(),
        Devices::Allow(rules) => std::iter::once(w("devices.deny", "a".into()))
            .chain(rules.iter().map(|r| w("devices.allow", v1_rule(r))))
            .collect(),
    }
}

/// A rule in the v1 `devices.allow` syntax: `c 1:3 rwm`, `b *:* m`.
fn v1_rule(r: &DeviceRule) -> String {
    let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
    let kind = match r.kind {
        DeviceKind::Char => 'c',
        DeviceKind::Block => 'b',
    };
    format!("{kind} {}:{} {}", num(r.major), num(r.minor), r.access)
}

// Instruction classes and operations of eBPF (linux/bpf_common.h, bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const ALU64_RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const ALU64_MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// linux/bpf.h: enum bpf_devcg_{dev_type,access} values.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One `struct bpf_insn` as the kernel lays it out (little-endian):
/// code, dst and src registers, offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst & 0xf | (src & 0xf) << 4) << 8
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

/// The access bits of a rule's `rwm` letters.
fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |acc, c| {
        acc | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// The instructions of one rule's block; a jump to `next` skips the rest
/// of the block (offsets are patched once the block's length is known).
fn rule_block(r: &DeviceRule) -> Vec<u64> {
    // (code, dst, src, imm, jumps to next)
    let mut ops: Vec<(u8, u8, u8, i32, bool)> = Vec::new();
    let kind = match r.kind {
        DeviceKind::Char => DEV_CHAR,
        DeviceKind::Block => DEV_BLOCK,
    };
    ops.push((JMP_JNE_K, 2, 0, kind, true));
    ops.push((ALU64_MOV_X, 1, 3, 0, false));
    ops.push((ALU64_AND_K, 1, 0, !access_bits(&r.access), false));
    ops.push((JMP_JNE_K, 1, 0, 0, true));
    if let Some(major) = r.major {
        ops.push((JMP_JNE_K, 4, 0, major as i32, true));
    }
    if let Some(minor) = r.minor {
        ops.push((JMP_JNE_K, 5, 0, minor as i32, true));
    }
    ops.push((ALU64_MOV_K, 0, 0, 1, false));
    ops.push((JMP_EXIT, 0, 0, 0, false));
    let len = ops.len();
    ops.iter()
        .enumerate()
        .map(|(i, &(code, dst, src, imm, jump))| {
            let off = if jump { (len - i - 1) as i16 } else { 0 };
            insn(code, dst, src, off, imm)
        })
        .collect()
}

/// The cgroup v2 device program allowing exactly `rules`.
pub fn bpf_program(rules: &[DeviceRule]) -> Vec<u64> {
    let mut prog = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules {
        prog.extend(rule_block(r));
    }
    prog.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::default_device_rules;

    /// Runs the program the way the kernel would on one device access.
    fn eval(prog: &[u64], kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16 | kind) as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (code, dst, src) = (i as u8, (i >> 8) as usize & 0xf, (i >> 12) as usize & 0xf);
            let off = (i >> 16) as u16 as i16;
            let imm = (i >> 32) as u32 as i32 as i64 as u64;
            pc += 1;
            match code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[off as usize / 4]);
                }
                ALU64_AND_K => r[dst] &= imm,
                ALU64_RSH_K => r[dst] >>= imm,
                ALU64_MOV_K => r[dst] = imm,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K => {
                    if r[dst] != imm {
                        pc = (pc as i64 + i64::from(off)) as usize;
                    }
                }
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn default_program_allows_exactly_the_sandbox_devices() {
        let prog = bpf_program(&default_device_rules());
        let rw = ACC_READ | ACC_WRITE;
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ] {
            assert_eq!(
                eval(&prog, DEV_CHAR, rw, major, minor),
                1,
                "{major}:{minor}"
            );
        }
        assert_eq!(eval(&prog, DEV_CHAR, rw, 136, 7), 1, "pts");
        // Host disks, loop devices, /dev/kmsg (1:11), /dev/mem (1:1): denied.
        assert_eq!(eval(&prog, DEV_BLOCK, ACC_READ, 7, 0), 0);
        assert_eq!(eval(&prog, DEV_BLOCK, ACC_WRITE, 8, 0), 0);
        assert_eq!(eval(&prog, DEV_CHAR, ACC_READ, 1, 11), 0);
        assert_eq!(eval(&prog, DEV_CHAR, rw, 1, 1), 0);
        assert_eq!(eval(&prog, DEV_BLOCK, ACC_READ | ACC_MKNOD, 7, 0), 0);
        // Creating any node is allowed (runc's default); opening it is not.
        assert_eq!(eval(&prog, DEV_BLOCK, ACC_MKNOD, 7, 0), 1);
        assert_eq!(eval(&prog, DEV_CHAR, ACC_MKNOD, 1, 11), 1);
    }

    #[test]
    fn empty_rules_deny_everything() {
        let prog = bpf_program(&[]);
        assert_eq!(eval(&prog, DEV_CHAR, ACC_READ, 1, 3), 0);
    }

    #[test]
    fn v1_writes_deny_all_then_allow() {
        let w = v1_writes(&Devices::default());
        assert_eq!((w[0].file, w[0].value.as_str()), ("devices.deny", "a"));
        let allowed: Vec<&str> = w[1..].iter().map(|w| w.value.as_str()).collect();
        assert_eq!(&allowed[..3], ["c *:* m", "b *:* m", "c 1:3 rwm"]);
        assert!(allowed.contains(&"c 136:* rwm"));
        assert!(w[1..].iter().all(|w| w.file == "devices.allow"));
        assert!(v1_writes(&Devices::All).is_empty());
    }
}
