//! `arca`: see the library (`arca_cli`) for the commands.

fn main() -> std::process::ExitCode {
    arca_cli::main()
}
