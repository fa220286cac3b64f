//! The command line's glue that is worth testing without running the binary: argument
//! definitions (clap) and what each command prints. `main.rs` stays a thin dispatcher; tests
//! parse the command lines the docs show with these same definitions, so docs and CLI cannot
//! drift apart. Errors here are `anyhow` (CLI glue only). `policy` holds `zweck policy ...`,
//! `incident` holds `zweck incident ...`, `apps` holds `zweck apps ...`.

use std::io::Write as _;

use anyhow::Context as _;

/// Writes to stdout. A closed pipe (`zweck policy test | head`) ends the output quietly
/// instead of panicking as `print!` does; any other failure is an error.
pub fn write_out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// `print!` through [`write_out`], in a function returning `anyhow::Result`.
macro_rules! out {
    ($($t:tt)*) => {
        $crate::cli::write_out(&format!($($t)*))?
    };
}

/// `println!` through [`write_out`].
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::cli::write_out(&(format!($($t)*) + "\n"))?
    };
}

pub mod apps;
pub mod incident;
pub mod policy;
