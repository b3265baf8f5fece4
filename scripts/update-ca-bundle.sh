#!/usr/bin/env bash
# Rebuilds certs/ca-certificates.crt and certs/VERSION from Debian's newest ca-certificates package.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download ca-certificates >/dev/null
deb=$(ls ca-certificates_*_all.deb)
dpkg-deb -x "$deb" x
version=$(dpkg-deb -f "$deb" Version)
find x/usr/share/ca-certificates/mozilla -name '*.crt' -print0 | LC_ALL=C sort -z \
  | xargs -0 cat > "$root/certs/ca-certificates.crt"
echo "mozilla-nss via debian ca-certificates $version" > "$root/certs/VERSION"
echo "certs/: $(grep -c 'BEGIN CERTIFICATE' "$root/certs/ca-certificates.crt") roots, $version" >&2
# The shipped base and zoneinfo layers are made from these files.
bash "$root/scripts/update-shipped-layers.sh"
