#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: the real tools the integration tests
# drive (registry, skopeo, umoci, runc, oci-image-tool, podman), compilers for the fixtures, and rustup targets.
# Idempotent: it installs only what is missing.
set -euo pipefail

APT_PACKAGES=(
  docker-registry skopeo umoci runc containerd podman oci-image-tool apache2-utils pax-utils python3-pyelftools
  gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static binfmt-support musl-tools
  ca-certificates curl git python3 tzdata zstd openssl hyperfine
  time golang-go busybox-static
)
RUST_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "install-test-deps: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

installed_targets=$(rustup target list --installed)
for target in "${RUST_TARGETS[@]}"; do
  grep -qx "$target" <<<"$installed_targets" || rustup target add "$target"
done

# cargo scratchpack --auditable and the SBOM tests build with it.
if ! command -v cargo-auditable >/dev/null 2>&1; then
  cargo install cargo-auditable --locked
fi

# The SPDX project's own validator, for the SBOM tests (PyPI package spdx-tools).
if ! command -v pyspdxtools >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check spdx-tools
  # Under pyenv the new command needs a shim.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
  command -v pyspdxtools >/dev/null 2>&1 || { echo "pyspdxtools not on PATH after pip install spdx-tools" >&2; exit 1; }
fi

# python-debian's deb822 reads the dpkg records scanners read (tests of /var/lib/dpkg/status.d).
if ! python3 -c "import debian.deb822" >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check python-debian
fi

# Independent verifiers of signatures and DSSE envelopes, for the signing tests (PyPI).
if ! python3 -c "import cryptography, securesystemslib" >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check cryptography securesystemslib
fi
