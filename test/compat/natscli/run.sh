#!/usr/bin/env bash
# The compatibility scenarios driven with the nats CLI (the version pinned in scripts/versions.env),
# each as a user would type it: `nats -s $NTG_URL --tlscert … --tlskey … --tlsca … <command>`.
# A scenario the CLI cannot express is n/a with the reason. Contract: test/compat/README.md.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
nats_bin="$("$root/scripts/nats-servers.sh" natscli)"
run="$NTG_RUN"
tenant="$NTG_TENANT"
stream="$NTG_STREAM"

work="$(mktemp -d "${TMPDIR:-/tmp}/compat-natscli.XXXXXX")"
bg_pids=()
stop_bg() {
  local pid
  for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${bg_pids[@]}"; do wait "$pid" 2>/dev/null; done
  bg_pids=()
}
trap 'stop_bg; rm -rf "$work"' EXIT
# No user configuration or context may change what the commands do.
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config"
unset NATS_URL NATS_CONTEXT NATS_CERT NATS_KEY NATS_CA
mkdir -p "$HOME"

edge=("$nats_bin" -s "$NTG_URL" --tlscert "$NTG_EDGE_CERT" --tlskey "$NTG_EDGE_KEY" --tlsca "$NTG_CA" --connection-name compat-natscli-edge)
admin=("$nats_bin" -s "$NTG_URL" --tlscert "$NTG_ADMIN_CERT" --tlskey "$NTG_ADMIN_KEY" --tlsca "$NTG_CA" --connection-name compat-natscli-admin)
api_prefix="\$JS.$tenant.API"

# Every command is bounded; its output (stdout and stderr) is what the checks read.
e() { timeout 10 "${edge[@]}" "$@" 2>&1; }
a() { timeout 10 "${admin[@]}" "$@" 2>&1; }
aj() { timeout 10 "${admin[@]}" --js-api-prefix "$api_prefix" "$@" 2>&1; }

# background <file> <edge|admin> <args…>: a long-running command (subscriber, responder) in the background.
background() {
  local out="$1" who="$2"
  shift 2
  local cmd=("${edge[@]}")
  [ "$who" = admin ] && cmd=("${admin[@]}")
  timeout 30 "${cmd[@]}" "$@" >"$out" 2>&1 &
  bg_pids+=($!)
}

# wait_for <file> <extended regex> [count] [seconds]: until the file has that many matching lines.
wait_for() {
  local file="$1" pattern="$2" count="${3:-1}" seconds="${4:-5}" i
  for ((i = 0; i < seconds * 10; i++)); do
    [ "$(grep -cE -- "$pattern" "$file" 2>/dev/null)" -ge "$count" ] && return 0
    sleep 0.1
  done
  return 1
}

# The last lines worth quoting from a command's output: its errors, else its tail.
said() {
  local text
  text="$(printf '%s\n' "$1" | grep -iE 'error|fail|denied|violation|not found|no responders|closed|timeout' | tail -3)"
  [ -n "$text" ] || text="$(printf '%s\n' "$1" | tail -3)"
  printf '%s' "$text" | tr '\n' ' ' | tr -s ' ' | cut -c1-400
}

json_escape() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="$(printf '%s' "$s" | tr '\n\r\t' '   ' | tr -d '\000-\037')"
  printf '%s' "$s"
}

emit() { printf '{"scenario":"%s","result":"%s","detail":"%s"}\n' "$1" "$2" "$(json_escape "$3")"; }

# A JSON check with node (always present where the suite runs): prints nothing when the
# expression holds, else the value it looked at.
json_check() {
  local expr="$1" text="$2"
  printf '%s' "$text" | node -e '
    let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
      let v; try { v = JSON.parse(s); } catch { console.log("not JSON: " + s.slice(0, 200)); return; }
      const ok = (new Function("v", "return (" + process.argv[1] + ");"))(v);
      if (!ok) console.log(JSON.stringify(v).slice(0, 300));
    });' "$expr"
}

no_prefix() {
  if printf '%s' "$2" | grep -qF "$tenant."; then
    DETAIL="$1 shows the tenant prefix \"$tenant.\": $(printf '%s' "$2" | grep -F "$tenant." | head -2 | tr '\n' ' ' | cut -c1-200)"
    return 1
  fi
}

rm_consumer() { e consumer rm "$stream" "$1" -f >/dev/null; }

DETAIL=""
# Each scenario returns 0 (pass), 1 (fail, DETAIL says why) or 2 (n/a, DETAIL says why).

s_connect() {
  local out
  out="$(e pub "compat.$run.connect" hello)" || { DETAIL="nats pub: $(said "$out")"; return 1; }
}

s_pubsub() {
  local subject="compat.$run.pubsub" out
  background "$work/sub" edge sub "$subject" --count 3
  wait_for "$work/sub" "Subscribing on" || { DETAIL="subscriber not ready: $(said "$(cat "$work/sub")")"; return 1; }
  out="$(e pub "$subject" 'm{{Count}}' --count 3)" || { DETAIL="nats pub: $(said "$out")"; return 1; }
  wait_for "$work/sub" "Received on \"$subject\"" 3 || { DETAIL="subscriber received $(grep -c 'Received on' "$work/sub") of 3: $(said "$(cat "$work/sub")")"; return 1; }
  for i in 1 2 3; do grep -qx "m$i" "$work/sub" || { DETAIL="payload m$i missing"; return 1; }; done
}

s_queue() {
  local subject="compat.$run.queue" out total
  background "$work/q1" edge sub "$subject" --queue workers
  background "$work/q2" edge sub "$subject" --queue workers
  wait_for "$work/q1" "Subscribing on" && wait_for "$work/q2" "Subscribing on" || { DETAIL="subscribers not ready"; return 1; }
  out="$(e pub "$subject" 'm{{Count}}' --count 20)" || { DETAIL="nats pub: $(said "$out")"; return 1; }
  for _ in $(seq 50); do
    total=$(($(grep -c 'Received on' "$work/q1") + $(grep -c 'Received on' "$work/q2")))
    [ "$total" -ge 20 ] && break
    sleep 0.1
  done
  sleep 0.3
  total=$(($(grep -c 'Received on' "$work/q1") + $(grep -c 'Received on' "$work/q2")))
  [ "$total" -eq 20 ] || { DETAIL="the queue group received $total messages, expected each of 20 once"; return 1; }
  [ "$(cat "$work/q1" "$work/q2" | grep -E '^m[0-9]+$' | sort -u | wc -l)" -eq 20 ] || { DETAIL="duplicate or missing payloads in the queue group"; return 1; }
}

s_request_reply() {
  local subject="compat.$run.rr" out
  background "$work/reply" edge reply "$subject" 're:ping' --count 1
  wait_for "$work/reply" "Listening on" || { DETAIL="responder not ready: $(said "$(cat "$work/reply")")"; return 1; }
  out="$(e req "$subject" ping --raw)" || { DETAIL="nats req: $(said "$out")"; return 1; }
  printf '%s\n' "$out" | grep -qx 're:ping' || { DETAIL="reply: $(said "$out")"; return 1; }
}

s_no_responders() {
  local started elapsed out
  started=$(date +%s%N)
  out="$(e req "compat.$run.nobody" x --timeout 5s)"
  elapsed=$((($(date +%s%N) - started) / 1000000))
  printf '%s' "$out" | grep -qi 'no responders' || { DETAIL="expected the no-responders answer, got after ${elapsed} ms: $(said "$out")"; return 1; }
  [ "$elapsed" -lt 2500 ] || { DETAIL="no-responders answer only after ${elapsed} ms"; return 1; }
}

s_headers() {
  local subject="compat.$run.headers" out
  background "$work/sub" edge sub "$subject" --count 1
  wait_for "$work/sub" "Subscribing on" || { DETAIL="subscriber not ready"; return 1; }
  out="$(e pub "$subject" 'with headers' -H "X-Compat:$run" -H X-Multi:a -H X-Multi:b)" || { DETAIL="nats pub: $(said "$out")"; return 1; }
  wait_for "$work/sub" "Received on" || { DETAIL="no message: $(said "$(cat "$work/sub")")"; return 1; }
  grep -q "X-Compat: $run" "$work/sub" && grep -q "X-Multi: a" "$work/sub" && grep -q "X-Multi: b" "$work/sub" || { DETAIL="headers: $(grep -E '^X-' "$work/sub" | tr '\n' ' ')"; return 1; }
}

s_echo_false() {
  DETAIL="the nats CLI has no option to connect with echo: false"
  return 2
}

s_drain() {
  DETAIL="the nats CLI has no drain operation to drive (it drains only when a command exits)"
  return 2
}

s_flush_rtt() {
  local out
  out="$(e rtt)" || { DETAIL="nats rtt: $(said "$out")"; return 1; }
  printf '%s' "$out" | grep -qE ': [0-9.]+(ns|µs|us|ms|s)$' || { DETAIL="no round-trip time: $(said "$out")"; return 1; }
}

s_max_payload() {
  local out shown bytes
  out="$(e account info)" || { DETAIL="nats account info: $(said "$out")"; return 1; }
  shown="$(printf '%s\n' "$out" | grep -m1 'Maximum Payload:' | sed 's/.*Maximum Payload: *//')"
  bytes="$(printf '%s' "$shown" | awk '{ m = ($2 == "KiB") ? 1024 : ($2 == "MiB") ? 1048576 : ($2 == "GiB") ? 1073741824 : 1; printf "%d", $1 * m }')"
  [ "$bytes" = "$NTG_MAX_PAYLOAD" ] || { DETAIL="the CLI shows Maximum Payload \"$shown\", expected $NTG_MAX_PAYLOAD bytes"; return 1; }
  out="$(head -c $((NTG_MAX_PAYLOAD + 1)) /dev/zero | e pub "compat.$run.big" --force-stdin)" && { DETAIL="the CLI published $((NTG_MAX_PAYLOAD + 1)) bytes: $(said "$out")"; return 1; }
  printf '%s' "$out" | grep -qi 'maximum payload exceeded' || { DETAIL="publishing max_payload+1 bytes: $(said "$out")"; return 1; }
}

s_reconnect() {
  local subject="compat.$run.reconnect" out
  # --trace makes the CLI log its reconnects.
  timeout 60 "${edge[@]}" --trace sub "$subject" >"$work/rsub" 2>&1 &
  bg_pids+=($!)
  wait_for "$work/rsub" "Subscribing on" || { DETAIL="subscriber not ready"; return 1; }
  e pub "$subject" before >/dev/null
  wait_for "$work/rsub" '^before$' || { DETAIL="no message before the restart"; return 1; }
  echo '{"control":"restart-gateway"}'
  read -r _restarted
  wait_for "$work/rsub" 'Reconnected to|Connection is closed' 1 15 && grep -q 'Reconnected to' "$work/rsub" || { DETAIL="the subscriber did not reconnect: $(grep '>>>' "$work/rsub" | tail -3 | tr '\n' ' ')"; return 1; }
  out="$(e pub "$subject" after)" || { DETAIL="nats pub after the restart: $(said "$out")"; return 1; }
  wait_for "$work/rsub" '^after$' || { DETAIL="the reconnected subscriber did not receive the message published after the restart"; return 1; }
}

s_js_publish_ack() {
  local out
  out="$(e pub "events.compat.$run.ack" x --jetstream)" || { DETAIL="nats pub --jetstream: $(said "$out")"; return 1; }
  printf '%s' "$out" | grep -qE "Stored in Stream: $stream Sequence: [0-9]+" || { DETAIL="no publish ack: $(said "$out")"; return 1; }
}

s_js_msg_id_dedupe() {
  local subject="events.compat.$run.dedupe" first second
  first="$(e pub "$subject" once --jetstream -H "Nats-Msg-Id:dedupe-$run")" || { DETAIL="first publish: $(said "$first")"; return 1; }
  second="$(e pub "$subject" once --jetstream -H "Nats-Msg-Id:dedupe-$run")" || { DETAIL="second publish: $(said "$second")"; return 1; }
  printf '%s' "$first" | grep -q 'Duplicate' && { DETAIL="first publish reported duplicate: $(said "$first")"; return 1; }
  printf '%s' "$second" | grep -q 'Duplicate: true' || { DETAIL="second publish not reported duplicate: $(said "$second")"; return 1; }
  [ "$(printf '%s' "$first" | grep -oE 'Sequence: [0-9]+')" = "$(printf '%s' "$second" | grep -oE 'Sequence: [0-9]+')" ] || { DETAIL="sequences differ: $(said "$first") / $(said "$second")"; return 1; }
}

s_js_stream_info() {
  local out bad
  out="$(e stream info "$stream" --json)" || { DETAIL="nats stream info: $(said "$out")"; return 1; }
  bad="$(json_check "JSON.stringify(v.config.subjects) === JSON.stringify([\"$stream.>\"])" "$out")"
  [ -z "$bad" ] || { DETAIL="stream info subjects: $bad"; return 1; }
  no_prefix "stream info" "$out"
}

s_js_stream_names_list() {
  local names list found
  names="$(e stream ls --names)" || { DETAIL="nats stream ls --names: $(said "$names")"; return 1; }
  printf '%s\n' "$names" | grep -qx "$stream" || { DETAIL="stream ls --names: $(said "$names")"; return 1; }
  list="$(e stream ls)" || { DETAIL="nats stream ls: $(said "$list")"; return 1; }
  printf '%s' "$list" | grep -q "$stream" || { DETAIL="stream ls: $(said "$list")"; return 1; }
  found="$(e stream ls --subject "events.compat.$run.x" --names)" || { DETAIL="nats stream ls --subject: $(said "$found")"; return 1; }
  [ "$(printf '%s' "$found" | tr -d '[:space:]')" = "$stream" ] || { DETAIL="stream ls --subject events.compat.$run.x: $(said "$found")"; return 1; }
  no_prefix "stream ls" "$names$list$found"
}

s_js_pull_fetch() {
  local subject="events.compat.$run.fetch" name="compat-$run-fetch" out
  for i in 0 1 2; do out="$(e pub "$subject" "m$i" --jetstream)" || { DETAIL="publish: $(said "$out")"; return 1; }; done
  out="$(e consumer add "$stream" "$name" --pull --filter "$subject" --ack explicit --deliver all --defaults)" || { DETAIL="nats consumer add: $(said "$out")"; return 1; }
  out="$(e consumer next "$stream" "$name" --count 3 --ack)"
  local rc=$?
  rm_consumer "$name"
  [ $rc -eq 0 ] || { DETAIL="nats consumer next: $(said "$out")"; return 1; }
  [ "$(printf '%s\n' "$out" | grep -c "subj: $subject ")" -eq 3 ] && [ "$(printf '%s\n' "$out" | grep -c 'Acknowledged message')" -eq 3 ] || { DETAIL="consumer next: $(said "$out")"; return 1; }
  [ "$(printf '%s\n' "$out" | grep -E '^m[0-9]$' | tr '\n' ' ')" = "m0 m1 m2 " ] || { DETAIL="payloads: $(printf '%s\n' "$out" | grep -E '^m[0-9]$' | tr '\n' ' ')"; return 1; }
}

s_js_consume() {
  local subject="events.compat.$run.consume" out
  for i in 0 1 2; do out="$(e pub "$subject" "m$i" --jetstream)" || { DETAIL="publish: $(said "$out")"; return 1; }; done
  # `nats sub --stream` consumes continuously from a consumer it creates.
  out="$(e sub --stream "$stream" "$subject" --all --count 3)" || { DETAIL="nats sub --stream: $(said "$out")"; return 1; }
  [ "$(printf '%s\n' "$out" | grep -c "Received JetStream message: stream: $stream seq: [0-9]* / pending: [0-9]* / subject: $subject ")" -eq 3 ] || { DETAIL="nats sub --stream: $(said "$out")"; return 1; }
}

s_js_ordered() {
  local subject="events.compat.$run.ordered" out
  for i in 0 1 2; do out="$(e pub "$subject" "m$i" --jetstream)" || { DETAIL="publish: $(said "$out")"; return 1; }; done
  # The CLI's ordered consumer: `nats bench js ordered` consumes --msgs messages with one.
  out="$(e bench js ordered --stream "$stream" --filter "$subject" --msgs 3 --no-progress)" || { DETAIL="nats bench js ordered: $(said "$out")"; return 1; }
  printf '%s' "$out" | grep -q 'ordered ephemeral consumer stats' || { DETAIL="nats bench js ordered: $(said "$out")"; return 1; }
}

s_js_push_deliver() {
  local subject="events.compat.$run.push" name="compat-$run-push" deliver="compat.$run.push-deliver" out bad
  for i in 0 1 2; do out="$(e pub "$subject" "m$i" --jetstream)" || { DETAIL="publish: $(said "$out")"; return 1; }; done
  out="$(e consumer add "$stream" "$name" --target "$deliver" --filter "$subject" --ack explicit --deliver all --defaults)" || { DETAIL="nats consumer add --target: $(said "$out")"; return 1; }
  out="$(e consumer info "$stream" "$name" --json)" || { rm_consumer "$name"; DETAIL="nats consumer info: $(said "$out")"; return 1; }
  bad="$(json_check "v.config.deliver_subject === \"$deliver\"" "$out")"
  [ -z "$bad" ] || { rm_consumer "$name"; DETAIL="deliver_subject: $bad"; return 1; }
  background "$work/push" edge consumer sub "$stream" "$name" --ack
  wait_for "$work/push" "subj: $subject " 3
  local rc=$?
  stop_bg
  rm_consumer "$name"
  [ $rc -eq 0 ] || { DETAIL="nats consumer sub received $(grep -c 'subj: ' "$work/push") of 3: $(said "$(cat "$work/push")")"; return 1; }
}

s_js_ack_nak_term_wpi() {
  local subject="events.compat.$run.acks" name="compat-$run-acks" out1 out2 out3 out4 info bad
  for i in 0 1 2; do out1="$(e pub "$subject" "m$i" --jetstream)" || { DETAIL="publish: $(said "$out1")"; return 1; }; done
  out1="$(e consumer add "$stream" "$name" --pull --filter "$subject" --ack explicit --deliver all --wait 30s --defaults)" || { DETAIL="nats consumer add: $(said "$out1")"; return 1; }
  out1="$(e consumer next "$stream" "$name" --nak)"
  out2="$(e consumer next "$stream" "$name" --ack)"
  out3="$(e consumer next "$stream" "$name" --term)"
  out4="$(e consumer next "$stream" "$name" --ack)"
  info="$(e consumer info "$stream" "$name" --json)"
  rm_consumer "$name"
  printf '%s\n' "$out1" | grep -q 'Negative Acknowledged' && printf '%s\n' "$out1" | grep -qx m0 || { DETAIL="next --nak: $(said "$out1")"; return 1; }
  printf '%s\n' "$out2" | grep -q 'tries: 2 ' && printf '%s\n' "$out2" | grep -qx m0 || { DETAIL="the nak'd message was not redelivered first: $(said "$out2")"; return 1; }
  printf '%s\n' "$out3" | grep -q 'Terminated message' && printf '%s\n' "$out3" | grep -qx m1 || { DETAIL="next --term: $(said "$out3")"; return 1; }
  printf '%s\n' "$out4" | grep -q 'Acknowledged message' && printf '%s\n' "$out4" | grep -qx m2 || { DETAIL="next --ack: $(said "$out4")"; return 1; }
  bad="$(json_check "v.num_ack_pending === 0 && v.num_pending === 0" "$info")"
  [ -z "$bad" ] || { DETAIL="consumer info after ack, nak, term: $bad"; return 1; }
  DETAIL="ack, nak (redelivered) and term work; the CLI cannot send an in-progress (+WPI) acknowledgement"
  return 2
}

s_js_consumer_info_list() {
  local name="compat-$run-info" filter="events.compat.$run.info" info list bad
  info="$(e consumer add "$stream" "$name" --pull --filter "$filter" --ack explicit --defaults)" || { DETAIL="nats consumer add: $(said "$info")"; return 1; }
  info="$(e consumer info "$stream" "$name" --json)"
  list="$(e consumer ls "$stream" --json)"
  local table
  table="$(e consumer ls "$stream")"
  rm_consumer "$name"
  bad="$(json_check "v.name === \"$name\" && v.stream_name === \"$stream\" && v.config.filter_subject === \"$filter\"" "$info")"
  [ -z "$bad" ] || { DETAIL="consumer info: $bad"; return 1; }
  bad="$(json_check "v.includes(\"$name\")" "$list")"
  [ -z "$bad" ] || { DETAIL="consumer ls --json: $bad"; return 1; }
  printf '%s' "$table" | grep -q "$name" || { DETAIL="consumer ls: $(said "$table")"; return 1; }
  no_prefix "consumer info and list" "$info$list$table"
}

s_js_msg_get_by_subject() {
  local subject="events.compat.$run.get" out seq bad
  out="$(e pub "$subject" v1 --jetstream)" || { DETAIL="publish: $(said "$out")"; return 1; }
  out="$(e pub "$subject" v2 --jetstream)" || { DETAIL="publish: $(said "$out")"; return 1; }
  seq="$(printf '%s' "$out" | grep -oE 'Sequence: [0-9]+' | grep -oE '[0-9]+')"
  out="$(e stream get "$stream" --last-for "$subject" --json)" || { DETAIL="nats stream get --last-for: $(said "$out")"; return 1; }
  bad="$(json_check "v.subject === \"$subject\" && v.seq === $seq && Buffer.from(v.data, \"base64\").toString() === \"v2\"" "$out")"
  [ -z "$bad" ] || { DETAIL="stream get: $bad"; return 1; }
}

s_kv_put_get() {
  local key="put.$run" out
  out="$(e kv put "$NTG_KV" "$key" v1)" || { DETAIL="nats kv put: $(said "$out")"; return 1; }
  out="$(e kv get "$NTG_KV" "$key" --raw)" || { DETAIL="nats kv get: $(said "$out")"; return 1; }
  [ "$out" = v1 ] || { DETAIL="kv get: $(said "$out")"; return 1; }
}

s_kv_watch() {
  local prefix="watch.$run" out
  out="$(e kv put "$NTG_KV" "$prefix.a" 1)" || { DETAIL="nats kv put: $(said "$out")"; return 1; }
  background "$work/watch" edge kv watch "$NTG_KV" "$prefix.>"
  # The watch starts with each key's last value: once a is shown, the watch is live.
  wait_for "$work/watch" "PUT $NTG_KV > $prefix.a: 1" || { DETAIL="the watch did not show the existing key: $(said "$(cat "$work/watch")")"; return 1; }
  out="$(e kv put "$NTG_KV" "$prefix.b" 2)" || { DETAIL="nats kv put: $(said "$out")"; return 1; }
  out="$(e kv del "$NTG_KV" "$prefix.a" -f)" || { DETAIL="nats kv del: $(said "$out")"; return 1; }
  wait_for "$work/watch" "PUT $NTG_KV > $prefix.b: 2" && wait_for "$work/watch" "DELETE $NTG_KV > $prefix.a" || { DETAIL="the watch saw: $(grep -E 'PUT|DELETE' "$work/watch" | tr '\n' ' ')"; return 1; }
}

s_kv_history() {
  local key="hist.$run" out values
  for v in 1 2 3; do out="$(e kv put "$NTG_KV" "$key" "$v")" || { DETAIL="nats kv put: $(said "$out")"; return 1; }; done
  out="$(e kv history "$NTG_KV" "$key")" || { DETAIL="nats kv history: $(said "$out")"; return 1; }
  values="$(printf '%s\n' "$out" | grep -F "│ $key " | awk -F'│' '{ gsub(/ /, "", $7); printf "%s ", $7 }')"
  [ "$values" = "1 2 3 " ] || { DETAIL="history values: $values"; return 1; }
}

s_kv_keys() {
  local base="keys.$run" out
  for k in a b; do out="$(e kv put "$NTG_KV" "$base.$k" v)" || { DETAIL="nats kv put: $(said "$out")"; return 1; }; done
  out="$(e kv ls "$NTG_KV")" || { DETAIL="nats kv ls: $(said "$out")"; return 1; }
  printf '%s\n' "$out" | grep -qx "$base.a" && printf '%s\n' "$out" | grep -qx "$base.b" || { DETAIL="kv ls: $(said "$out")"; return 1; }
  no_prefix "kv ls" "$out"
}

s_obj_put_get() {
  local name="blob-$run" out
  head -c 307200 /dev/urandom >"$work/blob"
  out="$(e object put "$NTG_OBJ" "$work/blob" --name "$name" --no-progress -f)" || { DETAIL="nats object put: $(said "$out")"; return 1; }
  out="$(e object get "$NTG_OBJ" "$name" -O "$work/back" --no-progress -f)" || { DETAIL="nats object get: $(said "$out")"; return 1; }
  cmp -s "$work/blob" "$work/back" || { DETAIL="the object read back differs from what was put"; return 1; }
}

s_obj_list() {
  local name="list-$run" out
  printf listed >"$work/listed"
  out="$(e object put "$NTG_OBJ" "$work/listed" --name "$name" --no-progress -f)" || { DETAIL="nats object put: $(said "$out")"; return 1; }
  out="$(e object ls "$NTG_OBJ")" || { DETAIL="nats object ls: $(said "$out")"; return 1; }
  printf '%s' "$out" | grep -q "│ $name " || { DETAIL="object ls: $(said "$out")"; return 1; }
}

s_service_call() {
  local name="compat-$run" out
  # `nats service serve` runs the CLI's demo service (micro): endpoint <name>.echo.
  background "$work/svc" edge service serve "$name"
  wait_for "$work/svc" "$name.echo" || { DETAIL="nats service serve: $(said "$(cat "$work/svc")")"; return 1; }
  out="$(e req "$name.echo" hello --raw)" || { DETAIL="nats req $name.echo: $(said "$out")"; return 1; }
  printf '%s\n' "$out" | grep -qx hello || { DETAIL="reply: $(said "$out")"; return 1; }
}

s_service_discovery() {
  local own="compat-$run-disc" out bad
  background "$work/svc" edge service serve "$own"
  wait_for "$work/svc" "$own.echo" || { DETAIL="nats service serve: $(said "$(cat "$work/svc")")"; return 1; }
  out="$(e service ls --json)" || { DETAIL="nats service ls (\$SRV.INFO): $(said "$out")"; return 1; }
  bad="$(json_check "v.some((s) => s.name === \"$own\") && !v.some((s) => s.name === \"globex-decoy\")" "$out")"
  [ -z "$bad" ] || { DETAIL="service ls (\$SRV.INFO): $bad"; return 1; }
  out="$(e service ping)" || { DETAIL="nats service ping: $(said "$out")"; return 1; }
  printf '%s' "$out" | grep -q "$own" && ! printf '%s' "$out" | grep -q globex-decoy || { DETAIL="service ping (\$SRV.PING): $(said "$out")"; return 1; }
  out="$(e service stats "$own" --json)" || { DETAIL="nats service stats (\$SRV.STATS): $(said "$out")"; return 1; }
  printf '%s' "$out" | grep -q "\"$own\"" || { DETAIL="service stats: $(said "$out")"; return 1; }
  out="$(e service info globex-decoy --json)"
  printf '%s' "$out" | grep -q '"name": *"globex-decoy"' && { DETAIL="service info found globex's service: $(said "$out")"; return 1; }
  return 0
}

s_platform_connect() {
  local out
  out="$(a rtt)" || { DETAIL="nats rtt (admin): $(said "$out")"; return 1; }
}

s_platform_sub_wildcard() {
  local expected="$tenant.events.compat.$run" out
  background "$work/asub" admin sub '*.events.>'
  wait_for "$work/asub" "Subscribing on" || { DETAIL="admin subscriber not ready: $(said "$(cat "$work/asub")")"; return 1; }
  out="$(e pub "events.compat.$run" from-edge)" || { DETAIL="edge publish: $(said "$out")"; return 1; }
  wait_for "$work/asub" "Received on \"$expected\"" || { DETAIL="no $expected at the admin's *.events.> subscription: $(said "$(cat "$work/asub")")"; return 1; }
}

s_platform_publish_into_tenant() {
  local out
  background "$work/jobs" edge sub "jobs.$run" --count 1
  wait_for "$work/jobs" "Subscribing on" || { DETAIL="edge subscriber not ready"; return 1; }
  out="$(a pub "$tenant.jobs.$run" job)" || { DETAIL="admin publish: $(said "$out")"; return 1; }
  wait_for "$work/jobs" "Received on \"jobs.$run\"" || { DETAIL="the edge did not receive jobs.$run: $(said "$(cat "$work/jobs")")"; return 1; }
}

s_platform_request_into_tenant() {
  local out
  background "$work/reply" edge reply "svc.$run" 'edge:hi' --count 1
  wait_for "$work/reply" "Listening on" || { DETAIL="edge responder not ready"; return 1; }
  out="$(a req "$tenant.svc.$run" hi --raw)" || { DETAIL="admin request: $(said "$out")"; return 1; }
  printf '%s\n' "$out" | grep -qx 'edge:hi' || { DETAIL="reply: $(said "$out")"; return 1; }
}

s_platform_js_consume_ack() {
  local name="compat-$run-plat" filter="$tenant.events.compat.$run" out info bad
  out="$(e pub "events.compat.$run" for-admin --jetstream)" || { DETAIL="edge JetStream publish: $(said "$out")"; return 1; }
  out="$(aj consumer add "$stream" "$name" --pull --filter "$filter" --ack explicit --deliver all --defaults)" || { DETAIL="admin consumer add via $api_prefix: $(said "$out")"; return 1; }
  out="$(aj consumer next "$stream" "$name" --ack)"
  local rc=$?
  info="$(aj consumer info "$stream" "$name" --json)"
  aj consumer rm "$stream" "$name" -f >/dev/null
  [ $rc -eq 0 ] || { DETAIL="admin consumer next: $(said "$out")"; return 1; }
  # The CLI prints "subj: … / str seq: N" only when it could parse the message's JetStream metadata.
  printf '%s' "$out" | grep -qE "subj: $filter / tries: 1 / cons seq: [0-9]+ / str seq: [0-9]+" || { DETAIL="no JetStream metadata on the message: $(said "$out")"; return 1; }
  printf '%s' "$out" | grep -q 'Acknowledged message' || { DETAIL="not acknowledged: $(said "$out")"; return 1; }
  bad="$(json_check "v.num_ack_pending === 0 && v.delivered.consumer_seq >= 1" "$info")"
  [ -z "$bad" ] || { DETAIL="the ack was not accepted (consumer info): $bad"; return 1; }
}

s_platform_kv_write() {
  local key="plat.$run" out
  out="$(aj kv put "$NTG_KV" "$key" from-admin)" || { DETAIL="admin kv put via $api_prefix: $(said "$out")"; return 1; }
  out="$(e kv get "$NTG_KV" "$key" --raw)" || { DETAIL="edge kv get: $(said "$out")"; return 1; }
  [ "$out" = from-admin ] || { DETAIL="edge read: $(said "$out")"; return 1; }
}

all=(connect pubsub queue request_reply no_responders headers echo_false drain flush_rtt max_payload
  js_publish_ack js_msg_id_dedupe js_stream_info js_stream_names_list js_pull_fetch js_consume js_ordered
  js_push_deliver js_ack_nak_term_wpi js_consumer_info_list js_msg_get_by_subject kv_put_get kv_watch
  kv_history kv_keys obj_put_get obj_list service_call service_discovery platform_connect
  platform_sub_wildcard platform_publish_into_tenant platform_request_into_tenant platform_js_consume_ack
  platform_kv_write reconnect) # reconnect restarts the gateway: last

wanted=",${NTG_SCENARIOS:-},"
for id in "${all[@]}"; do
  [ "$wanted" = ",," ] || [[ "$wanted" == *",$id,"* ]] || continue
  DETAIL=""
  started=$(date +%s%N)
  "s_$id"
  rc=$?
  stop_bg
  case $rc in
    0) emit "$id" pass "$DETAIL" ;;
    2) emit "$id" n/a "$DETAIL" ;;
    *) emit "$id" fail "${DETAIL:-failed}" ;;
  esac
  echo "[$(date -u +%H:%M:%S)] $id: rc $rc in $((($(date +%s%N) - started) / 1000000)) ms" >&2
done
