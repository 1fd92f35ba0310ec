#!/bin/bash
# interrupt.sh PLAYBOOK MARKER: run PLAYBOOK on the scenario's inventory, SIGKILL the
# whole run a few seconds after MARKER appears in its output. Fails if the run ends
# before that (nothing would have been interrupted).
set -euo pipefail
playbook=$1 marker=$2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
setsid ansible-playbook -i "$(dirname "$MOLECULE_INVENTORY_FILE")" "$playbook" >"$log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  if grep -qF "$marker" "$log"; then
    sleep 5
    kill -KILL -- "-$pid"
    wait "$pid" || true
    tail -n 5 "$log"
    echo "killed the run 5 s after: $marker"
    exit 0
  fi
  sleep 1
done
tail -n 40 "$log"
echo "the run ended before '$marker' appeared: nothing was interrupted" >&2
exit 1
