//! LXC driver (in progress).
