#!/usr/bin/env bash
# The cost of issue 13's protections on the 1M-person store: the research release
# (`occupa anonymise`) and the joint protection of a full quarterly report (`occupa report
# quarterly`), before (commit 529a4a1, the last before issue 13) and after (this tree).
#
#   bash benches/privacy_cost.sh [PERSONS]        # default 1000000; needs ~10 GB of disk
#
# It builds the earlier binary in a git worktree sharing this target folder (only the
# workspace's crates are rebuilt), simulates the population with 6 authorities, ingests it
# once (with this tree's binary: the store format is readable by both), then times each
# job with /usr/bin/time. Figures go to benches/RESULTS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
persons="${1:-1000000}"
work="${TMPDIR:-/tmp}/occupa-privacy-cost"
before="${TMPDIR:-/tmp}/occupa-before-529a4a1"
mkdir -p "$work"

if [ ! -x "$work/occupa-before" ]; then
    git worktree remove --force "$before" 2>/dev/null || true
    rm -rf "$before"
    git worktree prune
    git worktree add --detach "$before" 529a4a1 >/dev/null
    cargo build --release --quiet --manifest-path "$before/Cargo.toml" --target-dir target -p occupa-studies
    cp target/release/occupa "$work/occupa-before"
    git worktree remove --force "$before"
    # Both trees' crates hash alike: clean them, or the next build would reuse the old ones.
    cargo clean --release --quiet -p occupa-engine -p occupa-anonymiser -p occupa-reports -p occupa-studies
fi
cargo build --release --quiet -p occupa-studies
cp target/release/occupa "$work/occupa-after"

store="$work/store-$persons"
if [ ! -d "$store" ]; then
    "$work/occupa-after" simulate --out "$work/exports-$persons" --persons "$persons" --tenants 6 >/dev/null
    "$work/occupa-after" key new --out "$work/key-$persons" >/dev/null || true
    for t in t01 t02 t03 t04 t05 t06; do
        for table in persons asso isa gol services employment vacancies; do
            "$work/occupa-after" ingest --data "$store" --tenant "$t" --table "$table" \
                --key-file "$work/key-$persons" "$work/exports-$persons/$t/$table.csv" >/dev/null
        done
    done
fi

run() {
    local label="$1"; shift
    /usr/bin/time -o "$work/time.txt" -f '%e %M' "$@" >"$work/last.out" 2>"$work/last.err" \
        || { echo "$label: failed"; tail -3 "$work/last.err"; return 0; }
    read -r secs kb < "$work/time.txt"
    printf '%-64s %8s s %6s MB\n' "$label" "$secs" "$(( kb / 1024 ))"
}

git show 529a4a1:anonymiser/policies/research.toml > "$work/research-before.toml"
rm -rf "$work"/rel-* "$work"/rep-*
echo "persons: $persons"
run "anonymise, before (persons QIs + record dates)" \
    "$work/occupa-before" anonymise --data "$store" --policy "$work/research-before.toml" --out "$work/rel-before"
run "anonymise, after (research.toml: k^1 over persons and records)" \
    "$work/occupa-after" anonymise --data "$store" --policy anonymiser/policies/research.toml --out "$work/rel-after"
run "anonymise, after (service-effect.toml)" \
    "$work/occupa-after" anonymise --data "$store" --policy anonymiser/policies/service-effect.toml --out "$work/rel-after-study"
# Reports: the store's ledger starts empty; the second report is protected against the first.
rm -rf "$store/ledger"
run "report quarterly 2026Q3, before (per-table suppression)" \
    "$work/occupa-before" report quarterly --data "$store" --period 2026Q3 --out "$work/rep-before"
run "report quarterly 2026Q3, after (joint protection + LP audit)" \
    "$work/occupa-after" report quarterly --data "$store" --period 2026Q3 --out "$work/rep-after"
run "report quarterly 2026Q2, after (+ ledger of 1 publication)" \
    "$work/occupa-after" report quarterly --data "$store" --period 2026Q2 --out "$work/rep-after-q2"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
for name in ["rel-after", "rel-after-study"]:
    r = json.load(open(f"{w}/{name}/risk-report.json"))
    print(name, "released", r["released_persons"], "of", r["persons"], "loss", round(r["information_loss"], 3),
          "risk before", r["risk_before"]["highest"], "after", r["risk_after"]["highest"],
          "search", r["search"]["method"], r["search"]["nodes_evaluated"], "nodes", round(r["search"]["seconds"], 1), "s")
for name in ["rep-after", "rep-after-q2"]:
    r = json.load(open(f"{w}/{name}/report.json"))
    print(name, r["provenance"]["protection"])
PY
