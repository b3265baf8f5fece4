#!/usr/bin/env bash
# Writes shipped-layers/ anew: the default base layer and the built-in zoneinfo layer, gzip and zstd,
# as this source compresses them, and layers.rs, the digests src/image/shipped.rs checks them
# against. Run it after anything that changes those layers' bytes: the CA bundle
# (scripts/update-ca-bundle.sh), the time zones (scripts/update-tzdata.sh), the templates, the tar
# writer or the compressors. The unit test image::shipped fails until it is run.
set -euo pipefail
cd "$(dirname "$0")/.."
# An empty table first: the old one may not compile against a changed source.
echo "const SHIPPED: &[Shipped] = &[];" > shipped-layers/layers.rs
SCRATCHPACK_UPDATE_SHIPPED_LAYERS=1 cargo test --locked --lib image::shipped::tests::the_shipped_layers_are_what_the_source_makes
ls -l shipped-layers
