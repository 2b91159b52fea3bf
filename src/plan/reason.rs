//! Why a change is planned, as data: the diff builds these, and they become the plan's
//! `reason` text (display only: apply never branches on it) at the edge of the planner.

use crate::Cpu;
use std::fmt;

use crate::hostdb::State;
use crate::size::{format_gib, format_mib};

/// Why one host gets its action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Nothing changes (a no-op has an empty reason).
    None,
    NewHost {
        class: String,
    },
    CountIncreased {
        from: usize,
        to: usize,
    },
    Replace(Vec<ReplaceCause>),
    Update(Vec<UpdateCause>),
    DestroyRequested,
    CountDecreased {
        from: usize,
        to: usize,
    },
    ClassRemoved {
        class: String,
    },
}

/// What forces a host to be destroyed and created again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceCause {
    /// `--replace NAME`: the operator asked for it.
    Requested,
    ImageChanged {
        from: String,
        to: String,
    },
    AddressOutside {
        ip: String,
        network: String,
    },
    NoAddress,
    WrongDriver {
        machine: String,
        driver: String,
    },
    MachineGone {
        machine: String,
    },
    NoMachine,
    ResizedBeyondFree(Vec<Resize>),
}

/// What changes in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateCause {
    /// The last apply did not finish it: it is created again in place, adopting whatever of
    /// its container exists (never destroying it).
    Repair(State),
    Resized(Vec<Resize>),
    TagsChanged,
    PropertyChanged(String),
    RolesChanged,
}

/// One dimension of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    Cpu { from: Cpu, to: Cpu },
    Memory { from: u64, to: u64 },
    Disk { from: u64, to: u64 },
}

impl fmt::Display for Resize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Resize::Cpu { from, to } => write!(f, "cpu {from} → {to}"),
            Resize::Memory { from, to } => {
                write!(f, "memory {} → {}", format_mib(from), format_mib(to))
            }
            Resize::Disk { from, to } => {
                write!(f, "disk {} → {}", format_gib(from), format_gib(to))
            }
        }
    }
}

fn joined<T: fmt::Display>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

impl fmt::Display for ReplaceCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplaceCause::Requested => f.write_str("replacement requested with --replace"),
            ReplaceCause::ImageChanged { from, to } => {
                write!(f, "image changed from `{from}` to `{to}`")
            }
            ReplaceCause::AddressOutside { ip, network } => {
                write!(f, "address {ip} is not in network `{network}`")
            }
            ReplaceCause::NoAddress => f.write_str("it has no address"),
            ReplaceCause::WrongDriver { machine, driver } => {
                write!(f, "its machine `{machine}` does not run driver `{driver}`")
            }
            ReplaceCause::MachineGone { machine } => {
                write!(f, "its machine `{machine}` is no longer in the config")
            }
            ReplaceCause::NoMachine => f.write_str("it has no machine"),
            ReplaceCause::ResizedBeyondFree(what) => write!(
                f,
                "resized ({}) beyond what its machine has free",
                joined(what, ", ")
            ),
        }
    }
}

impl fmt::Display for UpdateCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateCause::Repair(s) => write!(
                f,
                "the last apply left it `{}`: finished in place",
                s.as_str()
            ),
            UpdateCause::Resized(what) => write!(f, "resized: {}", joined(what, ", ")),
            UpdateCause::TagsChanged => f.write_str("tags changed"),
            UpdateCause::PropertyChanged(key) => write!(f, "property `{key}` changed"),
            UpdateCause::RolesChanged => f.write_str("puppet roles changed"),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::None => Ok(()),
            Reason::NewHost { class } => write!(f, "new host of class `{class}`"),
            Reason::CountIncreased { from, to } => write!(f, "count increased from {from} to {to}"),
            Reason::Replace(causes) => f.write_str(&joined(causes, "; ")),
            Reason::Update(causes) => f.write_str(&joined(causes, "; ")),
            Reason::DestroyRequested => f.write_str("destroy requested"),
            Reason::CountDecreased { from, to } => write!(f, "count decreased from {from} to {to}"),
            Reason::ClassRemoved { class } => {
                write!(f, "class `{class}` is no longer in the config")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_before() {
        let r = Reason::Replace(vec![
            ReplaceCause::Requested,
            ReplaceCause::ResizedBeyondFree(vec![
                Resize::Cpu {
                    from: Cpu::from_cores(1),
                    to: Cpu::from_cores(8),
                },
                Resize::Memory {
                    from: 512,
                    to: 2048,
                },
            ]),
        ]);
        assert_eq!(
            r.to_string(),
            "replacement requested with --replace; resized (cpu 1 → 8, memory 512MiB → 2GiB) beyond what its machine has free"
        );
        let u = Reason::Update(vec![
            UpdateCause::Repair(State::Failed),
            UpdateCause::Resized(vec![Resize::Disk { from: 10, to: 20 }]),
            UpdateCause::PropertyChanged("team".into()),
        ]);
        assert_eq!(
            u.to_string(),
            "the last apply left it `failed`: finished in place; resized: disk 10GiB → 20GiB; property `team` changed"
        );
        assert_eq!(Reason::None.to_string(), "");
    }
}
