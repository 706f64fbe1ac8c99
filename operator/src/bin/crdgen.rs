//! Prints the `ZdbCluster` CRD, or with `--write` writes it to
//! `charts/zdb/crds/zdbcluster.yaml` (run from the repository root).

use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match zdb_operator::crd_yaml() {
        Ok(yaml) => yaml,
        Err(error) => {
            eprintln!("error: cannot render the CRD: {error}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().any(|arg| arg == "--write") {
        if let Err(error) = std::fs::write(zdb_operator::CRD_PATH, yaml) {
            eprintln!("error: cannot write {}: {error}", zdb_operator::CRD_PATH);
            return ExitCode::FAILURE;
        }
        println!("wrote {}", zdb_operator::CRD_PATH);
    } else {
        print!("{yaml}");
    }
    ExitCode::SUCCESS
}
