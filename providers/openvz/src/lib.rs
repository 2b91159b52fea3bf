//! OpenVZ driver (in progress).
