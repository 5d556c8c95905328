#!/usr/bin/env bash
# Self-test of a compatibility client against a plain nats-server (no gateway), to validate the
# client program itself before the gateway is involved:
#
#   test/compat/rust/selftest.sh [rust|python|c] [scenario,...]
#     NATS_SERVER_BIN=<path>   nats-server to run (default: Debian's, first of scripts/nats-servers.sh list)
#     KEEP=1                   keep the scratch directory (printed) for inspection
#
# It makes a scratch PKI with openssl (CA, server cert for 127.0.0.1, client cert), starts
# `nats-server -js` with TLS and verify on a free port (max_payload 1 MiB), provisions what the
# operator would (stream `events` on `events.>`, KV `compat-kv` with history 5, object store
# `compat-obj`) with the nats CLI, builds the client, and runs it with the harness contract's
# environment. A `{"control":"restart-gateway"}` line restarts nats-server on the same port.
# Platform scenarios need the gateway (accounts and imports): they are left out unless named.
# python/selftest.sh and c/selftest.sh call this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
client="${1:-rust}"
scenarios="${2:-connect,pubsub,queue,request_reply,no_responders,headers,echo_false,drain,flush_rtt,max_payload,reconnect,js_publish_ack,js_msg_id_dedupe,js_stream_info,js_stream_names_list,js_pull_fetch,js_consume,js_ordered,js_push_deliver,js_ack_nak_term_wpi,js_consumer_info_list,js_msg_get_by_subject,kv_put_get,kv_watch,kv_history,kv_keys,obj_put_get,obj_list,service_call,service_discovery}"
server="${NATS_SERVER_BIN:-$("$root/scripts/nats-servers.sh" list | head -1 | cut -d' ' -f2)}"
nats="$("$root/scripts/nats-servers.sh" natscli)"
dir="$(mktemp -d /tmp/compat-selftest.XXXXXX)"
cleanup() {
  [ -f "$dir/server.pid" ] && kill "$(cat "$dir/server.pid")" 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT

"$root/test/compat/$client/build.sh" >&2

# Scratch PKI.
(
  cd "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj "/CN=compat test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  for who in server client; do
    openssl req -newkey rsa:2048 -nodes -keyout "$who-key.pem" -out "$who.csr" -subj "/CN=$who.compat" 2>/dev/null
  done
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
  printf 'subjectAltName=DNS:client.compat\nextendedKeyUsage=clientAuth,serverAuth\n' >client.ext
  for who in server client; do
    openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -sha256 \
      -extfile "$who.ext" -out "$who.pem" 2>/dev/null
  done
)
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$dir/server.conf" <<EOF
listen: 127.0.0.1:$port
max_payload: 1048576
jetstream { store_dir: "$dir/js" }
tls { cert_file: "$dir/server.pem", key_file: "$dir/server-key.pem", ca_file: "$dir/ca.pem", verify: true }
EOF
start_server() {
  "$server" -c "$dir/server.conf" >>"$dir/server.log" 2>&1 &
  echo $! >"$dir/server.pid"
  for _ in $(seq 50); do
    if grep -q "Server is ready" "$dir/server.log" 2>/dev/null && [ "$(grep -c 'Server is ready' "$dir/server.log")" -ge "${1:-1}" ]; then return 0; fi
    sleep 0.1
  done
  echo "nats-server did not start" >&2; cat "$dir/server.log" >&2; exit 1
}
start_server 1
n() { "$nats" -s "tls://127.0.0.1:$port" --tlscert "$dir/client.pem" --tlskey "$dir/client-key.pem" --tlsca "$dir/ca.pem" "$@"; }
n stream add events --subjects 'events.>' --storage file --retention limits --discard old --max-age 1h \
  --max-msgs=-1 --max-msgs-per-subject=-1 --max-bytes=-1 --max-msg-size=-1 --dupe-window 2m --replicas 1 \
  --no-allow-rollup --no-deny-delete --no-deny-purge --defaults >/dev/null
n kv add compat-kv --history 5 >/dev/null
n object add compat-obj >/dev/null

export NTG_URL="tls://127.0.0.1:$port" NTG_CA="$dir/ca.pem"
export NTG_EDGE_CERT="$dir/client.pem" NTG_EDGE_KEY="$dir/client-key.pem"
export NTG_ADMIN_CERT="$dir/client.pem" NTG_ADMIN_KEY="$dir/client-key.pem"
export NTG_TENANT=acme-corp NTG_MAX_PAYLOAD=1048576 NTG_STREAM=events NTG_KV=compat-kv NTG_OBJ=compat-obj
export NTG_RUN="st$$" NTG_SCENARIOS="$scenarios" NTG_VARIANT=leaf
export SELFTEST_DIR="$dir" SELFTEST_SERVER="$server"
echo "client=$client server=$("$server" --version) port=$port" >&2

# Drive the program as the harness would: pass results through, answer the restart control line.
python3 - "$root/test/compat/$client/run.sh" <<'PY'
import json, os, subprocess, sys, time
d = os.environ["SELFTEST_DIR"]
p = subprocess.Popen([sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
counts = {}
started = time.time()
for line in p.stdout:
    line = line.strip()
    try:
        obj = json.loads(line)
    except ValueError:
        print("(not json) " + line)
        continue
    if obj.get("control") == "restart-gateway":
        pid = int(open(f"{d}/server.pid").read())
        os.kill(pid, 15)
        while True:
            try:
                os.kill(pid, 0); time.sleep(0.05)
            except ProcessLookupError:
                break
        ready = open(f"{d}/server.log").read().count("Server is ready")
        srv = subprocess.Popen([os.environ["SELFTEST_SERVER"], "-c", f"{d}/server.conf"],
                               stdout=open(f"{d}/server.log", "a"), stderr=subprocess.STDOUT)
        open(f"{d}/server.pid", "w").write(str(srv.pid))
        while open(f"{d}/server.log").read().count("Server is ready") <= ready:
            time.sleep(0.05)
        p.stdin.write("restarted\n"); p.stdin.flush()
        continue
    counts[obj.get("result")] = counts.get(obj.get("result"), 0) + 1
    print(f'{obj.get("scenario", "?"):24} {obj.get("result", "?"):5} {obj.get("detail", "")}')
rc = p.wait()
print(f"exit {rc} after {time.time() - started:.1f}s; " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
sys.exit(1 if rc or counts.get("fail") else 0)
PY
