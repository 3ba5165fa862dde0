#!/usr/bin/env bash
# Regenerate tests/upgrade/testdata/prewal-cluster.tar.gz: the data directories
# of a three-coordinator cluster written by the last build before the Raft log
# moved from raft-boltdb (raft/raft.db) to raft-wal (b2c6323), for
# tests/upgrade TestPreWALClusterMigrates.
#
#   scripts/make-prewal-fixture.sh [REV]     (default REV: b2c6323^, i.e. 37ae8d9)
#
# It checks REV out into a temporary git worktree, builds hostplane-coordinator
# and hostplanectl there (then removes the worktree), starts c1 (bootstrapped)
# and joins c2 and c3, all on fixed loopback addresses (127.87.0.N:8420 API,
# 127.87.0.N:8421 Raft: the Raft configuration in the log names them, so the
# test must use the same ones), with a cluster secret and a shared
# key-encryption key file of the fixture's. No Raft TLS and no agent listener:
# the fixture holds no certificate to expire. Then, through the admin socket
# and /v1 with the account's key: two accounts, an API key (no expiry), a
# wallet credit of $25.50, a ticket with a staff reply and a customer reply,
# and $FILLER more tickets, one Raft entry each, so the log holds a few hundred
# entries, more than one batch of the migration's copy (256). The default
# snapshot threshold (8192) is not reached: no snapshot, the whole log is in
# raft.db. Two leadership transfers and a restart of the whole cluster move
# the term on. Every node is stopped cleanly (SIGTERM); the data directories,
# the KEK and manifest.json (what the test checks: ids, the key, the term and
# indexes at the stop) are packed into the tarball, leaving out node logs,
# admin sockets and c3's fsm.db (below). Everything it starts or creates is
# stopped and removed on exit.
#
# Needs: git history holding REV, Go, curl, jq, tar, gzip; the addresses
# 127.87.0.1-3:8420-8421 free.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REV=${1:-b2c6323^}
FILLER=${FILLER:-300}
SECRET=prewal-fixture-cluster-secret-0123456789
OUT=$ROOT/tests/upgrade/testdata/prewal-cluster.tar.gz

work=$(mktemp -d /tmp/prewal-fixture.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  git -C "$ROOT" worktree remove --force "$work/src" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

git -C "$ROOT" worktree add --detach "$work/src" "$REV" >/dev/null
rev=$(git -C "$work/src" rev-parse --short HEAD)
(cd "$work/src" && go build -o "$work/bin/" ./coordinator/cmd/hostplane-coordinator ./coordinator/cmd/hostplanectl)
git -C "$ROOT" worktree remove --force "$work/src"

D=$work/prewal
mkdir -p "$D"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$D/kek"
chmod 600 "$D/kek"

declare -A pid
start() { # start N: coordinator cN in the background
  local n=$1
  "$work/bin/hostplane-coordinator" run --node-id "c$n" --data-dir "$D/c$n" \
    --api-addr "127.87.0.$n:8420" --raft-addr "127.87.0.$n:8421" --metrics-addr "" \
    --bootstrap="$([ "$n" = 1 ] && echo true || echo false)" --bootstrap-account=false \
    --cluster-secret "$SECRET" --webhook-kek-file "$D/kek" --rate-limit 1000000 --log-format text \
    >>"$work/c$n.log" 2>&1 &
  pid[$n]=$!
  pids+=($!)
}
stop_all() { # SIGTERM every node, wait for each to exit
  for n in 1 2 3; do kill -TERM "${pid[$n]}"; done
  for n in 1 2 3; do wait "${pid[$n]}" || { echo "c$n exited with $?; log:"; tail -20 "$work/c$n.log"; exit 1; }; done
}
ready() { # ready N: wait until cN answers /readyz
  for _ in $(seq 300); do
    curl -sf -o /dev/null "http://127.87.0.$1:8420/readyz" && return 0
    sleep 0.1
  done
  echo "c$1 not ready; log:" >&2
  tail -30 "$work/c$1.log" >&2
  exit 1
}
ctl() { "$work/bin/hostplanectl" --socket "$D/c1/admin.sock" --json "$@"; }
status() { "$work/bin/hostplanectl" --socket "$D/c$1/admin.sock" --json cluster status; }
settled() { # wait until all three see one leader in one term with 3 voters
  for _ in $(seq 300); do
    local a b c
    a=$(status 1 2>/dev/null | jq -r '"\(.leader_id)/\(.term)/\(.servers|length)"') || a=x
    b=$(status 2 2>/dev/null | jq -r '"\(.leader_id)/\(.term)/\(.servers|length)"') || b=y
    c=$(status 3 2>/dev/null | jq -r '"\(.leader_id)/\(.term)/\(.servers|length)"') || c=z
    if [ "$a" = "$b" ] && [ "$b" = "$c" ] && [[ $a == c?/*/3 ]]; then return 0; fi
    sleep 0.2
  done
  echo "cluster not settled: $a $b $c" >&2
  exit 1
}
v1() { # v1 METHOD PATH [BODY]: a /v1 call on c2 (a follower forwards it) with the key
  curl -sS --fail-with-body -X "$1" "http://127.87.0.2:8420$2" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' ${3:+--data "$3"}
}

for n in 1 2 3; do start "$n"; done
ready 1
ctl cluster join c2 127.87.0.2:8421 >/dev/null
ctl cluster join c3 127.87.0.3:8421 >/dev/null
ready 2
ready 3
settled

ACC=$(ctl account create --email prewal@example.com --name "Pre-WAL Customer" --country DE | jq -r .id)
OTHER=$(ctl account create --email other@example.com | jq -r .id)
KEY=$(ctl key create "$ACC" --name prewal-fixture | jq -r .key)
ctl wallet credit "$ACC" --amount 25.50 --gateway test --description "fixture deposit" >/dev/null
ctl cluster transfer-leadership --to c2 >/dev/null
settled
TICKET=$(v1 POST /v1/tickets '{"subject":"Written before the WAL","message":"Is my data safe?"}' | jq -r .id)
ctl ticket reply "$TICKET" --as Support --body "Yes: it moves to the WAL on the first start." >/dev/null
v1 POST "/v1/tickets/$TICKET/reply" '{"body":"Thanks!"}' >/dev/null
ctl cluster transfer-leadership --to c3 >/dev/null
settled
for i in $(seq "$FILLER"); do
  v1 POST /v1/tickets "{\"subject\":\"filler $i\",\"message\":\"entry $i\"}" >/dev/null
done
# The whole cluster restarted once on the old build (a new term, the log read back).
stop_all
for n in 1 2 3; do start "$n"; done
for n in 1 2 3; do ready "$n"; done
settled
v1 POST /v1/tickets '{"subject":"after the restart","message":"last ticket before the WAL"}' >/dev/null
TICKETS=$(v1 GET '/v1/tickets?limit=1' | jq -r .total)
BALANCE=$(v1 GET /v1/billing/wallet | jq -r .balance_usd_cents)
sleep 1 # let every follower store the last entries too
st=$(status 1)
LEADER=$(jq -r .leader_id <<<"$st")
st=$(status "${LEADER#c}")
stop_all
pids=()

jq -n --arg rev "$rev" --arg acc "$ACC" --arg other "$OTHER" --arg key "$KEY" --arg ticket "$TICKET" \
  --argjson tickets "$TICKETS" --argjson balance "$BALANCE" --argjson st "$st" --arg secret "$SECRET" '{
  built_from: $rev, cluster_secret: $secret, account_id: $acc, account_email: "prewal@example.com",
  other_account_id: $other, api_key: $key, ticket_id: $ticket, tickets: $tickets, balance_usd_cents: $balance,
  leader: $st.node_id, term: $st.term, last_index: $st.last_index, commit_index: $st.commit_index,
  nodes: {c1: {api: "127.87.0.1:8420", raft: "127.87.0.1:8421"}, c2: {api: "127.87.0.2:8420", raft: "127.87.0.2:8421"},
          c3: {api: "127.87.0.3:8420", raft: "127.87.0.3:8421"}}}' >"$D/manifest.json"
cat "$D/manifest.json"
for n in 1 2 3; do
  test -f "$D/c$n/raft/raft.db" || { echo "c$n has no raft/raft.db" >&2; exit 1; }
  test ! -e "$D/c$n/raft/fsm.db.open" || { echo "c$n did not close its fsm.db" >&2; exit 1; }
  rm -f "$D/c$n/admin.sock"
done
# c3 without its fsm.db (as an operator may delete it, or a crash discards it):
# it rebuilds its state from the log alone, so what it serves is what the
# migration copied. c1 and c2 keep theirs (the usual upgrade).
rm "$D/c3/raft/fsm.db"
mkdir -p "$(dirname "$OUT")"
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner -cf - prewal | gzip -9n >"$OUT"
ls -l "$OUT"
tar -tvzf "$OUT"
