//! apply (work in progress).
