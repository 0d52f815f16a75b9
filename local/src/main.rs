//! `nightshift` CLI entry point.
fn main() {
    eprintln!("nightshift: the emulator is not built yet");
    std::process::exit(2);
}
