#!/usr/bin/env bash
# Opt-in check (not part of `npm test`): runs examples/n8n/parley-legacy-worker.json in a REAL
# n8n against Parley and verifies both customers got n8n's replies.
#
#   N8N_DIR=/path/to/scratch scripts/check-n8n.sh
#
# N8N_DIR holds an n8n install made as /work/shared/REAL-N8N.md describes, outside this
# repository: $N8N_DIR/node22/node_modules/node/bin/node (Node 22) and
# $N8N_DIR/app/node_modules/.bin/n8n (n8n 1.123.x). Parley: PARLEY + ADMIN point at a running
# instance; otherwise one is started here (`npm start` on free ports, DATABASE_URL if set,
# else embedded PostgreSQL) and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${N8N_DIR:?set N8N_DIR to the scratch folder holding node22/ and app/ (see /work/shared/REAL-N8N.md)}"
NODE22_BIN="$N8N_DIR/node22/node_modules/node/bin"
N8N="$N8N_DIR/app/node_modules/.bin/n8n"
[ -x "$NODE22_BIN/node" ] || { echo "no Node 22 at $NODE22_BIN/node" >&2; exit 2; }
[ -x "$N8N" ] || { echo "no n8n at $N8N" >&2; exit 2; }

work="$(mktemp -d)"
chmod 755 "$work"  # the embedded PostgreSQL runs as user postgres and keeps its data here
parley_pid=""
cleanup() {
  # Parley runs in its own process group: stopping the group stops its Temporal and PostgreSQL too.
  if [ -n "$parley_pid" ]; then kill -TERM -- "-$parley_pid" 2>/dev/null || true; wait "$parley_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
json() { node -e "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>{const v=JSON.parse(d);console.log($1)})"; }

if [ -z "${PARLEY:-}" ]; then
  port="$(free_port)"
  ADMIN="prl_admin_check_n8n_$(node -e "console.log(require('crypto').randomBytes(8).toString('hex'))")"
  PORT="$port" TEMPORAL_PORT="$(free_port)" TEMPORAL_UI_PORT="$(free_port)" EMBEDDED_PG_PORT="$(free_port)" \
    DATA_DIR="$work/parley" ADMIN_API_KEY="$ADMIN" LOG_LEVEL=warn setsid node_modules/.bin/tsx scripts/start.ts > "$work/parley.log" 2>&1 &
  parley_pid=$!
  PARLEY="http://127.0.0.1:$port"
  for _ in $(seq 1 120); do curl -sf "$PARLEY/health" > /dev/null && break; sleep 1; done
  curl -sf "$PARLEY/health" > /dev/null || { echo "Parley did not start:" >&2; cat "$work/parley.log" >&2; exit 1; }
fi
: "${ADMIN:?set ADMIN to the admin key of the Parley at PARLEY}"
echo "Parley at $PARLEY"

tenant="n8n-check-$(node -e "console.log(require('crypto').randomBytes(3).toString('hex'))")"
key="$(curl -sf -X POST "$PARLEY/routes/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d "{\"id\":\"$tenant\",\"name\":\"n8n check\"}" | json v.api_key)"
curl -sf -X PATCH "$PARLEY/routes/tenants/$tenant" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"mode":"legacy_n8n","legacy_reply_timeout_s":120}' > /dev/null
customer="+1555$(shuf -i 1000000-9999999 -n 1)"
shopper="+1555$(shuf -i 1000000-9999999 -n 1)"
curl -sf -X POST "$PARLEY/webhook/inbound" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "{\"from\":\"$customer\",\"message\":\"Hello from WhatsApp\",\"tenant_id\":\"$tenant\",\"timestamp\":\"$(date -u +%FT%TZ)\"}" > /dev/null
curl -sf -X POST "$PARLEY/queue/jobs" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "{\"job_type\":\"data_lookup\",\"tenant_id\":\"$tenant\",\"query\":\"order status\",\"parameters\":{\"order_id\":\"12345\",\"customer_phone\":\"$shopper\"},\"data_source\":\"crm_api\"}" > /dev/null

# The example with its two Config values filled in, under a fixed id so it can be executed.
wf_id="parleyCheck$(node -e "console.log(require('crypto').randomBytes(3).toString('hex'))")"
node -e "
  const wf = require('./examples/n8n/parley-legacy-worker.json');
  wf.id = '$wf_id';
  const config = wf.nodes.find((n) => n.name === 'Config');
  for (const a of config.parameters.assignments.assignments) a.value = a.name === 'base_url' ? '$PARLEY' : '$key';
  require('fs').writeFileSync('$work/workflow.json', JSON.stringify(wf));
"
export PATH="$NODE22_BIN:$PATH" N8N_USER_FOLDER="$work/n8n" N8N_RUNNERS_ENABLED=false N8N_DIAGNOSTICS_ENABLED=false \
  N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS=false N8N_LOG_LEVEL=warn
"$N8N" import:workflow --input="$work/workflow.json"
# One job per execution: the conversation's message job and the data lookup.
for run in 1 2; do
  echo "n8n execution $run"
  "$N8N" execute --id="$wf_id" > "$work/n8n-run-$run.log" 2>&1 || { cat "$work/n8n-run-$run.log" >&2; exit 1; }
done

sent() { curl -sf "$PARLEY/routes/tenants/$tenant/sandbox/messages?to=$(node -e "console.log(encodeURIComponent('$1'))")" -H "Authorization: Bearer $key" | json "v.messages.map((m) => m.text).join(' | ')"; }
got_customer="$(sent "$customer")"
got_shopper="$(sent "$shopper")"
echo "customer got: $got_customer"
echo "shopper got:  $got_shopper"
[ "$got_customer" = 'Thanks for your message! You wrote: "Hello from WhatsApp"' ] || { echo "FAIL: message job reply" >&2; exit 1; }
[ "$got_shopper" = 'Order #12345: looked up "order status" in crm_api.' ] || { echo "FAIL: data_lookup reply" >&2; exit 1; }
echo "OK: real n8n answered a message job and a data_lookup job through Parley"
