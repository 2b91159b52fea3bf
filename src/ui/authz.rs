//! What each role may see and do in the UI: one function, tested as a table.
//!
//! It follows the API (design §10): role `user` may use self-service only, so a person
//! without an operator group sees "my hosts" and the pages of their own hosts, not the fleet.
//! Every change the UI makes is a self-service call made as the person signed in, and the
//! self-service engine itself refuses a host that is not theirs.

use crate::hostdb::model::Role;

/// Something a page shows or a form does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The fleet, the machine map, the tags: every host of every owner.
    ReadFleet,
    /// One host's page; `own`: it is the person's self-service host.
    ReadHost { own: bool },
    /// Request, delete or recreate one's own self-service hosts.
    SelfService,
}

/// Whether `role` may do `action`.
pub fn allowed(role: Role, action: Action) -> bool {
    match action {
        Action::ReadFleet => role >= Role::Reader,
        Action::ReadHost { own } => own || role >= Role::Reader,
        Action::SelfService => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use Action::*;
        let table = [
            // role, fleet, someone else's host, own host, self-service
            (Role::User, false, false, true, true),
            (Role::Reader, true, true, true, true),
            (Role::Operator, true, true, true, true),
            (Role::Admin, true, true, true, true),
        ];
        for (role, fleet, other, own, selfservice) in table {
            assert_eq!(allowed(role, ReadFleet), fleet, "{role:?} fleet");
            assert_eq!(
                allowed(role, ReadHost { own: false }),
                other,
                "{role:?} host"
            );
            assert_eq!(
                allowed(role, ReadHost { own: true }),
                own,
                "{role:?} own host"
            );
            assert_eq!(
                allowed(role, SelfService),
                selfservice,
                "{role:?} self-service"
            );
        }
    }
}
