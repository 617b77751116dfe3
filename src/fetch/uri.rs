//! URI specs, with the fields and defaults of Mesos' `CommandInfo.URI`, and
//! the plan for one of them: where it comes from, the name it gets in the
//! sandbox, and whether it is extracted.
//!
//! As in Mesos: `extract` defaults to true and is ignored for `executable`
//! URIs; the file is named after the last path segment of the URI unless
//! `output_file` says otherwise; the archive format is chosen by that name
//! (`.tar`, `.tgz`, `.tar.gz`, `.tbz2`, `.tar.bz2`, `.txz`, `.tar.xz`,
//! `.zip`, and `.gz` for a single compressed file). Unlike Mesos, a query
//! string or fragment is not part of the name, and an `output_file` may not
//! leave the sandbox with `..`.

use super::FetchError;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// One URI to fetch into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriSpec {
    /// `http://`, `https://`, `file://` or an absolute path.
    pub value: String,
    /// Make the file executable (`0755`); it is then never extracted.
    pub executable: bool,
    /// Unpack an archive into the sandbox (default true).
    pub extract: bool,
    /// Go through the agent-wide fetcher cache.
    pub cache: bool,
    /// The file's path in the sandbox, instead of the URI's last segment.
    pub output_file: Option<String>,
}

impl UriSpec {
    /// A URI with Mesos' defaults: extracted, not executable, not cached.
    pub fn new(value: impl Into<String>) -> Self {
        UriSpec {
            value: value.into(),
            executable: false,
            extract: true,
            cache: false,
            output_file: None,
        }
    }
}

/// The command line form: `URL[,extract|noextract][,executable][,cache][,output_file=NAME]`.
/// Options are taken from the end, so a URL may itself contain commas.
impl FromStr for UriSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts: Vec<&str> = s.split(',').collect();
        let mut spec = UriSpec::new("");
        let (mut extract, mut noextract) = (false, false);
        while parts.len() > 1 {
            let last = parts[parts.len() - 1];
            match last {
                "extract" => extract = true,
                "noextract" => noextract = true,
                "executable" => spec.executable = true,
                "cache" => spec.cache = true,
                _ => match last
                    .strip_prefix("output_file=")
                    .or_else(|| last.strip_prefix("output-file="))
                {
                    Some(name) if !name.is_empty() => spec.output_file = Some(name.to_string()),
                    Some(_) => return Err(format!("{s:?}: output_file needs a name")),
                    None => break,
                },
            }
            parts.pop();
        }
        if extract && noextract {
            return Err(format!("{s:?}: both extract and noextract"));
        }
        spec.extract = !noextract;
        spec.value = parts.join(",");
        if spec.value.trim().is_empty() {
            return Err(format!(
                "{s:?} is not URL[,extract|noextract][,executable][,cache][,output_file=NAME]"
            ));
        }
        Ok(spec)
    }
}

/// Where the bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Http(String),
    Local(PathBuf),
}

/// How an artifact is unpacked, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// A tar stream, compressed or not (the compression is sniffed).
    Tar,
    Zip,
    /// One gzip-compressed file, written without its `.gz`.
    Gzip,
}

impl Format {
    pub(crate) fn of(name: &str) -> Option<Format> {
        const TARS: [&str; 7] = [
            ".tar", ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz",
        ];
        if TARS.iter().any(|x| name.ends_with(x)) {
            Some(Format::Tar)
        } else if name.ends_with(".zip") {
            Some(Format::Zip)
        } else if name.ends_with(".gz") {
            Some(Format::Gzip)
        } else {
            None
        }
    }
}

/// What to do for one URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The URI as given, without leading whitespace (for messages and keys).
    pub uri: String,
    pub source: Source,
    /// Relative path of the file in the sandbox.
    pub output: PathBuf,
    /// `Some` when the artifact is to be unpacked.
    pub format: Option<Format>,
    pub executable: bool,
    pub cache: bool,
}

impl Plan {
    pub(crate) fn new(spec: &UriSpec) -> Result<Plan, FetchError> {
        let uri = spec.value.trim_start().to_string();
        let invalid = |reason: &str| FetchError::InvalidUri {
            uri: uri.clone(),
            reason: reason.to_string(),
        };
        let (source, base) = parse_source(&uri).map_err(invalid)?;
        let output = match &spec.output_file {
            Some(name) => output_path(name).map_err(invalid)?,
            None => PathBuf::from(base),
        };
        let name = output.file_name().unwrap_or_default().to_string_lossy();
        let format = if spec.extract && !spec.executable {
            Format::of(&name)
        } else {
            None
        };
        // A `.gz` is decompressed to its name without `.gz`, which must
        // still be a file name.
        if format == Some(Format::Gzip) && matches!(name.strip_suffix(".gz"), Some("" | "." | ".."))
        {
            return Err(invalid(
                "nothing usable is left of the file name once `.gz` is removed",
            ));
        }
        Ok(Plan {
            uri,
            source,
            output,
            format,
            executable: spec.executable,
            cache: spec.cache,
        })
    }

    /// The name a `.gz` single file is decompressed to, at the sandbox's
    /// top level (as Mesos does, whatever directory `output_file` names).
    pub(crate) fn gunzipped_name(&self) -> OsString {
        let name = self
            .output
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        OsString::from(name.strip_suffix(".gz").unwrap_or(&name))
    }
}

/// The source and the default file name (the last path segment).
fn parse_source(uri: &str) -> Result<(Source, String), &'static str> {
    if let Some(rest) = uri.strip_prefix("file://") {
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err("a file uri needs an absolute path (file:///path)");
        }
        return local(path);
    }
    if let Some((scheme, rest)) = uri.split_once("://") {
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return Err("unsupported scheme (http, https, file and absolute paths are)");
        }
        let path = rest.split(['?', '#']).next().unwrap_or("");
        let Some((host, path)) = path.split_once('/') else {
            return Err("no file name in the uri's path");
        };
        if host.is_empty() {
            return Err("no host");
        }
        let base = path.rsplit('/').next().unwrap_or("");
        if matches!(base, "" | "." | "..") {
            return Err("no file name in the uri's path");
        }
        return Ok((Source::Http(uri.to_string()), base.to_string()));
    }
    if !uri.starts_with('/') {
        return Err("not a url or an absolute path (relative paths are not supported)");
    }
    local(uri)
}

fn local(path: &str) -> Result<(Source, String), &'static str> {
    let p = Path::new(path);
    match p.file_name() {
        Some(name) if !path.ends_with('/') => Ok((
            Source::Local(p.to_path_buf()),
            name.to_string_lossy().into_owned(),
        )),
        _ => Err("the path names no file"),
    }
}

/// A relative path beneath the sandbox.
fn output_path(name: &str) -> Result<PathBuf, &'static str> {
    if name.is_empty() || name.ends_with('/') {
        return Err("output_file must name a file");
    }
    if name.contains('\0') {
        return Err("output_file contains a NUL byte");
    }
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("output_file must be a relative path within the sandbox")
            }
            Component::ParentDir => return Err("output_file leaves the sandbox (`..`)"),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("output_file must name a file");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(s: &str) -> Result<Plan, String> {
        Plan::new(&s.parse::<UriSpec>()?).map_err(|e| e.to_string())
    }

    #[test]
    fn command_line_form_with_mesos_defaults() {
        let s: UriSpec = "http://h/app.jar".parse().unwrap();
        assert_eq!(s, UriSpec::new("http://h/app.jar"));
        assert!(s.extract && !s.executable && !s.cache);
        let s: UriSpec = "http://h/a,b.sh,executable,cache,output_file=bin/run"
            .parse()
            .unwrap();
        assert_eq!(s.value, "http://h/a,b.sh");
        assert!(s.executable && s.cache);
        assert_eq!(s.output_file.as_deref(), Some("bin/run"));
        let s: UriSpec = "/srv/x.tgz,noextract".parse().unwrap();
        assert!(!s.extract);
        for bad in ["", ",cache", "x,extract,noextract", "x,output_file="] {
            assert!(bad.parse::<UriSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_sources() {
        let p = plan("  http://127.0.0.1:8080/dir/app.jar?token=1#frag").unwrap();
        assert_eq!(p.uri, "http://127.0.0.1:8080/dir/app.jar?token=1#frag");
        assert_eq!(p.source, Source::Http(p.uri.clone()));
        assert_eq!(p.output, Path::new("app.jar"));
        assert_eq!(p.format, None);
        let p = plan("file:///srv/pkg.tar.gz").unwrap();
        assert_eq!(p.source, Source::Local("/srv/pkg.tar.gz".into()));
        assert_eq!(p.format, Some(Format::Tar));
        let p = plan("file://localhost/srv/a.zip").unwrap();
        assert_eq!(p.source, Source::Local("/srv/a.zip".into()));
        let p = plan("/srv/data.csv.gz,output_file=in/d.csv.gz").unwrap();
        assert_eq!(p.output, Path::new("in/d.csv.gz"));
        assert_eq!(p.format, Some(Format::Gzip));
        assert_eq!(p.gunzipped_name(), "d.csv");
    }

    #[test]
    fn formats_follow_mesos_and_executable_wins() {
        for (name, want) in [
            ("a.tar", Some(Format::Tar)),
            ("a.tgz", Some(Format::Tar)),
            ("a.tar.gz", Some(Format::Tar)),
            ("a.tbz2", Some(Format::Tar)),
            ("a.tar.bz2", Some(Format::Tar)),
            ("a.txz", Some(Format::Tar)),
            ("a.tar.xz", Some(Format::Tar)),
            ("a.zip", Some(Format::Zip)),
            ("a.gz", Some(Format::Gzip)),
            ("a.jar", None),
            ("a.TAR", None),
        ] {
            assert_eq!(Format::of(name), want, "{name}");
        }
        assert_eq!(plan("/x/a.tgz,executable").unwrap().format, None);
        assert_eq!(plan("/x/a.tgz,noextract").unwrap().format, None);
    }

    #[test]
    fn bad_uris_are_refused_naming_the_uri() {
        for (uri, why) in [
            ("ftp://h/a", "unsupported scheme"),
            ("hdfs://h/a", "unsupported scheme"),
            ("http://h/", "no file name"),
            ("http://h", "no file name"),
            ("http:///a", "no host"),
            ("http://h/a/..", "no file name"),
            ("relative/a.jar", "relative paths"),
            ("file://h/a", "absolute path"),
            ("/srv/", "names no file"),
            ("/srv/a,output_file=/etc/passwd", "relative path"),
            ("/srv/a,output_file=../x", "leaves the sandbox"),
            ("/srv/a,output_file=d/", "must name a file"),
            // Found by fuzzing (fuzz/run.sh uri): would be decompressed to
            // "", "." or "..".
            ("/wrv/.gz", "once `.gz` is removed"),
            ("http://h/..gz", "once `.gz` is removed"),
            ("/srv/a,output_file=d/...gz", "once `.gz` is removed"),
        ] {
            let e = plan(uri).unwrap_err();
            let shown = uri.split(",output").next().unwrap();
            assert!(e.contains(why) && e.contains(shown), "{uri}: {e}");
        }
    }
}
