//! Generates the protocol types from `proto/` with prost. `protox` parses
//! the .proto files in-process, so no `protoc` is needed. Every message also
//! implements `prost_reflect::ReflectMessage` against the descriptor set
//! written to `$OUT_DIR/file_descriptor_set.bin` (see `src/proto/mod.rs`):
//! the impls are added after each `prost::Name` impl prost writes, because
//! prost-reflect's derive feature is not enabled.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "mesos/mesos.proto",
    "mesos/v1/mesos.proto",
    "mesos/v1/executor/executor.proto",
    "mesos/v1/agent/agent.proto",
    "messages/messages.proto",
    "mesos/authentication/authentication.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build.rs");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    link_libseccomp(&out_dir)?;
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_source_info(false).include_imports(true);
    compiler.open_files(PROTOS)?;
    std::fs::write(
        out_dir.join("file_descriptor_set.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    let mut config = prost_build::Config::new();
    config.enable_type_names().btree_map(["."]);
    let fds = compiler.file_descriptor_set();
    let mut packages: Vec<String> = fds.file.iter().map(|f| f.package().to_string()).collect();
    // Several files may share a package (and its one generated file).
    packages.sort();
    packages.dedup();
    config.compile_fds(fds)?;
    for package in packages {
        add_reflect_impls(&out_dir.join(format!("{package}.rs")))?;
    }
    Ok(())
}

/// Adds `impl ReflectMessage for T` next to each `impl prost::Name for T`
/// in one generated file, looking the descriptor up by its full name.
fn add_reflect_impls(path: &std::path::Path) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len() * 2);
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("impl ::prost::Name for ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let ty = rest.trim_end_matches(" {");
        // The first string literal after `fn full_name()` (prettyplease may
        // put `.into()` on its own line).
        let full_name = lines[i..]
            .iter()
            .take(10)
            .skip_while(|l| !l.contains("fn full_name()"))
            .find_map(|l| l.trim().strip_prefix('"').and_then(|r| r.split('"').next()))
            .ok_or_else(|| std::io::Error::other(format!("no full name for {ty}")))?;
        let indent = &line[..line.len() - trimmed.len()];
        out.push_str(&format!(
            "{indent}impl ::prost_reflect::ReflectMessage for {ty} {{\n\
             {indent}    fn descriptor(&self) -> ::prost_reflect::MessageDescriptor {{\n\
             {indent}        crate::proto::message_descriptor(\"{full_name}\")\n\
             {indent}    }}\n\
             {indent}}}\n"
        ));
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(path, out)
}

/// The `libseccomp` crate links `-lseccomp`, which needs the development
/// symlink `libseccomp.so` (Debian's libseccomp-dev). A machine with only
/// the runtime library (`libseccomp.so.2`, present wherever systemd or apt
/// is) still builds: a private symlink to it is put on the link path.
fn link_libseccomp(out_dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    const DIRS: &[&str] = &[
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
        "/lib/aarch64-linux-gnu",
    ];
    if std::env::var_os("LIBSECCOMP_LIB_PATH").is_some()
        || DIRS
            .iter()
            .any(|d| std::path::Path::new(d).join("libseccomp.so").exists())
    {
        return Ok(());
    }
    let Some(lib) = DIRS
        .iter()
        .map(|d| std::path::Path::new(d).join("libseccomp.so.2"))
        .find(|p| p.exists())
    else {
        return Err(
            "libseccomp not found: install libseccomp2 (Debian: apt-get install libseccomp-dev)"
                .into(),
        );
    };
    let dir = out_dir.join("libseccomp");
    std::fs::create_dir_all(&dir)?;
    let link = dir.join("libseccomp.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(lib, &link)?;
    println!("cargo:rustc-link-search=native={}", dir.display());
    Ok(())
}
