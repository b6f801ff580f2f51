//! Ingesting a persons CSV: validate, pseudonymise, write Parquet.
//! `cargo bench -p occupa-benches --bench ingest` (set OCCUPA_BENCH_ROWS, default 1,000,000).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use occupa_benches::persons_csv;
use occupa_engine::ingest::{NoProgress, ingest};
use occupa_engine::instruments::Instruments;
use occupa_engine::pseudonym::Key;
use occupa_engine::schema::Table;
use occupa_engine::store::{Store, TenantId};

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("OCCUPA_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("persons.csv");
    persons_csv(n, &file).expect("write bench data");
    let inst = Instruments::builtin().expect("instruments");
    let key = Key::from_bytes([1; 32]);
    let tenant = TenantId::new("bench").expect("tenant");
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.bench_function(format!("persons_csv_{n}_rows"), |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("store dir"),
            |store_dir| {
                let store = Store::open(store_dir.path()).expect("store");
                let s = ingest(
                    &store,
                    &inst,
                    &key,
                    &tenant,
                    Table::Persons,
                    std::slice::from_ref(&file),
                    &NoProgress,
                )
                .expect("ingest");
                assert_eq!(s.stored, n);
                store_dir
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
