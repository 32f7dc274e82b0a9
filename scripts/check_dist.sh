#!/usr/bin/env bash
# Build the sdist and wheel, install the wheel into a fresh venv outside the repository (with
# the lock's versions), and check that the installed command starts and serves.
# Called by `make dist-check` (and so by .ci/run); UV and PYTHON come from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

rm -rf dist
"$UV" build --quiet --out-dir dist
ls dist/*.whl dist/*.tar.gz >/dev/null
wheel=$(ls dist/*.whl)
"$PYTHON" - "$wheel" <<'PY' || { echo "dist-check: the wheel lacks the emulator's speech samples" >&2; exit 1; }
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sys.exit(0 if any(n.startswith("streamserver/emulator/samples/") and n.endswith(".wav") for n in names) else 1)
PY

"$UV" export --frozen --quiet --no-hashes --no-emit-project --no-dev -o "$work/constraints.txt"
"$UV" venv --quiet --python "$PYTHON" "$work/venv"
"$UV" pip install --quiet --python "$work/venv/bin/python" -c "$work/constraints.txt" "$wheel"

cd "$work"  # away from the repository: only the installed wheel can be imported
venv/bin/streamserver serve --help >/dev/null
venv/bin/python - <<'PY'
import streamserver, handlers.recorder, pathlib
assert "site-packages" in pathlib.Path(streamserver.__file__).parts, streamserver.__file__
PY
port=$(venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
venv/bin/streamserver serve --port "$port" --record-dir "$work/rec" --handlers recorder,echo \
    >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    if venv/bin/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null; then
        kill -TERM "$server_pid"; wait "$server_pid"; rc=$?; server_pid=""
        [[ $rc -eq 0 ]] || { echo "dist-check: serve exited $rc on SIGTERM" >&2; cat "$work/serve.log" >&2; exit 1; }
        echo "dist-check: $(basename "$wheel") installs in a fresh venv and serves (/healthz 200, SIGTERM exit 0)"
        exit 0
    fi
    sleep 0.1
done
echo "dist-check: the installed server did not answer /healthz within 10 s" >&2
cat "$work/serve.log" >&2
exit 1
