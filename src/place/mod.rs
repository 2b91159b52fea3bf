//! place (work in progress).
