#!/usr/bin/env bash
# The main job on a fresh machine, no registry needed: build scratchpack, build a small static Rust
# program, and pack it into an OCI layout at target/example-layout (tag "latest").
# Prints the packed reference (oci:DIR:TAG@sha256:…) on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl >&2
cargo build --release --locked >&2
mkdir -p target/example
rustc --edition 2021 -O --target x86_64-unknown-linux-musl -o target/example/hello tests/fixtures/hello.rs >&2
./target/release/scratchpack pack target/example/hello --output oci:target/example-layout:latest
