//! hostdb (work in progress).
