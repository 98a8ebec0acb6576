//! `roadseg`: the studio and the headless engine (sample, info, convert, train, eval, predict,
//! bench).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
