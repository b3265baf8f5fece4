#!/usr/bin/env bash
# scratchpack push benchmark: run by hand (not in CI), on an otherwise idle machine.
#
# What it measures, side by side in one run, against a real registry (`docker-registry serve CONFIG`,
# Debian's distribution 2.8, plain HTTP on 127.0.0.1, filesystem storage in the temp dir):
#   0. The image: `scratchpack pack REF --output oci:LAYOUT:latest`, REF being the 11 MB static reference
#      binary /usr/bin/qemu-riscv64-static (Debian package qemu-user-static): ~3 MB of gzip blobs.
#   1. First push (nothing there yet), wall time of each command, RUNS times, alternating the tools:
#        scratchpack push oci:LAYOUT:latest docker://127.0.0.1:PORT/bench/sp-N:latest -q
#        skopeo copy -q --preserve-digests --dest-tls-verify=false oci:LAYOUT:latest \
#          docker://127.0.0.1:PORT/bench/sk-N:latest
#      --preserve-digests makes skopeo refuse any change to the image, so it pushes the same layers;
#      the script checks that the registry then serves the layout's own manifest digest.
#      Every timed push goes to a registry started for it alone (fresh storage, fresh port; started and
#      stopped outside the timed region, ~40 ms). A fresh repository on a shared registry is not enough:
#      distribution answers blob HEADs per repository, so scratchpack really uploads again there, but
#      skopeo remembers in its blob-info cache (/var/lib/containers/cache as root) which repositories of
#      that registry hold each layer and mounts them (POST ?mount=&from=, 201) instead of uploading.
#      The script shows both, from the registry log, in its "checks" section. In the timed pushes it
#      requires blob upload requests (PUT/PATCH .../blobs/uploads/) and no mounts, for both tools.
#   2. Re-push of the unchanged image into the repository it already went to: `scratchpack push` with
#      hyperfine -N (3 warmups, at least REPUSH_RUNS runs), and the blob upload requests (POST, PATCH,
#      PUT to /blobs/uploads/) the registry logged during all of those re-pushes.
#
# Targets:
#   - median(scratchpack first push) / median(skopeo first push)  <= 1.0
#   - median(scratchpack re-push)                                  <  50 ms
#   - blob upload requests during the re-pushes                    =  0 (so 0 blob bytes sent)
#
# WAN mode (WAN_MS=40): both tools reach each registry through benches/delay_proxy.py, a proxy on
# 127.0.0.1 that forwards each request WAN_MS after its headers arrived (one WAN round trip per request;
# keep-alive and parallel connections pass as they are; WAN_CONNECT_MS adds a wait per new connection,
# a TCP handshake, 0 by default). The first pushes are the same as above. The re-pushes are timed by the
# driver in paired turns (3 warm-up rounds, then REPUSH_RUNS), since each one's requests are counted:
# from the proxy's log, the requests per push and its round trips, the longest chain of requests each
# sent after the previous one's answer (requests in flight together count once). Targets in WAN mode:
#   - median(scratchpack first push) / median(skopeo first push)  <= 0.35
#   - round trips of every scratchpack re-push                     <= 2
#   - blob upload requests during the re-pushes                    =  0
#
# First-push wall times come from a small Python driver (time.perf_counter around subprocess.run, output
# to /dev/null), since each run needs its own registry. Missed targets are reported, not turned into a
# failing exit status; the script exits non-zero only if a tool fails or a check on what was pushed fails.
#
# Usage: bash benches/push.sh   (as root, or with docker-registry skopeo qemu-user-static hyperfine curl
#        installed). It builds with `cargo build --release`, honouring CARGO_TARGET_DIR.
# Knobs: RUNS=15 WARMUP=2 (first pushes, per tool) REPUSH_RUNS=30 WAN_MS=0 WAN_CONNECT_MS=0 (environment
#        variables);
#        SCRATCHPACK_BIN=/path/to/scratchpack benchmarks that binary instead of building one.
set -euo pipefail

REF=/usr/bin/qemu-riscv64-static
RUNS=${RUNS:-15}
WARMUP=${WARMUP:-2}
REPUSH_RUNS=${REPUSH_RUNS:-30}
WAN_MS=${WAN_MS:-0}
WAN_CONNECT_MS=${WAN_CONNECT_MS:-0}
[[ $WAN_MS =~ ^[0-9]+([.][0-9]+)?$ && $WAN_CONNECT_MS =~ ^[0-9]+([.][0-9]+)?$ ]] ||
  { echo "push.sh: WAN_MS and WAN_CONNECT_MS are milliseconds (got '$WAN_MS', '$WAN_CONNECT_MS')" >&2; exit 1; }

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=push.sh
# shellcheck source=benches/common.sh
source "$REPO_ROOT/benches/common.sh"

install_missing "docker-registry docker-registry" "skopeo skopeo" "qemu-user-static $REF" "hyperfine hyperfine" \
  "curl curl" "python3 python3"
skopeo copy --help 2>/dev/null | grep -q -- '--preserve-digests' || die "this skopeo has no copy --preserve-digests (needs 1.6 or later)"
build_scratchpack
commit=$COMMIT

TMP=$(mktemp -d -t scratchpack-push-bench.XXXXXX)
# The driver appends the pid of every registry and proxy it starts to this file (and stops them itself);
# this trap is the backstop for an interrupted run. It kills only live processes listed there that are
# this run's docker-registry or delay_proxy.py (a proxy also stops by itself when the driver is gone).
PIDS=$TMP/registry.pids
: >"$PIDS"
cleanup() {
  local pid
  while read -r pid; do
    [[ $pid =~ ^[0-9]+$ ]] || continue
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' </proc/"$pid"/cmdline |
      grep -q -e '^docker-registry serve '"$TMP" -e "delay_proxy.py .*--log $TMP/"; then
      kill "$pid" 2>/dev/null || true
    fi
  done <"$PIDS"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Benchmark a copy, so that a rebuild during the run cannot change what is measured.
cp "$SCRATCHPACK" "$TMP/scratchpack"
SCRATCHPACK=$TMP/scratchpack

settle
warn_if_busy

printf '%s (%s), %s, %s, %s, reference %s (%s bytes), %s CPUs, load average %s\n' \
  "$("$SCRATCHPACK" --version)" "$commit" "$(skopeo --version)" \
  "$(docker-registry --version | awk '{print "docker-registry " $NF}')" "$(hyperfine --version)" \
  "$REF" "$(stat -c %s "$REF")" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"

# --- The image ---
LAYOUT=$TMP/layout
say "scratchpack pack $REF --output oci:$LAYOUT:latest"
"$SCRATCHPACK" pack "$REF" --output "oci:$LAYOUT:latest" -q >/dev/null || die "scratchpack pack failed (see above)"

# --- The driver: registries, first pushes, checks, re-pushes, table ---
cat >"$TMP/push_bench.py" <<'EOF'
"""Runs the push benchmark; see benches/push.sh. Exits 1 if a tool or a check fails."""
import json, os, re, shlex, signal, socket, statistics, subprocess, sys, time, urllib.request

signal.signal(signal.SIGINT, lambda *_: sys.exit(130))  # Ctrl-C: stop the registries (finally), no traceback

tmp, scratchpack, layout = sys.argv[1], sys.argv[2], sys.argv[3]
runs, warmup, repush_runs = map(int, sys.argv[4:7])
wan_ms, wan_connect_ms = map(float, sys.argv[7:9])
BENCHES = sys.argv[9]
sys.path.insert(0, BENCHES)
sys.dont_write_bytecode = True  # no __pycache__ in the repository
import delay_proxy  # noqa: E402  (benches/delay_proxy.py: its log format, round trips, request patterns)
SOURCE = f"oci:{layout}:latest"
PROBE_UA = "scratchpack-bench-probe"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DEVNULL = subprocess.DEVNULL

index = json.load(open(f"{layout}/index.json"))
MANIFEST_DIGEST = index["manifests"][0]["digest"]
manifest = json.load(open(f"{layout}/blobs/sha256/{MANIFEST_DIGEST.split(':')[1]}"))
BLOBS = [manifest["config"]] + manifest["layers"]
APP_LAYER = max(manifest["layers"], key=lambda d: d["size"])["digest"]
BLOB_BYTES = sum(d["size"] for d in BLOBS)


def fail(message):
    print(f"push.sh: {message}", file=sys.stderr)
    sys.exit(1)


class Registry:
    """docker-registry serve CONFIG on 127.0.0.1:free port, storage and log in DIR; stopped by pid.
    In WAN mode the tools reach it through a delay_proxy.py of its own: `host` is the address the tools
    are given, `direct` the registry's own (for the checks, which are not delayed)."""

    def __init__(self, name):
        self.dir = f"{tmp}/registries/{name}"
        os.makedirs(f"{self.dir}/storage")
        self.log_path = f"{self.dir}/registry.log"
        self.proxy = None
        self.serve()
        self.direct = self.host
        if wan_ms:
            self.proxy_log = f"{self.dir}/proxy.log"
            self.proxy = subprocess.Popen(
                [sys.executable, f"{BENCHES}/delay_proxy.py", "--upstream", self.direct, "--delay-ms", str(wan_ms),
                 "--connect-delay-ms", str(wan_connect_ms), "--log", self.proxy_log],
                stdin=DEVNULL, stdout=subprocess.PIPE, stderr=open(f"{self.dir}/proxy.stderr", "w"), text=True)
            with open(f"{tmp}/registry.pids", "a") as f:
                f.write(f"{self.proxy.pid}\n")
            line = self.proxy.stdout.readline().split()
            if len(line) != 2 or line[0] != "listening":
                self.stop()
                fail(f"delay_proxy.py did not start: {open(f'{self.dir}/proxy.stderr').read()}")
            self.host = line[1]

    def serve(self):
        for attempt in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            self.host = f"127.0.0.1:{self.port}"
            config = f"{self.dir}/config.yml"
            with open(config, "w") as f:
                f.write(
                    "version: 0.1\n"
                    "log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
                    f"storage:\n  filesystem:\n    rootdirectory: \"{self.dir}/storage\"\n"
                    "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                    f"http:\n  addr: {self.host}\n  secret: scratchpack-bench\n"
                    "health:\n  storagedriver:\n    enabled: false\n")
            with open(self.log_path, "w") as log:
                self.proc = subprocess.Popen(["docker-registry", "serve", config], stdin=DEVNULL, stdout=log, stderr=log)
            with open(f"{tmp}/registry.pids", "a") as f:
                f.write(f"{self.proc.pid}\n")
            deadline = time.monotonic() + 30
            while True:
                if self.proc.poll() is not None:
                    if "address already in use" in self.log():
                        break  # another port
                    fail(f"docker-registry exited with {self.proc.returncode}; its log:\n{self.log()}")
                # Ready when `curl -s http://HOST/v2/` answers.
                probe = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-A", PROBE_UA,
                                        f"http://{self.host}/v2/"], stdin=DEVNULL, capture_output=True, text=True)
                if probe.stdout == "200":
                    return
                if time.monotonic() > deadline:
                    self.stop()
                    fail(f"docker-registry did not answer GET http://{self.host}/v2/ in 30 s; its log:\n{self.log()}")
                time.sleep(0.01)
        fail(f"docker-registry found no free port in 5 attempts; last log:\n{self.log()}")

    def proxied(self):
        """The requests the proxy has relayed so far (delay_proxy.py records), once none is in flight."""
        deadline = time.monotonic() + 5
        while True:
            started, done = delay_proxy.read_log(self.proxy_log)
            if started == {r["id"] for r in done}:
                return done
            if time.monotonic() > deadline:
                fail(f"delay_proxy.py: requests {sorted(started - {r['id'] for r in done})} got no answer")
            time.sleep(0.01)

    def stop(self):
        if self.proxy and self.proxy.poll() is None:
            self.proxy.terminate()
            self.proxy.wait()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    ACCESS = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d{3}) \S+ "[^"]*" "([^"]*)"$')

    def requests(self):
        """(method, path, status, user agent) of each access-log line, readiness probes left out."""
        out = []
        for line in self.log().splitlines():
            m = self.ACCESS.search(line)
            if m and m.group(4) != PROBE_UA:
                out.append((m.group(1), m.group(2), int(m.group(3)), m.group(4)))
        return out

    def wait_for(self, predicate, count=1, start=0, timeout=5.0):
        """Waits until `count` logged requests from index `start` on match (a line appears once the
        response is done, which may be a moment after the client saw it)."""
        deadline = time.monotonic() + timeout
        while sum(1 for r in self.requests()[start:] if predicate(r)) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def status(self, method, path, accept=None):
        req = urllib.request.Request(f"http://{self.direct}{path}", method=method,
                                     headers={"User-Agent": PROBE_UA, **({"Accept": accept} if accept else {})})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.headers


def is_upload(r):
    """A request that carries blob bytes, or starts an upload: POST/PATCH/PUT to .../blobs/uploads/."""
    return r[0] in ("POST", "PATCH", "PUT") and "/blobs/uploads/" in r[1]


def is_mount(r):
    return r[0] == "POST" and "/blobs/uploads/" in r[1] and "mount=" in r[1] and r[2] == 201


def is_data(r):
    return r[0] in ("PATCH", "PUT") and "/blobs/uploads/" in r[1]


def command(tool, host, repo):
    dest = f"docker://{host}/{repo}:latest"
    if tool == "scratchpack":
        return [scratchpack, "push", SOURCE, dest, "-q"]
    return ["skopeo", "copy", "-q", "--preserve-digests", "--dest-tls-verify=false", SOURCE, dest]


def push(tool, registry, repo, errlog):
    """Runs one push; returns its wall time in seconds. Exits if it fails."""
    cmd = command(tool, registry.host, repo)
    with open(errlog, "w") as err:
        start = time.perf_counter()
        rc = subprocess.run(cmd, stdin=DEVNULL, stdout=DEVNULL, stderr=err).returncode
        elapsed = time.perf_counter() - start
    if rc != 0:
        fail(f"{shlex.join(cmd)} exited with {rc}:\n{open(errlog).read()}\nregistry log tail:\n"
             + "\n".join(registry.log().splitlines()[-20:]))
    return elapsed


def check_pushed(tool, registry, repo):
    """The repository serves the layout's manifest digest, and every blob; returns the tool's requests."""
    if not registry.wait_for(lambda r: r[0] == "PUT" and r[1] == f"/v2/{repo}/manifests/latest" and r[2] == 201):
        fail(f"{tool}: no 201 manifest PUT for {repo} in the registry log")
    status, headers = registry.status("HEAD", f"/v2/{repo}/manifests/latest", accept=OCI_MANIFEST)
    digest = headers.get("Docker-Content-Digest") if status == 200 else None
    if digest != MANIFEST_DIGEST:
        fail(f"{tool}: {repo}:latest is {digest} (HTTP {status}), not the layout's {MANIFEST_DIGEST}")
    for blob in BLOBS:
        status, _ = registry.status("HEAD", f"/v2/{repo}/blobs/{blob['digest']}")
        if status != 200:
            fail(f"{tool}: blob {blob['digest']} not in {repo} (HEAD {status})")
    return [r for r in registry.requests() if r[1].startswith(f"/v2/{repo}/") or r[1] == "/v2/"]


# --- 1. First pushes: one fresh registry per push ---
first = {"scratchpack": [], "skopeo": []}
traffic = {"scratchpack": [], "skopeo": []}  # (requests, upload requests with data, mounts) per timed push
trips = {"scratchpack": [], "skopeo": []}  # WAN mode: (requests through the proxy, round trips) per timed push
order = []
for i in range(warmup + runs):
    order += [("scratchpack", "skopeo") if i % 2 == 0 else ("skopeo", "scratchpack")]
print(f"==> first pushes: {warmup} warmups + {runs} timed runs per tool, a fresh registry for each", file=sys.stderr)
for i, pair in enumerate(order):
    for tool in pair:
        n = i - warmup
        name = f"{'sp' if tool == 'scratchpack' else 'sk'}-{i}"
        registry = Registry(name)
        try:
            repo = f"bench/{name}"
            elapsed = push(tool, registry, repo, f"{registry.dir}/stderr")
            proxied = registry.proxied() if wan_ms else []
            requests = check_pushed(tool, registry, repo)
        finally:
            registry.stop()
        mine = [r for r in requests if r[3] != PROBE_UA]
        data = sum(1 for r in mine if is_data(r))
        mounts = sum(1 for r in mine if is_mount(r))
        if data == 0 or mounts:
            fail(f"{tool} into a fresh registry: {data} blob upload requests and {mounts} mounts; "
                 "a first push must upload every blob")
        if n >= 0:
            first[tool].append(elapsed)
            traffic[tool].append((len(mine), data, mounts))
            trips[tool].append((len(proxied), delay_proxy.waves(proxied)))
        subprocess.run(["rm", "-rf", f"{registry.dir}/storage"], check=True)

# --- 2. Checks and re-pushes on one registry ---
shared = Registry("shared")
try:
    checks = []
    # A first push, then a second fresh repository on the same registry, for each tool.
    for tool, prefix in (("scratchpack", "sp"), ("skopeo", "sk")):
        for repo in (f"bench/{prefix}-a", f"bench/{prefix}-b"):
            before = len(shared.requests())
            push(tool, shared, repo, f"{shared.dir}/stderr")
            check_pushed(tool, shared, repo)
            mine = [r for r in shared.requests()[before:] if r[3].startswith(tool + "/")]
            checks.append((tool, repo, sum(1 for r in mine if is_data(r)), sum(1 for r in mine if is_mount(r))))
    head_other, _ = shared.status("HEAD", f"/v2/bench/never-pushed/blobs/{APP_LAYER}")
    head_own, _ = shared.status("HEAD", f"/v2/bench/sp-a/blobs/{APP_LAYER}")

    # Re-push into bench/sp-a, which holds the image already; skopeo into bench/sk-a, as a reference.
    before = len(shared.requests())
    if wan_ms:
        # Paired turns timed here, each push's requests taken from the proxy's log.
        print(f"==> re-push: 3 warm-up rounds and {repush_runs} paired turns", file=sys.stderr)
        repush = {tool: {"times": []} for tool in ("scratchpack", "skopeo")}
        repush_trips = {"scratchpack": [], "skopeo": []}  # (requests, round trips, Counter of patterns)
        for i in range(3 + repush_runs):
            for tool in (("scratchpack", "skopeo") if i % 2 == 0 else ("skopeo", "scratchpack")):
                start = len(shared.proxied())
                elapsed = push(tool, shared, "bench/sp-a" if tool == "scratchpack" else "bench/sk-a",
                               f"{shared.dir}/stderr")
                proxied = shared.proxied()[start:]
                if i >= 3:
                    repush[tool]["times"].append(elapsed)
                    repush_trips[tool].append((len(proxied), delay_proxy.waves(proxied),
                                               delay_proxy.summary(proxied)))
        for tool in repush:
            repush[tool]["median"] = statistics.median(repush[tool]["times"])
            repush[tool]["mean"] = statistics.mean(repush[tool]["times"])
    else:
        print(f"==> re-push: hyperfine -N, 3 warmups, at least {repush_runs} runs", file=sys.stderr)
        hf = subprocess.run(["hyperfine", "-N", "--warmup", "3", "--min-runs", str(repush_runs),
                             "--export-json", f"{tmp}/repush.json",
                             "-n", "scratchpack", shlex.join(command("scratchpack", shared.host, "bench/sp-a")),
                             "-n", "skopeo", shlex.join(command("skopeo", shared.host, "bench/sk-a"))], stdin=DEVNULL)
        if hf.returncode != 0:
            fail(f"hyperfine (re-push) exited with {hf.returncode}")
        repush = {r["command"]: r for r in json.load(open(f"{tmp}/repush.json"))["results"]}
    repush_stats = {}
    for tool, prefix in (("scratchpack", "sp"), ("skopeo", "sk")):
        pushes = len(repush[tool]["times"]) + 3
        # Each re-push ends with the manifest (scratchpack: HEAD; skopeo: PUT): wait until all are logged.
        last = ("HEAD", "PUT") if tool == "scratchpack" else ("PUT",)
        if not shared.wait_for(lambda r: r[0] in last and r[1] == f"/v2/bench/{prefix}-a/manifests/latest"
                               and r[3].startswith(tool + "/"), count=pushes, start=before):
            fail(f"the registry log does not show the manifest request of every {tool} re-push")
        during = [r for r in shared.requests()[before:] if r[3].startswith(tool + "/")]
        repush_stats[tool] = {
            "pushes": pushes,
            "requests": len(during),
            "uploads": sum(1 for r in during if is_upload(r)),
            "data": sum(1 for r in during if is_data(r)),
            "mounts": sum(1 for r in during if is_mount(r)),
            "writes": sum(1 for r in during if r[0] not in ("GET", "HEAD")),
        }
finally:
    shared.stop()

# --- Table ---
def ms(seconds):
    return seconds * 1e3


def ok(good):
    return "ok" if good else "MISSED"


print()
if wan_ms:
    print(f"WAN mode: each request delayed {wan_ms:g} ms by benches/delay_proxy.py"
          + (f", each new connection {wan_connect_ms:g} ms" if wan_connect_ms else ""))
print(f"{'first push (fresh registry each run)':<38}{'median ms':>10}{'mean ms':>9}{'min ms':>8}{'max ms':>8}{'runs':>6}"
      f"{'reqs':>6}{'data':>6}{'mount':>6}" + (f"{'rtrips':>7}" if wan_ms else ""))
for tool in ("scratchpack", "skopeo"):
    t = first[tool]
    reqs, data, mounts = (statistics.median(x[k] for x in traffic[tool]) for k in range(3))
    print(f"{tool:<38}{ms(statistics.median(t)):>10.1f}{ms(statistics.mean(t)):>9.1f}{ms(min(t)):>8.1f}"
          f"{ms(max(t)):>8.1f}{len(t):>6}{reqs:>6.0f}{data:>6.0f}{mounts:>6.0f}"
          + (f"{statistics.median(x[1] for x in trips[tool]):>7.0f}" if wan_ms else ""))
print(f"  (reqs: requests per push; data: PATCH/PUT to /blobs/uploads/; mount: 201 cross-repository mounts; "
      f"{len(BLOBS)} blobs, {BLOB_BYTES} bytes" + ("; rtrips: sequential round trips, medians" if wan_ms else "") + ")")
for tool in ("scratchpack", "skopeo"):
    r, st = repush[tool], repush_stats[tool]
    print(f"{tool + ' re-push (same repository)':<38}{ms(r['median']):>10.1f}{ms(r['mean']):>9.1f}{ms(min(r['times'])):>8.1f}"
          f"{ms(max(r['times'])):>8.1f}{len(r['times']):>6}{st['requests'] / st['pushes']:>6.1f}"
          f"{st['data'] / st['pushes']:>6.1f}{st['mounts'] / st['pushes']:>6.1f}"
          + (f"{statistics.median(x[1] for x in repush_trips[tool]):>7.0f}" if wan_ms else ""))
if wan_ms:
    print("  (re-push rows: paired turns after 3 warm-up rounds; reqs, data and mount per push, warm-ups included)")
    for tool in ("scratchpack", "skopeo"):
        counts = repush_trips[tool][-1][2]
        print(f"  one {tool} re-push: " + ", ".join(f"{n} x {k}" for k, n in sorted(counts.items())))
else:
    print("  (re-push rows: hyperfine -N, 3 warmups; reqs, data and mount per push, warmups included)")

sp = repush_stats["scratchpack"]
ratio = statistics.median(first["scratchpack"]) / statistics.median(first["skopeo"])
paired = statistics.median(a / b for a, b in zip(first["scratchpack"], first["skopeo"]))
repush_ms = ms(repush["scratchpack"]["median"])
budget = 0.35 if wan_ms else 1.0
print()
print(f"{'target':<56}{'value':>8}  budget")
print(f"{'scratchpack / skopeo, first push (medians)':<56}{ratio:>8.2f}  <= {budget:<5}{ok(ratio <= budget)}")
print(f"{'  median of the per-round ratios':<56}{paired:>8.2f}")
if wan_ms:
    most = max(x[1] for x in repush_trips["scratchpack"])
    reqs = max(x[0] for x in repush_trips["scratchpack"])
    print(f"{'round trips of a scratchpack re-push, the most':<56}{most:>8}  <= 2    {ok(most <= 2)}")
    print(f"{'  requests of a scratchpack re-push, the most':<56}{reqs:>8}")
    print(f"{'scratchpack / skopeo, re-push (medians)':<56}"
          f"{repush['scratchpack']['median'] / repush['skopeo']['median']:>8.2f}")
else:
    print(f"{'scratchpack re-push, median ms':<56}{repush_ms:>8.1f}  < 50    {ok(repush_ms < 50)}")
label = f"blob upload requests in {sp['pushes']} scratchpack re-pushes"
print(f"{label:<56}{sp['uploads']:>8}  = 0     {ok(sp['uploads'] == 0)}")
print(f"{'  of which PATCH/PUT carrying blob bytes':<56}{sp['data']:>8}")
print(f"{'  scratchpack requests other than GET/HEAD':<56}{sp['writes']:>8}")

print(f"{'load average at the end (1, 5, 15 min)':<56}{' '.join(open('/proc/loadavg').read().split()[:3]):>8}")

print()
print("checks on one shared registry (from its access log)")
for tool, repo, data, mounts in checks:
    print(f"  {tool:<12} first push into {repo:<12} {data:>2} blob upload PATCH/PUT, {mounts} mounts")
print(f"  HEAD app layer in a repository that never got it: {head_other} "
      f"({'per repository, as expected' if head_other == 404 else 'UNEXPECTED: the registry answers across repositories'})")
print(f"  HEAD app layer in bench/sp-a, which got it:        {head_own}")
if head_own != 200:
    fail("the shared registry does not serve a pushed blob")
EOF

python3 "$TMP/push_bench.py" "$TMP" "$SCRATCHPACK" "$LAYOUT" "$RUNS" "$WARMUP" "$REPUSH_RUNS" "$WAN_MS" \
  "$WAN_CONNECT_MS" "$REPO_ROOT/benches"
