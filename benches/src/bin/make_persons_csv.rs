//! Writes the persons CSV used by the ingest benchmark and the peer scripts:
//! `make-persons-csv ROWS FILE`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(n), Some(path)) = (args.get(1).and_then(|s| s.parse().ok()), args.get(2)) else {
        eprintln!("usage: make-persons-csv ROWS FILE");
        std::process::exit(2);
    };
    if let Err(e) = occupa_benches::persons_csv(n, std::path::Path::new(path)) {
        eprintln!("error: {path}: {e}");
        std::process::exit(1);
    }
}
