#!/usr/bin/env bash
# The lint, type check and test suite against the newest versions pyproject.toml allows
# (resolved today, ignoring uv.lock), in .venv-latest. Exit status is the suite's; .ci/run
# reports a failure here as a warning, since only a new upstream release can cause it.
# Called by `make test-latest`; UV and PYTHON come from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
PYTHON=${PYTHON:-python3}
venv=.venv-latest
rm -rf "$venv"
"$UV" venv --quiet --python "$PYTHON" "$venv"
"$UV" pip install --quiet --python "$venv/bin/python" --upgrade --refresh -e '.[dev,asr,plots]'
echo "test-latest: newest allowed versions that differ from uv.lock:"
"$UV" export --frozen --quiet --no-hashes --no-emit-project --all-extras -o "$venv/locked.txt"
"$UV" pip freeze --python "$venv/bin/python" --exclude-editable | sort >"$venv/latest.txt"
grep -v '^ *#\|^ *$' "$venv/locked.txt" | sed 's/ *;.*//; s/ *\\$//' | sort >"$venv/locked.sorted"
comm -13 "$venv/locked.sorted" "$venv/latest.txt" | sed 's/^/  /' || true
"$venv/bin/ruff" check streamserver handlers tests scripts
"$venv/bin/mypy" streamserver handlers
"$venv/bin/pytest" -q -p no:cacheprovider
