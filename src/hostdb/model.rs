//! The HostDB data model (design §4): hosts, tags, the change log, leases and tokens.
//!
//! These types are also the JSON shapes of the HTTP API, so they derive serde, skip absent
//! optional fields and reject unknown fields on input.

use crate::{Cpu, Overcommit};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a host record stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A physical machine that runs containers.
    Machine,
    /// A container placed on a machine.
    Container,
}

impl Kind {
    /// The lowercase name used in JSON, SQL and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Machine => "machine",
            Kind::Container => "container",
        }
    }

    /// Parse the lowercase name.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "machine" => Some(Kind::Machine),
            "container" => Some(Kind::Container),
            _ => None,
        }
    }
}

/// Lifecycle of a container as recorded by apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Creating,
    Running,
    Failed,
    Deleting,
}

impl State {
    /// The lowercase name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::Running => "running",
            State::Failed => "failed",
            State::Deleting => "deleting",
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One host: a machine or a container, keyed by its FQDN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    /// Tags this host is a direct member of; kept sorted and free of duplicates by the store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// Size of a container, capacity of a machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// A machine's cpu overcommit factor: placement may hand out `cpu` × this (absent: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_overcommit: Option<Overcommit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_gib: Option<u64>,
    /// Topology keys of a machine (rack, switch, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    /// The driver's own id for a container (an OpenVZ CTID, say); set by apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_id: Option<String>,
    /// Set by the store; ignored on input.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub created_index: u64,
    /// Set by the store; ignored on input.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub modified_index: u64,
}

impl Host {
    fn empty(name: &str, kind: Kind) -> Host {
        Host {
            name: name.to_string(),
            kind,
            properties: Map::new(),
            tags: Vec::new(),
            class: None,
            owner: None,
            machine: None,
            ip: None,
            image: None,
            roles: Vec::new(),
            state: None,
            cpu: None,
            cpu_overcommit: None,
            memory_mib: None,
            disk_gib: None,
            labels: BTreeMap::new(),
            driver: None,
            connect: None,
            driver_id: None,
            created_index: 0,
            modified_index: 0,
        }
    }

    /// A container with every optional field empty.
    pub fn container(name: &str) -> Host {
        Host::empty(name, Kind::Container)
    }

    /// A machine with every optional field empty.
    pub fn machine(name: &str) -> Host {
        Host::empty(name, Kind::Machine)
    }
}

/// A tag: properties inherited by its members. Members are hosts (through [`Host::tags`]) and
/// other tags (through their [`Tag::tags`]), so each object owns its own memberships and one
/// compare-and-set covers them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub name: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    /// Tags this tag is a member of (its parents); a cycle is rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub created_index: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub modified_index: u64,
}

impl Tag {
    /// A tag without properties or parents.
    pub fn new(name: &str) -> Tag {
        Tag {
            name: name.to_string(),
            properties: Map::new(),
            tags: Vec::new(),
            created_index: 0,
            modified_index: 0,
        }
    }
}

/// The members of a tag, as shown by `kloud tags show`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Members {
    /// Hosts tagged directly.
    pub hosts: Vec<String>,
    /// Tags nested directly inside this one.
    pub tags: Vec<String>,
}

/// Compare-and-set condition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// The object must not exist.
    Absent,
    /// The object must exist with this `modified_index`.
    Index(u64),
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Any => f.write_str("any"),
            Expect::Absent => f.write_str("absent"),
            Expect::Index(i) => write!(f, "index {i}"),
        }
    }
}

/// Who makes a change and why; recorded in the change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Actor {
    /// An actor without a message.
    pub fn new(name: &str) -> Actor {
        Actor {
            name: name.to_string(),
            message: None,
        }
    }
}

/// One change inside a write transaction.
// Boxing the host would make every caller write `Box::new`; writes are few and short-lived.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Write {
    PutHost {
        host: Host,
        expect: Expect,
    },
    DeleteHost {
        name: String,
        expect: Expect,
    },
    PutTag {
        tag: Tag,
        expect: Expect,
    },
    DeleteTag {
        name: String,
        expect: Expect,
    },
    /// Fails the whole transaction unless lease `id` of lock `lock` is still held, by the
    /// database's clock: how apply makes every write conditional on holding the apply lock.
    Fence {
        lock: String,
        id: String,
    },
    /// A keyed document of a namespace other than hosts and tags (the HostDB v1 API's).
    PutDocument {
        document: Document,
        expect: Expect,
    },
    DeleteDocument {
        namespace: String,
        key: String,
        expect: Expect,
    },
}

impl Write {
    /// The name of the object this write touches.
    pub fn object(&self) -> &str {
        match self {
            Write::PutHost { host, .. } => &host.name,
            Write::DeleteHost { name, .. } | Write::DeleteTag { name, .. } => name,
            Write::PutTag { tag, .. } => &tag.name,
            Write::Fence { lock, .. } => lock,
            // A document is named by its key within its namespace.
            Write::PutDocument { document, .. } => &document.key,
            Write::DeleteDocument { key, .. } => key,
        }
    }
}

/// Everything plan needs from HostDB, read consistently at one index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: u64,
    /// Every machine, sorted by name.
    pub machines: Vec<Host>,
    /// The containers whose owner is the requested owner, sorted by name.
    pub hosts: Vec<Host>,
    /// Every other container placed on a machine (other configs', people's): they use
    /// capacity and addresses like the owner's own (design §8). Sorted by name.
    #[serde(default)]
    pub others: Vec<Host>,
    /// Every tag, sorted by name.
    pub tags: Vec<Tag>,
}

/// Whether a change-log entry is about a host or a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Host,
    Tag,
    /// A keyed document; its change-log object is `NAMESPACE/KEY`.
    Document,
    /// Something that happened without changing data (a sign-in); recorded at the current
    /// index without bumping it.
    Event,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Host => "host",
            ObjectKind::Tag => "tag",
            ObjectKind::Document => "document",
            ObjectKind::Event => "event",
        }
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub index: u64,
    pub object: String,
    pub kind: ObjectKind,
    /// The object before the change; `null` for a creation.
    pub before: Option<Value>,
    /// The object after the change; `null` for a deletion.
    pub after: Option<Value>,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// A held named lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    /// Identifies this holding; renew, release and force-release name it.
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub since_ms: u64,
    pub expires_ms: u64,
}

/// A token's permissions. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A person signed in from LDAP without an operator group: self-service only (design §10),
    /// and HostDB v1 writes in the namespaces their groups are granted.
    User,
    /// Reads everything except tokens.
    Reader,
    /// Also writes hosts, tags and locks.
    Operator,
    /// Also manages tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "reader" => Some(Role::Reader),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A token as stored: never the secret itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_ms: u64,
    /// Set for a session (a person signed in): when it stops working, milliseconds since the
    /// Unix epoch. API tokens do not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// A session's LDAP groups, sorted (per-namespace write access of the HostDB v1 API).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Set for a token scoped to one owner (`kloud hostdb token create --owner`): it writes
    /// only host records of that owner (before and after the write); reads are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl TokenInfo {
    /// Whether this is a session that has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| e <= now_ms)
    }
}

/// A keyed document of a HostDB v1 namespace other than `hosts` and `tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub namespace: String,
    pub key: String,
    /// Any JSON value (the YAML the v1 API was given).
    pub value: Value,
    /// Set by the store; ignored on input.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub modified_index: u64,
}

/// Filters of a host listing; all given filters must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostQuery {
    /// The host is a member of every one of these tags, directly or through nested tags.
    pub tags: Vec<String>,
    /// Own property `key` equals the value: a string property compares with the text itself,
    /// any other value with its JSON text (`port=80` matches `80`, `on=true` matches `true`).
    pub properties: Vec<(String, String)>,
    pub kind: Option<Kind>,
    pub class: Option<String>,
    pub owner: Option<String>,
    pub machine: Option<String>,
    /// Cursor: only names sorting after this one.
    pub after: Option<String>,
    /// Page size; `None` means every match.
    pub limit: Option<usize>,
}

/// One page of a listing in name order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}
