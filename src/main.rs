//! The `alisay` binary: parse the command line and hand over to [`alisay::cli`].

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    alisay::cli::main()
}
