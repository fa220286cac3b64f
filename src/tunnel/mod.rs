//! Batch tunnels (work in progress).
