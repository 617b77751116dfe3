//! Looking up users and groups in a sandbox's `/etc/passwd` and
//! `/etc/group` (read inside the sandbox, after the pivot, so that the
//! image's files are the ones read and no host path is followed).

/// A resolved user: ids, supplementary groups and home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// Finds `name` (or the numeric `uid`) in passwd text. Numeric ids need no
/// entry: an unknown uid gets gid = uid's group if given, else 0 as Docker.
pub fn resolve(
    passwd: &str,
    group: &str,
    name: Option<&str>,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Option<Resolved> {
    let entry = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let matches = match (name, uid) {
            (Some(n), _) => f[0] == n,
            (None, Some(u)) => f[2].parse() == Ok(u),
            (None, None) => false,
        };
        matches.then(|| {
            (
                f[0].to_string(),
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
                f[5].to_string(),
            )
        })
    });
    let (user_name, uid, primary, home) = match (entry, uid) {
        (Some((n, Some(u), Some(g), h)), _) => (Some(n), u, g, h),
        (Some(_), _) => return None,
        (None, Some(u)) => (None, u, gid.unwrap_or(0), "/".to_string()),
        (None, None) => return None,
    };
    let gid = gid.unwrap_or(primary);
    let mut groups = vec![gid];
    if let Some(n) = &user_name {
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == n) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
        }
    }
    Some(Resolved {
        uid,
        gid,
        groups,
        home,
    })
}

/// Takes `who`'s supplementary groups, gid and uid, in that order; on
/// failure, the step that failed and why.
pub fn switch_ids(who: &Resolved) -> Result<(), (String, nix::Error)> {
    let groups: Vec<nix::unistd::Gid> = who
        .groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| ("setgroups".to_string(), e))?;
    let gid = nix::unistd::Gid::from_raw(who.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| (format!("setgid {}", who.gid), e))?;
    let uid = nix::unistd::Uid::from_raw(who.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| (format!("setuid {}", who.uid), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nbroken:x:zz\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\n";

    #[test]
    fn by_name_with_supplementary_groups() {
        let r = resolve(PASSWD, GROUP, Some("app"), None, None).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.groups, r.home.as_str()),
            (1000, 1000, vec![1000, 10], "/home/app")
        );
    }

    #[test]
    fn numeric_ids_need_no_entry() {
        let r = resolve(PASSWD, GROUP, None, Some(4242), Some(7)).unwrap();
        assert_eq!((r.uid, r.gid, r.groups), (4242, 7, vec![7]));
        let r = resolve(PASSWD, GROUP, None, Some(0), None).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn unknown_name_is_none() {
        assert_eq!(resolve(PASSWD, GROUP, Some("nobody"), None, None), None);
        assert_eq!(resolve(PASSWD, GROUP, Some("broken"), None, None), None);
    }
}
