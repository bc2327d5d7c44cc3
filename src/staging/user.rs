//! The user the phases run as, decided on the host from the stack image's own /etc/passwd and
//! /etc/group: `--user` when given, else vcap when the stack has it (the cflinuxfs stacks do), else
//! the image's configured user, else root. Its numeric ids own the app and the lifecycle folders.

use crate::error::{Error, Result};

/// The staging user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagingUser {
    /// What `docker exec --user` is given: the name or uid[:gid] as chosen; "" for root.
    pub exec: String,
    pub uid: u32,
    pub gid: u32,
}

impl StagingUser {
    pub fn root() -> StagingUser {
        StagingUser {
            exec: String::new(),
            uid: 0,
            gid: 0,
        }
    }

    /// For the reports: the name as chosen, "root" for root.
    pub fn shown(&self) -> String {
        if self.exec.is_empty() {
            "root".into()
        } else {
            self.exec.clone()
        }
    }
}

/// One `name:x:uid:gid:…` entry of a passwd or group file.
fn entry<'a>(file: &'a str, name: &str) -> Option<(u32, u32, &'a str)> {
    file.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| {
            let id = f[2].parse().ok()?;
            let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
            Some((id, gid, f[0]))
        })?
    })
}

/// Choose the staging user: `wanted` (--user), else vcap when `passwd` has it, else the image's
/// configured user `image_user`, else root. A name must be in `passwd` (a group name in `group`);
/// numbers are taken as they are.
pub fn resolve(
    wanted: Option<&str>,
    image_user: Option<&str>,
    passwd: &str,
    group: &str,
) -> Result<StagingUser> {
    let chosen = match wanted {
        Some(u) => u.to_string(),
        None if entry(passwd, "vcap").is_some() => "vcap".into(),
        None => image_user.unwrap_or_default().to_string(),
    };
    if chosen.is_empty() || chosen == "root" || chosen == "0" || chosen == "0:0" {
        return Ok(StagingUser {
            exec: if chosen == "root" || chosen.is_empty() {
                String::new()
            } else {
                chosen
            },
            uid: 0,
            gid: 0,
        });
    }
    let (user, group_part) = match chosen.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (chosen.as_str(), None),
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, entry(passwd, user).map_or(n, |e| e.1)),
        Err(_) => {
            let (uid, gid, _) = entry(passwd, user).ok_or_else(|| unknown(&chosen, "user"))?;
            (uid, gid)
        }
    };
    let gid = match group_part {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => entry(group, g).ok_or_else(|| unknown(&chosen, "group"))?.0,
        },
    };
    Ok(StagingUser {
        exec: chosen.clone(),
        uid,
        gid,
    })
}

fn unknown(chosen: &str, what: &str) -> Error {
    Error::BadArgument {
        option: "--user",
        value: chosen.to_string(),
        expected: format!(
            "expected a user the stack image knows: its /etc/passwd (and /etc/group) has no such {what}; give a uid[:gid] instead"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nvcap:x:2000:2000::/home/vcap:/bin/sh\ncnb:x:1001:1000::/home/cnb:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nvcap:x:2000:\ncnb:x:1000:\nstaff:x:50:\n";

    fn r(wanted: Option<&str>, image: Option<&str>) -> Result<StagingUser> {
        resolve(wanted, image, PASSWD, GROUP)
    }

    #[test]
    fn vcap_when_the_stack_has_it_else_the_image_user_else_root() {
        let u = r(None, Some("cnb")).unwrap();
        assert_eq!((u.exec.as_str(), u.uid, u.gid), ("vcap", 2000, 2000));
        let no_vcap = "root:x:0:0::/:/bin/sh\ncnb:x:1001:1000::/:/bin/sh\n";
        let u = resolve(None, Some("cnb"), no_vcap, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1001, 1000));
        assert_eq!(
            resolve(None, None, no_vcap, GROUP).unwrap(),
            StagingUser::root()
        );
        assert_eq!(r(Some("root"), None).unwrap().shown(), "root");
    }

    #[test]
    fn user_option_takes_names_and_numbers() {
        let u = r(Some("cnb:staff"), None).unwrap();
        assert_eq!((u.uid, u.gid, u.exec.as_str()), (1001, 50, "cnb:staff"));
        let u = r(Some("4242:77"), None).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 77));
        let u = r(Some("4242"), None).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 4242));
        assert!(r(Some("nobody-here"), None)
            .unwrap_err()
            .to_string()
            .contains("no such user"));
        assert!(r(Some("vcap:nogroup"), None)
            .unwrap_err()
            .to_string()
            .contains("no such group"));
    }
}
