#!/usr/bin/env bash
# The A.5 study on a 1,000,000-person store, from spec to results (benches/RESULTS.md).
# Usage: benches/studies/a5-million.sh [WORKDIR]   (needs target/release/occupa)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
occupa="$root/target/release/occupa"
work=${1:-$(mktemp -d)}
cd "$work"
[ -f k.key ] || "$occupa" key new --out k.key > /dev/null
if [ ! -d store ]; then
    /usr/bin/time -f "simulate: %e s" "$occupa" simulate --out ex --persons 1000000 --tenants 1 --seed 1 > /dev/null
    for t in persons asso isa gol services employment vacancies; do
        /usr/bin/time -f "ingest $t: %e s" "$occupa" ingest --data store --tenant t01 --table "$t" \
            --key-file k.key "ex/t01/$t.csv" > /dev/null
    done
fi
for threads in 2 1; do
    rm -rf "study-$threads"
    RAYON_NUM_THREADS=$threads /usr/bin/time -f "study run, $threads thread(s): %e s wall, %M KB peak" \
        "$occupa" study run "$root/benches/studies/a5-million.toml" --data store --tenant t01 \
        --out "study-$threads" > "results-$threads.json"
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['seconds'])" "study-$threads/manifest.json"
done
cmp -s results-1.json results-2.json && echo "results.json identical on 1 and 2 threads"
