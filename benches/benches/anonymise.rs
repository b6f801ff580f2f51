//! The optimal lattice search on Adult (ARX's test table): k = 5 with 4 % suppression and
//! k = 5 without, entropy metric. Needs the public data:
//! `OCCUPA_DATA_DIR=../shared/data cargo bench -p occupa-benches --bench anonymise`.

use criterion::{Criterion, criterion_group, criterion_main};
use occupa_anonymiser::hierarchy::Hierarchy;
use occupa_anonymiser::metric::Metric;
use occupa_anonymiser::microdata::Microdata;
use occupa_anonymiser::privacy::PrivacyModel;
use occupa_anonymiser::search::Anonymisation;

const COLUMNS: [&str; 9] = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
    "salary-class",
];

fn bench(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("OCCUPA_DATA_DIR").map(std::path::PathBuf::from) else {
        eprintln!("set OCCUPA_DATA_DIR to the public datasets folder");
        return;
    };
    let adult = dir.join("adult");
    let hierarchies: Vec<Hierarchy> = COLUMNS
        .iter()
        .map(|col| {
            Hierarchy::from_csv(col, &adult.join(format!("hierarchies/{col}.csv")))
                .expect("hierarchy")
        })
        .collect();
    let mut rdr = csv::Reader::from_path(adult.join("adult.csv")).expect("adult.csv");
    let header: Vec<String> = rdr
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    let idx: Vec<usize> = COLUMNS
        .iter()
        .map(|col| header.iter().position(|h| h == col).expect("column"))
        .collect();
    let records: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    let rows: Vec<Vec<&str>> = records
        .iter()
        .map(|r| idx.iter().map(|&i| &r[i]).collect())
        .collect();
    let data = Microdata::new(hierarchies, None, &rows, 2).expect("encode");
    let mut g = c.benchmark_group("anonymise_adult");
    g.sample_size(20);
    for limit in [0.04, 0.0] {
        let spec = Anonymisation::new(PrivacyModel::k_anonymity(5).expect("k"))
            .max_suppression(limit)
            .expect("limit")
            .metric(Metric::Entropy);
        g.bench_function(format!("k5_suppression_{limit}"), |b| {
            b.iter(|| spec.fit(&data).expect("search"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
