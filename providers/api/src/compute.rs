//! Compute drivers: containers on machines (filled in by the apply work).
