#!/usr/bin/env bash
# The quarterly report for 100,000 persons across 20 authorities, from the store to every
# file (benches/RESULTS.md): the first report of a store, then the previous quarter's,
# protected against the first from the ledger; then the annual report of 2025 after both.
# Usage: benches/reports/quarterly.sh [WORKDIR] [PERSONS] [TENANTS]   (needs target/release/occupa)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
occupa="$root/target/release/occupa"
work=${1:-$(mktemp -d)}
persons=${2:-100000}
tenants=${3:-20}
cd "$work"
[ -f k.key ] || "$occupa" key new --out k.key > /dev/null
if [ ! -d store ]; then
    "$occupa" simulate --out ex --persons "$persons" --tenants "$tenants" --seed 1 > /dev/null
    for d in ex/t[0-9]*/; do
        d=${d%/}
        t=$(basename "$d")
        for tb in persons asso isa gol services employment vacancies; do
            "$occupa" ingest --data store --tenant "$t" --table "$tb" --key-file k.key "$d/$tb.csv" > /dev/null 2>&1
        done
    done
fi
rm -rf store/ledger q3 q2 y25
export OCCUPA_KEY_FILE="$work/k.key"
/usr/bin/time -f "quarterly report 2026Q3 (first of the store): %e s wall, %M KB peak" \
    "$occupa" report quarterly --data store --period 2026Q3 --out q3 > /dev/null
/usr/bin/time -f "quarterly report 2026Q2 (after 2026Q3): %e s wall, %M KB peak" \
    "$occupa" report quarterly --data store --period 2026Q2 --out q2 > /dev/null
/usr/bin/time -f "annual report 2025 (after both): %e s wall, %M KB peak" \
    "$occupa" report annual --data store --year 2025 --out y25 > /dev/null
for d in q3 q2 y25; do
    python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['provenance']['protection']; print(sys.argv[1], 'protection', round(p['seconds'],1), 's,', p['audit_solves'], 'solves,', p['hidden'], 'hidden,', p['prior_checked'], 'earlier cells checked')" "$d/report.json"
done
