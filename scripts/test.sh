#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests drive (Debian packages, rustup
# targets), checks formatting and lints, then runs unit and integration tests against the real tools.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
