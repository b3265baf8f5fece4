#!/usr/bin/env bash
# Rebuilds tzdata/zoneinfo and tzdata/VERSION from the newest PyPI `tzdata` package (the IANA time
# zone database compiled to TZif by its maintainers). Aliases (the `L` lines of tzdata.zi) are
# checked to be byte-identical to their zone, then left out: the image makes them links.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
pip download --quiet --no-deps --only-binary :all: tzdata -d . >/dev/null
wheel=$(ls tzdata-*.whl)
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall("x")' "$wheel"
zones=x/tzdata/zoneinfo
iana=$(sed -n 's/^IANA_VERSION = "\(.*\)"$/\1/p' x/tzdata/__init__.py)
[ -n "$iana" ] || { echo "no IANA_VERSION in the package" >&2; exit 1; }
grep -q "^# version $iana\$" "$zones/tzdata.zi" || { echo "tzdata.zi is not release $iana" >&2; exit 1; }
find "$zones" -name '__init__.py' -delete
# Python's own copies of the duplicate trees, if a release ever ships them, are not vendored.
rm -rf "$zones/right" "$zones/posix" "$zones/posixrules"
awk '$1 == "L" { print $2, $3 }' "$zones/tzdata.zi" | while read -r target alias; do
  cmp -s "$zones/$target" "$zones/$alias" || { echo "alias $alias differs from $target" >&2; exit 1; }
  rm "$zones/$alias"
done
find "$zones" -type d -empty -delete
rm -rf "$root/tzdata/zoneinfo"
cp -r "$zones" "$root/tzdata/zoneinfo"
echo "$iana" > "$root/tzdata/VERSION"
echo "tzdata/: release $iana (PyPI tzdata $(echo "$wheel" | cut -d- -f2)), $(find "$root/tzdata/zoneinfo" -type f | wc -l) files" >&2
# The shipped base and zoneinfo layers are made from these files.
bash "$root/scripts/update-shipped-layers.sh"
