//! Values as the HostDB v1 API shows them: YAML text ↔ JSON values, the YAML view of a host
//! (its properties plus the fields kloud manages, read-only), and paths into a value
//! (`/hosts/NAME/Network/IP`).

use serde_json::{Map, Value};

use super::V1Error;
use crate::hostdb::model::Host;

/// Fields kloud manages on its containers: shown in a host's YAML, never changed through v1.
pub const MANAGED: &[&str] = &["machine", "ip", "class", "state", "owner"];

/// Parse YAML text (empty text is null).
pub fn parse_yaml(text: &str) -> Result<Value, V1Error> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_norway::from_str::<Value>(text)
        .map_err(|e| V1Error::bad_request(format!("value is not valid YAML: {e}")))
}

/// YAML text of a value.
pub fn to_yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap_or_else(|_| "null\n".to_string())
}

/// The managed fields a host has, by name.
pub fn managed_fields(host: &Host) -> Map<String, Value> {
    let mut out = Map::new();
    let fields = [
        ("machine", host.machine.clone()),
        ("ip", host.ip.clone()),
        ("class", host.class.clone()),
        ("state", host.state.map(|s| s.as_str().to_string())),
        ("owner", host.owner.clone()),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            out.insert(name.to_string(), Value::String(v));
        }
    }
    out
}

/// Whether kloud manages this host (a machine, or a container with any managed field): v1 may
/// change its properties but not rename or delete it.
pub fn is_managed(host: &Host) -> bool {
    host.kind == crate::hostdb::model::Kind::Machine || !managed_fields(host).is_empty()
}

/// A host as v1 shows it: its properties, then the managed fields.
pub fn host_view(host: &Host) -> Value {
    let mut map = host.properties.clone();
    map.extend(managed_fields(host));
    Value::Object(map)
}

/// The properties a v1 value gives a host: the mapping without the managed fields, each of
/// which must be absent or unchanged.
pub fn host_properties(host: Option<&Host>, value: Value) -> Result<Map<String, Value>, V1Error> {
    let mut map = match value {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        _ => {
            return Err(V1Error::bad_request(
                "a host's value must be a YAML mapping".to_string(),
            ))
        }
    };
    let current = host.map(managed_fields).unwrap_or_default();
    for field in MANAGED {
        if let Some(given) = map.remove(*field) {
            if current.get(*field) != Some(&given) {
                return Err(read_only(field));
            }
        }
    }
    Ok(map)
}

/// The error for a change of a managed field.
pub fn read_only(field: &str) -> V1Error {
    V1Error::forbidden(format!(
        "`{field}` is managed by kloud and is read-only through the HostDB v1 API; \
         change it through kloud's config or API"
    ))
}

/// The value at `path` inside `value`, if any (mapping keys, or sequence indexes).
pub fn get_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn get_path_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, seg| match v {
        Value::Object(m) => m.get_mut(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    })
}

/// Set `path` inside `value` to `new`, making mappings on the way.
pub fn set_path(value: &mut Value, path: &[String], new: Value) -> Result<(), V1Error> {
    let Some((last, parents)) = path.split_last() else {
        *value = new;
        return Ok(());
    };
    let mut cur = value;
    for seg in parents {
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
        cur = match cur {
            Value::Object(m) => m
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(a) => seg
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get_mut(i))
                .ok_or_else(|| not_found_in(seg))?,
            _ => return Err(not_found_in(seg)),
        };
    }
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    match cur {
        Value::Object(m) => {
            m.insert(last.clone(), new);
            Ok(())
        }
        Value::Array(a) => match last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
            Some(slot) => {
                *slot = new;
                Ok(())
            }
            None => Err(not_found_in(last)),
        },
        _ => Err(V1Error::bad_request(format!(
            "`{last}` cannot be set inside a scalar"
        ))),
    }
}

/// Remove what `path` names; `NotFound` when it is not there.
pub fn delete_path(value: &mut Value, path: &[String]) -> Result<Value, V1Error> {
    let Some((last, parents)) = path.split_last() else {
        return Err(V1Error::bad_request("nothing to delete".to_string()));
    };
    let parent = get_path_mut(value, parents).ok_or_else(|| not_found_in(last))?;
    match parent {
        Value::Object(m) => m.remove(last).ok_or_else(|| not_found_in(last)),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(not_found_in(last)),
        },
        _ => Err(not_found_in(last)),
    }
}

/// Rename the last key of `path` to `newname` in its mapping.
pub fn rename_path(value: &mut Value, path: &[String], newname: &str) -> Result<(), V1Error> {
    let Some((last, parents)) = path.split_last() else {
        return Err(V1Error::bad_request("nothing to rename".to_string()));
    };
    let Some(Value::Object(m)) = get_path_mut(value, parents) else {
        return Err(not_found_in(last));
    };
    if m.contains_key(newname) {
        return Err(V1Error::conflict(format!("`{newname}` already exists")));
    }
    let v = m.remove(last).ok_or_else(|| not_found_in(last))?;
    m.insert(newname.to_string(), v);
    Ok(())
}

fn not_found_in(seg: &str) -> V1Error {
    V1Error::not_found(format!("`{seg}` does not exist in the value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn paths_get_set_delete_rename() {
        let mut v = json!({"Network": {"IP": "1.2.3.4", "CNAME": "a"}, "disks": ["sda", "sdb"]});
        assert_eq!(
            get_path(&v, &p(&["Network", "IP"])),
            Some(&json!("1.2.3.4"))
        );
        assert_eq!(get_path(&v, &p(&["disks", "1"])), Some(&json!("sdb")));
        set_path(&mut v, &p(&["Network", "Gateway"]), json!("1.2.3.1")).unwrap();
        set_path(&mut v, &p(&["New", "Deep"]), json!(1)).unwrap();
        assert_eq!(v["New"]["Deep"], json!(1));
        rename_path(&mut v, &p(&["Network", "CNAME"]), "cname").unwrap();
        assert_eq!(v["Network"]["cname"], json!("a"));
        assert!(rename_path(&mut v, &p(&["Network", "IP"]), "cname").is_err());
        delete_path(&mut v, &p(&["Network", "IP"])).unwrap();
        assert!(get_path(&v, &p(&["Network", "IP"])).is_none());
        assert!(delete_path(&mut v, &p(&["Network", "IP"])).is_err());
    }

    #[test]
    fn managed_fields_are_read_only() {
        let mut h = Host::container("web-1.example");
        h.ip = Some("10.0.0.5".into());
        h.properties.insert("team".into(), json!("web"));
        let view = host_view(&h);
        assert_eq!(view["ip"], json!("10.0.0.5"));
        // Unchanged managed fields pass (a GET edited and PUT back), changed ones do not.
        let same = json!({"team": "db", "ip": "10.0.0.5"});
        let props = host_properties(Some(&h), same).unwrap();
        assert_eq!(Value::Object(props), json!({"team": "db"}));
        let changed = json!({"ip": "10.0.0.6"});
        assert_eq!(host_properties(Some(&h), changed).unwrap_err().status, 403);
        let new_with_owner = json!({"owner": "me"});
        assert!(host_properties(None, new_with_owner).is_err());
    }
}
