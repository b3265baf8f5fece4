# Shared by benches/pack.sh and benches/push.sh (sourced, not run): messages, installing the Debian
# packages a benchmark needs, building scratchpack, and the load warning.
#
# The caller sets BENCH_NAME (for messages) and REPO_ROOT before sourcing.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }

# install_missing "PACKAGE COMMAND-OR-PATH"...: apt-get installs the packages whose command (or
# absolute path) is missing, and only those. Needs root when something is missing.
install_missing() {
  local entry pkg what missing=()
  for entry in "$@"; do
    read -r pkg what <<<"$entry"
    if [[ $what == /* ]]; then [[ -x $what ]] || missing+=("$pkg"); else command -v "$what" >/dev/null || missing+=("$pkg"); fi
  done
  ((${#missing[@]})) || return 0
  if [[ " ${missing[*]} " == *" qemu-user-static "* ]]; then
    say "the reference binary $REF is missing; it comes from Debian's qemu-user-static"
  fi
  ((EUID == 0)) || die "missing packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}"
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-cache show "${missing[@]}" >/dev/null 2>&1 || apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build_scratchpack: sets SCRATCHPACK to the binary to measure (SCRATCHPACK_BIN, else a release build,
# honouring CARGO_TARGET_DIR) and COMMIT to what it was built from.
build_scratchpack() {
  local target_dir=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
  [[ $target_dir == /* ]] || target_dir=$REPO_ROOT/$target_dir
  COMMIT=$(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo unknown)
  if [[ -n ${SCRATCHPACK_BIN:-} ]]; then
    SCRATCHPACK=$SCRATCHPACK_BIN
    [[ -x $SCRATCHPACK ]] || die "SCRATCHPACK_BIN=$SCRATCHPACK is not an executable file"
    COMMIT="prebuilt $SCRATCHPACK"
    return
  fi
  command -v cargo >/dev/null || die "cargo not found (install Rust with rustup)"
  say "cargo build --release (target dir $target_dir)"
  (cd "$REPO_ROOT" && CARGO_TARGET_DIR=$target_dir cargo build --release --quiet)
  SCRATCHPACK=$target_dir/release/scratchpack
  [[ -x $SCRATCHPACK ]] || die "no binary at $SCRATCHPACK after the build"
}

# settle: flush what the build wrote and wait (up to 60 s) for the load average to fall under 0.6, so
# that the first command timed does not pay for the build's write-back.
settle() {
  sync
  local load1 _ waited=0
  while read -r load1 _ </proc/loadavg && awk -v l="$load1" 'BEGIN { exit !(l > 0.6) }' && ((waited < 60)); do
    sleep 2
    waited=$((waited + 2))
  done
  ((waited == 0)) || say "waited ${waited} s for the machine to settle (load average now $load1)"
}

warn_if_busy() {
  local load1 _
  read -r load1 _ </proc/loadavg
  if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    say "warning: load average is $load1; other work on this machine will skew the timings"
  fi
}
