#!/usr/bin/env bash
# Set up, then run the main job on the embedded default (SQLite + a Qdrant Edge
# shard under CANON_HOME): ingest the sample corpus, approve and publish it as a
# DEMO reviewer, publish the one revised article, and serve the API.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export CANON_HOME=${CANON_HOME:-.canon}
export HF_HUB_OFFLINE=1
PORT=${PORT:-8000}
canon=.venv/bin/canon
DEMO_AUTHOR="demo-author"
DEMO_REVIEWER="demo-reviewer (DEMO ONLY: automated approval, not a real content or clinical review)"

echo "== ingest corpus/ into $CANON_HOME"
$canon ingest corpus --submit --author "$DEMO_AUTHOR"
echo "== approve and publish as $DEMO_REVIEWER"
$canon review approve --all --actor "$DEMO_REVIEWER" --role review --role clinical-review
$canon publish --all --actor "$DEMO_REVIEWER"
echo "== a policy change: billing-office-hours version 2"
$canon ingest corpus/_revisions --submit --author "$DEMO_AUTHOR"
$canon review approve --all --actor "$DEMO_REVIEWER" --role review --role clinical-review
$canon publish --all --actor "$DEMO_REVIEWER"
$canon audit verify
KEY=$($canon keys create demo-patient-channel --scope answer --audience patient --json \
  | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["key"])')

cat <<MSG

== Canon is starting on http://127.0.0.1:$PORT (OpenAPI docs at /docs). Try:

curl -s http://127.0.0.1:$PORT/v1/answer -H 'content-type: application/json' \\
  -H "Authorization: Bearer $KEY" \\
  -d '{"question": "Is the billing office open on Saturday?", "audience": "patient", "channel": "chat"}'

(That key is pinned to the patient audience; make others with: .venv/bin/canon keys create --help)

MSG
exec $canon serve --host 127.0.0.1 --port "$PORT"
