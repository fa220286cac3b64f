//! The command line's glue that is worth testing without running the binary: argument
//! definitions (clap) and what each command prints. `main.rs` stays a thin dispatcher; tests
//! parse the command lines the docs show with these same definitions, so docs and CLI cannot
//! drift apart. Errors here are `anyhow` (CLI glue only).

pub mod policy;
