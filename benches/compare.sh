#!/usr/bin/env bash
# Two builds of scratchpack packing the reference binary, in paired turns: did a change move the
# pack time? Run by hand (not in CI), on an otherwise idle machine.
#
# Each round runs, one after the other, build A and build B with the layer cache warm, then A and B
# with SCRATCHPACK_NO_CACHE=1, each into an empty oci: layout; the median of the per-round ratios
# B / A is the figure least moved by the host's slow phases (benches/README.md). Both builds use
# their own cache folder, warmed by two rounds that are not timed.
#
# With SAME_LAYOUT=1, each build packs into its own layout that is kept between turns: every timed
# pack goes into a layout that already holds the image (its blobs are checked, not written).
#
# Usage: bash benches/compare.sh OLD_BINARY NEW_BINARY
# Knobs: TURNS=40, SAME_LAYOUT=0 (environment variables).
set -euo pipefail

REF=/usr/bin/qemu-riscv64-static
TURNS=${TURNS:-40}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=compare.sh
# shellcheck source=benches/common.sh
source "$REPO_ROOT/benches/common.sh"

(($# == 2)) || die "usage: bash benches/compare.sh OLD_BINARY NEW_BINARY"
install_missing "qemu-user-static $REF" "python3 python3"
TMP=$(mktemp -d -t scratchpack-compare.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
# Copies, so that a rebuild during the run cannot change what is measured.
cp "$1" "$TMP/a" && cp "$2" "$TMP/b" || die "cannot copy the two binaries"
settle
warn_if_busy
say "paired turns: $1 (A) and $2 (B), warm and without cache, $TURNS rounds${SAME_LAYOUT:+ (SAME_LAYOUT=$SAME_LAYOUT)}"
python3 - "$TMP" "$REF" "$TURNS" "${SAME_LAYOUT:-0}" <<'PY'
import os, shutil, statistics, subprocess, sys, time
tmp, ref, rounds, same_layout = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
def run(binary, cache):
    env = dict(os.environ, SCRATCHPACK_CACHE_DIR=f"{tmp}/cache-{binary}")
    if not cache:
        env["SCRATCHPACK_NO_CACHE"] = "1"
    out = f"{tmp}/out-{binary}" if same_layout else f"{tmp}/out"
    if not same_layout:
        shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([f"{tmp}/{binary}", "pack", ref, "--output", f"oci:{out}"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started
times = {(b, c): [] for b in "ab" for c in (True, False)}
for round_ in range(rounds + 2):
    for cache in (True, False):
        for binary in "ab":
            took = run(binary, cache)
            if round_ >= 2:
                times[(binary, cache)].append(took)
print(f"{'pack':<12}{'A median ms':>12}{'B median ms':>12}{'B / A (median of rounds)':>27}")
for cache, label in ((True, "warm"), (False, "no cache")):
    a, b = times[("a", cache)], times[("b", cache)]
    ratio = statistics.median(y / x for x, y in zip(a, b))
    print(f"{label:<12}{statistics.median(a) * 1e3:>12.1f}{statistics.median(b) * 1e3:>12.1f}{ratio:>27.3f}")
PY
