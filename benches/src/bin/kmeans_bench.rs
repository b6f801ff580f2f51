//! Times Occupa's k-means on a CSV of numbers for a range of k, as the peers are timed
//! in `benches/peers/compare_cluster.py`: data read once, then 10 starts per k.
//!
//! `cargo run --release -p occupa-benches --bin kmeans-bench -- FILE K_MIN K_MAX [STARTS [TOL]]`
//! prints one line per k: k, seconds, inertia, iterations of the best start.

use std::time::Instant;

use occupa_engine::cluster::kmeans::KMeans;
use occupa_engine::columns::Table;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: kmeans-bench FILE K_MIN K_MAX [STARTS [TOL]]".into());
    }
    let path = std::path::Path::new(&args[1]);
    let (k0, k1): (usize, usize) = (args[2].parse()?, args[3].parse()?);
    let starts: usize = args.get(4).map_or(Ok(10), |s| s.parse())?;
    let tol: f64 = args.get(5).map_or(Ok(1e-4), |s| s.parse())?;
    let header = std::fs::read_to_string(path)?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let cols: Vec<&str> = header.split(',').collect();
    let table = Table::read(path, &cols)?;
    let values: Vec<&[f64]> = cols
        .iter()
        .map(|c| table.numeric(c))
        .collect::<Result<_, _>>()?;
    let x = ndarray::Array2::from_shape_fn((table.len(), cols.len()), |(i, j)| values[j][i]);
    drop(table);
    for k in k0..=k1 {
        let t = Instant::now();
        let fit = KMeans::new(k)?
            .starts(starts)?
            .tol(tol)?
            .seed(0)
            .fit(x.view())?;
        let best = fit
            .start_inertias
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        println!(
            "{k} {:.2} {} {} best-of-starts {best} all {:?}",
            t.elapsed().as_secs_f64(),
            fit.inertia,
            fit.iterations,
            fit.start_inertias
        );
    }
    Ok(())
}
