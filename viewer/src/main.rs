use std::process::ExitCode;

fn main() -> ExitCode {
    viewer::cli::main()
}
