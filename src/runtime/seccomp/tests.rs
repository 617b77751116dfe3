use super::*;

fn default_target() -> Target {
    Target {
        capabilities: crate::runtime::default_capabilities(),
        kernel: (6, 1),
    }
}

#[test]
fn default_profile_compiles_to_a_program() {
    let prog = compile("default", DEFAULT_PROFILE, &default_target()).unwrap();
    assert!(!prog.is_empty() && prog.len() % 8 == 0, "{}", prog.len());
    let mut admin = default_target();
    admin.capabilities.push("CAP_SYS_ADMIN".into());
    let with_admin = compile("default", DEFAULT_PROFILE, &admin).unwrap();
    assert_ne!(
        prog, with_admin,
        "CAP_SYS_ADMIN entries must change the program"
    );
}

#[test]
fn entries_follow_capabilities_arches_and_kernel() {
    let profile: Profile = serde_json::from_str(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
            {"names":["b"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_SYS_ADMIN"]}},
            {"names":["c"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["s390x"]}},
            {"names":["d"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}},
            {"names":["e"],"action":"SCMP_ACT_ALLOW","excludes":{"minKernel":"4.8"}}
        ]}"#,
    )
    .unwrap();
    let t = default_target();
    let kept: Vec<&str> = profile
        .syscalls
        .iter()
        .filter(|s| applies(s, &t))
        .map(|s| s.names[0].as_str())
        .collect();
    assert_eq!(kept, ["b", "d"]);
    let mut admin = t.clone();
    admin.capabilities.push("CAP_SYS_ADMIN".into());
    admin.kernel = (4, 4);
    let kept: Vec<&str> = profile
        .syscalls
        .iter()
        .filter(|s| applies(s, &admin))
        .map(|s| s.names[0].as_str())
        .collect();
    assert_eq!(kept, ["a", "e"]);
}

#[test]
fn bad_profiles_are_named_errors() {
    let t = default_target();
    let e = compile("x", "{", &t).unwrap_err().to_string();
    assert!(e.starts_with("seccomp profile x: invalid JSON"), "{e}");
    let e = compile("x", r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, &t)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown default action"), "{e}");
    let e = compile(
        "x",
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_WAT"}]}]}"#,
        &t,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown operator"), "{e}");
    // Unknown system call names are skipped, as runc does.
    compile(
        "x",
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["no_such_call","read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        &t,
    )
    .unwrap();
}

#[test]
fn kernel_versions_parse() {
    assert_eq!(parse_kernel("6.18.0-1-amd64"), Some((6, 18)));
    assert_eq!(parse_kernel("4.8"), Some((4, 8)));
    assert_eq!(parse_kernel("5"), Some((5, 0)));
    assert_eq!(parse_kernel("x"), None);
}
