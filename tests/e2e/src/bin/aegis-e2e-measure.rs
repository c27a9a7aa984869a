//! Runs a program as its only child and writes the program's wall time, peak RSS and exit code
//! to a file: `aegis-e2e-measure OUT_FILE PROGRAM [ARG...]` (see `aegis_e2e::measure`).

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    aegis_e2e::measure::measurer_main(&args)
}
