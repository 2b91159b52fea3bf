//! Reading `vzlist`, choosing CTIDs and kloud's ownership mark (the description), kept apart
//! from the commands so they are tested without a machine.

use std::collections::BTreeSet;

use kloud_provider_api::compute::{ContainerState, Observed};

/// How a kloud container's description starts.
pub const MARK_PREFIX: &str = "kloud owner=";

/// The description marking a container as kloud's: made for `owner` as HostDB record
/// `record`. Characters vzctl's config file or a shell line could take apart (control
/// characters, quotes, backslashes, whitespace inside a value) are written as `_`.
pub fn mark(owner: &str, record: &str) -> String {
    let clean = |v: &str| -> String {
        v.chars()
            .map(|c| {
                if c.is_control() || c.is_whitespace() || matches!(c, '"' | '\\' | '\'' | '$' | '`')
                {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    };
    format!("{MARK_PREFIX}{} record={}", clean(owner), clean(record))
}

/// Whether a `vzlist -o description` value is kloud's mark.
pub fn is_marked(description: &str) -> bool {
    description.trim().starts_with(MARK_PREFIX)
}

/// The fields the driver asks `vzlist` for; `ip` last because it may hold several addresses.
pub const FIELDS: &str = "ctid,name,hostname,status,ip";

/// CTIDs up to this one are left to the operator (OpenVZ reserves 0 and 1; sites number
/// hand-made containers low), so kloud allocates above it.
pub const RESERVED_UP_TO: u32 = 100;

/// Parses `vzlist -a -H -o ctid,name,hostname,status,ip`. A container's kloud name is its
/// OpenVZ name, or its hostname when it has no name (`-`). Rows that do not parse are skipped
/// and returned so the caller can warn about them.
pub fn parse(out: &str) -> (Vec<Observed>, Vec<String>) {
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let parsed = match cols.as_slice() {
            [ctid, name, hostname, status, ips @ ..] if ctid.parse::<u32>().is_ok() => {
                let name = if *name != "-" { *name } else { *hostname };
                if name == "-" {
                    None
                } else {
                    Some(Observed {
                        name: name.to_string(),
                        state: match *status {
                            "running" => ContainerState::Running,
                            "stopped" => ContainerState::Stopped,
                            other => ContainerState::Other(other.to_string()),
                        },
                        ip: ips.iter().find(|ip| **ip != "-").map(|ip| ip.to_string()),
                        driver_id: Some(ctid.to_string()),
                    })
                }
            }
            _ => None,
        };
        match parsed {
            Some(o) => seen.push(o),
            None => bad.push(line.trim().to_string()),
        }
    }
    seen.sort_by(|a, b| a.name.cmp(&b.name));
    (seen, bad)
}

/// The CTID for a new container: `preferred` when it is above the reserved range and free,
/// else the lowest free one above it. `taken` holds what the machine runs and what creates in
/// flight have claimed.
pub fn allocate(taken: &BTreeSet<u32>, preferred: Option<u32>) -> u32 {
    if let Some(p) = preferred {
        if p > RESERVED_UP_TO && !taken.contains(&p) {
            return p;
        }
    }
    let mut id = RESERVED_UP_TO + 1;
    // `taken` is sorted, so one pass finds the first gap.
    for t in taken.range(id..) {
        if *t != id {
            break;
        }
        id += 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_names_owner_and_record_and_cannot_be_broken_out_of() {
        let m = mark("team-a", "web-1.dc1.test");
        assert_eq!(m, "kloud owner=team-a record=web-1.dc1.test");
        assert!(is_marked(&format!(" {m}\n")));
        assert!(!is_marked("-"));
        assert!(!is_marked("a web server, made by hand"));
        let odd = mark("a b\"\n$(x)", "r");
        assert_eq!(odd, "kloud owner=a_b___(x) record=r");
    }

    #[test]
    fn parses_rows_with_names_hostnames_and_several_ips() {
        let out = "       101 web-1.dc1  web-1.dc1   running 10.0.0.2 10.0.0.3\n\
                   \x20      102 -          db-1.dc1    stopped 10.0.0.4\n\
                   \x20      103 -          -           stopped -\n\
                   \x20      104 x.dc1      x.dc1       mounted -\n\
                   garbage\n";
        let (seen, bad) = parse(out);
        let names: Vec<&str> = seen.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, vec!["db-1.dc1", "web-1.dc1", "x.dc1"]);
        let web = &seen[1];
        assert_eq!(web.ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(web.driver_id.as_deref(), Some("101"));
        assert_eq!(web.state, ContainerState::Running);
        assert_eq!(seen[0].state, ContainerState::Stopped);
        assert_eq!(seen[2].state, ContainerState::Other("mounted".into()));
        assert_eq!(seen[2].ip, None);
        assert_eq!(bad.len(), 2, "{bad:?}");
    }

    #[test]
    fn allocates_the_lowest_free_ctid_above_100() {
        let set = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(allocate(&set(&[]), None), 101);
        assert_eq!(allocate(&set(&[5, 100, 101, 102, 104]), None), 103);
        assert_eq!(allocate(&set(&[101, 102, 103]), None), 104);
        // A recorded CTID is reused when free, ignored when taken or reserved.
        assert_eq!(allocate(&set(&[101]), Some(150)), 150);
        assert_eq!(allocate(&set(&[101, 150]), Some(150)), 102);
        assert_eq!(allocate(&set(&[]), Some(42)), 101);
    }
}
