"""Compatibility-suite client for nats-py: drives the scenario list through the gateway the way a
stock nats-py program uses nats-server, and prints one JSON line per scenario on stdout.

Inputs and output follow the harness contract (test/compat/run.ts): NTG_* environment variables,
`{"scenario","result","detail"}` lines, and the `{"control":"restart-gateway"}` / `restarted`
exchange for the reconnect scenario.
"""

import asyncio
import json
import os
import ssl
import sys
import time
import traceback

import nats
from nats.errors import MaxPayloadError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.micro import add_service

ENV = os.environ
URL = ENV["NTG_URL"]
CA = ENV["NTG_CA"]
TENANT = ENV.get("NTG_TENANT", "acme-corp")
MAX_PAYLOAD = int(ENV.get("NTG_MAX_PAYLOAD", "0"))
STREAM = ENV.get("NTG_STREAM", "events")
KV = ENV.get("NTG_KV", "compat-kv")
OBJ = ENV.get("NTG_OBJ", "compat-obj")
RUN = ENV.get("NTG_RUN", "py%d" % os.getpid())
VARIANT = ENV.get("NTG_VARIANT", "leaf")

SCENARIO_TIMEOUT = 10.0
PROGRAM_BUDGET = 110.0
STARTED = time.monotonic()


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def describe(exc):
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


class Fail(Exception):
    """A scenario's expectation was not met (the detail says what was seen)."""


class NotApplicable(Exception):
    """The library lacks the feature the scenario needs."""


def expect(cond, detail):
    if not cond:
        raise Fail(detail)


def tls_context(cert, key):
    ctx = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=CA)
    ctx.load_cert_chain(cert, key)
    return ctx


class Connections:
    """The long-lived edge and admin connections the scenarios share; a connection that could not
    be made is remembered so later scenarios fail at once with the same error."""

    def __init__(self):
        self.conns = {}
        self.errors = {}
        self.client_errors = []
        self.extra = []

    async def open(self, who, **extra):
        cert, key = (ENV["NTG_ADMIN_CERT"], ENV["NTG_ADMIN_KEY"]) if who == "admin" else (
            ENV["NTG_EDGE_CERT"], ENV["NTG_EDGE_KEY"])
        errors = []
        first_error = asyncio.Event()

        async def error_cb(e):
            errors.append(describe(e))
            self.client_errors.append(f"{who}: {describe(e)}")
            first_error.set()

        # nats-py retries a failed first connect as it reconnects (forever with
        # max_reconnect_attempts=-1); the suite reports the first failure instead of waiting.
        connecting = asyncio.ensure_future(nats.connect(
            servers=[URL], tls=tls_context(cert, key), connect_timeout=5, allow_reconnect=True,
            max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=error_cb,
            name=f"compat-python-{who}-{RUN}", **extra))
        failed = asyncio.ensure_future(first_error.wait())
        await asyncio.wait([connecting, failed], timeout=8, return_when=asyncio.FIRST_COMPLETED)
        failed.cancel()
        if connecting.done() and not connecting.cancelled() and connecting.exception() is None:
            nc = connecting.result()
            errors.clear()
            return nc
        connecting.cancel()
        seen = "; ".join(dict.fromkeys(errors)) or "no error reported within 8 s"
        raise Fail(f"connect failed: {seen}")

    async def get(self, who):
        if who in self.errors:
            raise Fail(f"{who} connection unavailable: {self.errors[who]}")
        nc = self.conns.get(who)
        if nc is None or nc.is_closed:
            try:
                nc = await self.open(who)
            except Fail as e:
                self.errors[who] = str(e)
                raise
            self.conns[who] = nc
        return nc

    async def close(self):
        for nc in [*self.conns.values(), *self.extra]:
            try:
                await nc.close()
            except Exception:
                pass


C = Connections()
_service = None


async def next_matching(sub, subject, timeout=5.0):
    """The next message on sub whose subject is `subject` (others are skipped)."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail(f"no message on {subject} within {timeout}s (others seen: {seen[:5]})")
        try:
            m = await sub.next_msg(timeout=left)
        except NatsTimeoutError:
            continue
        if m.subject == subject:
            return m
        seen.append(m.subject)


async def settle(nc):
    """Flush so that what nc sent so far has reached the server. nats-py 2.16's flush() writes its
    PING straight to the socket, ahead of the commands still queued for its flusher task (a SUB,
    PUBs), so one PONG proves nothing about them; by the second PING the flusher has written them.
    Used where another connection acts next and relies on them."""
    await nc.flush()
    await nc.flush()


# ---- core NATS (edge) ----

async def s_connect():
    nc = await C.get("edge")
    expect(nc.is_connected, "not connected")
    return f"connected to {nc.connected_url.netloc}, server {nc.connected_server_version}, max_payload {nc.max_payload}"


async def s_pubsub():
    nc = await C.get("edge")
    subject = f"compat.{RUN}.pubsub"
    sub = await nc.subscribe(subject)
    await nc.flush()
    for i in range(3):
        await nc.publish(subject, f"m{i}".encode())
    got = []
    for _ in range(3):
        m = await sub.next_msg(timeout=5)
        expect(m.subject == subject, f"subject {m.subject!r}, expected {subject!r}")
        got.append(m.data.decode())
    await sub.unsubscribe()
    expect(got == ["m0", "m1", "m2"], f"received {got}")
    return "3 messages in order, edge-view subject"


async def s_queue():
    nc = await C.get("edge")
    subject = f"compat.{RUN}.queue"
    counts = [0, 0]
    done = asyncio.Event()

    def member(i):
        async def cb(_msg):
            counts[i] += 1
            if sum(counts) >= 20:
                done.set()
        return cb

    subs = [await nc.subscribe(subject, queue="workers", cb=member(i)) for i in range(2)]
    await nc.flush()
    for i in range(20):
        await nc.publish(subject, str(i).encode())
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.sleep(0.3)  # a message delivered to both members would show up now
    for s in subs:
        await s.unsubscribe()
    expect(sum(counts) == 20, f"queue members received {counts}, expected 20 in total")
    return f"20 messages split {counts[0]}/{counts[1]} across the group"


async def s_request_reply():
    nc = await C.get("edge")
    subject = f"compat.{RUN}.rr"

    async def responder(msg):
        await msg.respond(b"pong:" + msg.data)

    sub = await nc.subscribe(subject, cb=responder)
    await nc.flush()
    reply = await nc.request(subject, b"ping", timeout=5)
    await sub.unsubscribe()
    expect(reply.data == b"pong:ping", f"reply {reply.data!r}")
    return "reply received"


async def s_no_responders():
    nc = await C.get("edge")
    start = time.monotonic()
    try:
        await nc.request(f"compat.{RUN}.nobody", b"?", timeout=5)
    except NoRespondersError as e:
        elapsed = time.monotonic() - start
        expect(elapsed < 4, f"no-responders error only after {elapsed:.1f}s")
        return f"{describe(e)} after {elapsed * 1000:.0f} ms"
    except NatsTimeoutError as e:
        raise Fail(f"timed out instead of no responders: {describe(e)}") from e
    raise Fail("request to an unserved subject got a reply")


async def s_headers():
    nc = await C.get("edge")
    subject = f"compat.{RUN}.headers"
    sub = await nc.subscribe(subject)
    await nc.flush()
    await nc.publish(subject, b"h", headers={"X-Compat": RUN, "X-Client": "python"})
    m = await sub.next_msg(timeout=5)
    await sub.unsubscribe()
    expect(m.headers is not None, "message arrived without headers")
    expect(m.headers.get("X-Compat") == RUN and m.headers.get("X-Client") == "python",
           f"headers {m.headers}")
    return "headers delivered"


async def s_echo_false():
    other = await C.get("edge")
    quiet = await C.open("edge", no_echo=True)
    try:
        subject = f"compat.{RUN}.echo"
        sub = await quiet.subscribe(subject)
        await quiet.publish(subject, b"self")
        await settle(quiet)
        await other.publish(subject, b"other")
        await other.flush()
        got = [(await sub.next_msg(timeout=5)).data]
        try:
            got.append((await sub.next_msg(timeout=0.5)).data)
        except NatsTimeoutError:
            pass
        expect(got == [b"other"], f"no_echo connection received {got}, expected only b'other'")
        return "own message not echoed, other connection's message received"
    finally:
        await quiet.close()


async def s_drain():
    pub = await C.get("edge")
    nc = await C.open("edge")
    subject = f"compat.{RUN}.drain"
    handled = []

    async def slow(msg):
        await asyncio.sleep(0.01)
        handled.append(msg.data)

    async def barrier(msg):
        await msg.respond(b"ok")

    await nc.subscribe(subject, cb=slow)
    await nc.subscribe(subject + ".barrier", cb=barrier)
    await settle(nc)
    for i in range(20):
        await pub.publish(subject, str(i).encode())
    # The answer proves the 20 messages reached the subscriber's connection (nats-py's flush() writes
    # its PING ahead of the pending publishes, so it proves nothing about them).
    await pub.request(subject + ".barrier", b"", timeout=5)
    await nc.drain()
    expect(nc.is_closed, "connection not closed after drain")
    expect(len(handled) == 20, f"{len(handled)} of 20 messages handled before the drain finished")
    return "20 pending messages handled, connection closed"


async def s_flush_rtt():
    nc = await C.get("edge")
    await nc.flush(timeout=5)
    rtt = await nc.rtt(timeout=5)
    expect(rtt > 0, f"rtt {rtt}")
    return f"flush ok, rtt {rtt * 1e6:.0f} µs"


async def s_max_payload():
    # nats-py reads max_payload from the first INFO only (an INFO update after connect, which the
    # gateway and nats-server send for an account's lower limit, is not applied): with TLS first
    # the gateway knows the identity before that first INFO, and it carries the tenant's limit.
    nc = await C.open("edge", tls_handshake_first=True)
    C.extra.append(nc)
    expect(nc.max_payload == MAX_PAYLOAD,
           f"client's max_payload {nc.max_payload}, expected {MAX_PAYLOAD} (server INFO {nc._server_info.get('max_payload')})")
    subject = f"compat.{RUN}.max"
    sub = await nc.subscribe(subject)
    await nc.flush()
    try:
        await nc.publish(subject, b"x" * (MAX_PAYLOAD + 1))
        raise Fail(f"publishing {MAX_PAYLOAD + 1} bytes was not refused by the library")
    except MaxPayloadError:
        pass
    await nc.publish(subject, b"y" * MAX_PAYLOAD)
    m = await sub.next_msg(timeout=5)
    await sub.unsubscribe()
    expect(len(m.data) == MAX_PAYLOAD, f"received {len(m.data)} bytes")
    expect(nc.is_connected, "connection lost")
    return f"max_payload {MAX_PAYLOAD} (TLS first): +1 byte refused by the library, exactly max_payload delivered"


async def s_reconnect():
    events = []
    reconnected = asyncio.Event()

    async def disconnected_cb():
        events.append("disconnected")

    async def reconnected_cb():
        events.append("reconnected")
        reconnected.set()

    nc = await C.open("edge", disconnected_cb=disconnected_cb, reconnected_cb=reconnected_cb)
    try:
        subject = f"compat.{RUN}.reconnect"
        sub = await nc.subscribe(subject)
        await nc.flush()
        emit({"control": "restart-gateway"})
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        expect(line.strip() == "restarted", f"harness answered {line!r}")
        try:
            await asyncio.wait_for(reconnected.wait(), 15)
        except asyncio.TimeoutError:
            raise Fail(f"no reconnect within 15 s after the restart (events {events}, "
                       f"last error {describe(nc.last_error) if nc.last_error else None})")
        await nc.publish(subject, b"again")
        m = await sub.next_msg(timeout=5)
        expect(m.data == b"again", f"received {m.data!r}")
        return f"events {events}; subscription works after reconnect"
    finally:
        await nc.close()


# ---- JetStream (edge) ----

async def js_ctx():
    return (await C.get("edge")).jetstream()


async def s_js_publish_ack():
    js = await js_ctx()
    ack = await js.publish(f"{STREAM}.compat.{RUN}.ack", b"a", timeout=5)
    expect(ack.stream == STREAM and ack.seq > 0, f"ack {ack}")
    return f"ack stream={ack.stream} seq={ack.seq}"


async def s_js_msg_id_dedupe():
    js = await js_ctx()
    subject = f"{STREAM}.compat.{RUN}.dedupe"
    hdr = {"Nats-Msg-Id": f"{RUN}-dedupe"}
    first = await js.publish(subject, b"d", headers=hdr, timeout=5)
    second = await js.publish(subject, b"d", headers=hdr, timeout=5)
    expect(not first.duplicate, f"first ack {first}")
    expect(second.duplicate and second.seq == first.seq, f"second ack {second}, first {first}")
    return f"second publish acked as duplicate of seq {first.seq}"


async def s_js_stream_info():
    js = await js_ctx()
    info = await js.stream_info(STREAM)
    expect(info.config.name == STREAM, f"name {info.config.name}")
    expect(info.config.subjects == [f"{STREAM}.>"], f"subjects {info.config.subjects}")
    return f"subjects {info.config.subjects}, {info.state.messages} messages"


async def s_js_stream_names_list():
    nc = await C.get("edge")
    jsm = nc.jsm()
    found = await jsm.find_stream_name_by_subject(f"{STREAM}.compat.{RUN}.names")
    expect(found == STREAM, f"stream names by subject gave {found!r}")
    infos = await jsm.streams_info()
    names = [i.config.name for i in infos]
    expect(STREAM in names, f"stream list {names}")
    mine = next(i for i in infos if i.config.name == STREAM)
    expect(mine.config.subjects == [f"{STREAM}.>"], f"listed subjects {mine.config.subjects}")
    expect(all(not s.startswith(f"{TENANT}.") for i in infos for s in (i.config.subjects or [])),
           f"tenant prefix visible in {[i.config.subjects for i in infos]}")
    return f"names (by subject) -> {found}; list {names}"


async def publish_all(js, subject, payloads):
    acks = []
    for p in payloads:
        acks.append(await js.publish(subject, p.encode(), timeout=5))
    return acks


async def s_js_pull_fetch():
    nc = await C.get("edge")
    js = nc.jetstream()
    subject = f"{STREAM}.compat.{RUN}.pull"
    await publish_all(js, subject, ["p0", "p1", "p2"])
    durable = f"pull-{RUN}"
    psub = await js.pull_subscribe(subject, durable=durable, stream=STREAM)
    try:
        msgs = await psub.fetch(3, timeout=5)
        got = [m.data.decode() for m in msgs]
        expect(got == ["p0", "p1", "p2"], f"fetched {got}")
        expect(all(m.subject == subject for m in msgs), f"subjects {[m.subject for m in msgs]}")
        for m in msgs:
            await m.ack()
        await nc.flush()
        return "fetched 3 messages in order, acked"
    finally:
        await psub.unsubscribe()
        await nc.jsm().delete_consumer(STREAM, durable)


async def s_js_consume():
    js = await js_ctx()
    subject = f"{STREAM}.compat.{RUN}.consume"
    await publish_all(js, subject, ["c0", "c1", "c2"])
    got = []
    done = asyncio.Event()

    async def cb(msg):
        got.append(msg.data.decode())
        await msg.ack()
        if len(got) >= 3:
            done.set()

    sub = await js.subscribe(subject, stream=STREAM, cb=cb, manual_ack=True)
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await sub.unsubscribe()
    expect(got == ["c0", "c1", "c2"], f"consumed {got}")
    return "3 messages consumed by callback (nats-py has no pull consume(): js.subscribe, push, is its continuous consumer)"


async def s_js_ordered():
    js = await js_ctx()
    subject = f"{STREAM}.compat.{RUN}.ordered"
    acks = await publish_all(js, subject, ["o0", "o1", "o2"])
    sub = await js.subscribe(subject, stream=STREAM, ordered_consumer=True)
    try:
        msgs = [await sub.next_msg(timeout=5) for _ in range(3)]
    finally:
        await sub.unsubscribe()
    got = [m.data.decode() for m in msgs]
    seqs = [m.metadata.sequence.stream for m in msgs]
    expect(got == ["o0", "o1", "o2"], f"ordered consumer got {got}")
    expect(seqs == [a.seq for a in acks], f"stream sequences {seqs}, published {[a.seq for a in acks]}")
    return f"3 messages in order, stream seqs {seqs}"


async def s_js_push_deliver():
    nc = await C.get("edge")
    js = nc.jetstream()
    jsm = nc.jsm()
    subject = f"{STREAM}.compat.{RUN}.push"
    deliver = f"compat.{RUN}.deliver"
    await publish_all(js, subject, ["d0", "d1"])
    sub = await nc.subscribe(deliver)
    await settle(nc)
    durable = f"push-{RUN}"
    await jsm.add_consumer(STREAM, ConsumerConfig(
        durable_name=durable, deliver_subject=deliver, filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL))
    try:
        msgs = [await sub.next_msg(timeout=5) for _ in range(2)]
        got = [m.data.decode() for m in msgs]
        expect(got == ["d0", "d1"], f"delivered {got}")
        expect(all(m.subject == subject for m in msgs), f"subjects {[m.subject for m in msgs]}")
        expect(msgs[0].metadata.stream == STREAM, f"metadata stream {msgs[0].metadata.stream}")
        for m in msgs:
            await m.ack()
        await nc.flush()
        info = await jsm.consumer_info(STREAM, durable)
        expect(info.config.deliver_subject == deliver, f"deliver_subject {info.config.deliver_subject}")
        return f"2 messages delivered to {deliver}, acked"
    finally:
        await sub.unsubscribe()
        await jsm.delete_consumer(STREAM, durable)


async def s_js_ack_nak_term_wpi():
    nc = await C.get("edge")
    js = nc.jetstream()
    jsm = nc.jsm()
    subject = f"{STREAM}.compat.{RUN}.acks"
    await publish_all(js, subject, ["nak", "term", "wpi"])
    durable = f"acks-{RUN}"
    psub = await js.pull_subscribe(subject, durable=durable, stream=STREAM,
                                   config=ConsumerConfig(ack_wait=30, max_deliver=5))
    try:
        a, b, c = await psub.fetch(3, timeout=5)
        await a.nak()
        await b.term()
        await c.in_progress()
        await c.ack_sync(timeout=5)
        again = await psub.fetch(1, timeout=5)
        expect(again[0].data == b"nak" and again[0].metadata.num_delivered == 2,
               f"redelivered {again[0].data!r} (delivered {again[0].metadata.num_delivered})")
        await again[0].ack_sync(timeout=5)
        try:
            extra = await psub.fetch(1, timeout=1)
            raise Fail(f"unexpected redelivery of {[m.data for m in extra]} (term or ack lost)")
        except NatsTimeoutError:
            pass
        info = await psub.consumer_info()
        expect(info.num_ack_pending == 0 and info.num_pending == 0,
               f"ack pending {info.num_ack_pending}, pending {info.num_pending}")
        return "nak redelivered, term not redelivered, in-progress then ack_sync confirmed"
    finally:
        await psub.unsubscribe()
        await jsm.delete_consumer(STREAM, durable)


async def s_js_consumer_info_list():
    nc = await C.get("edge")
    jsm = nc.jsm()
    durable = f"info-{RUN}"
    filt = f"{STREAM}.compat.{RUN}.info"
    await jsm.add_consumer(STREAM, ConsumerConfig(durable_name=durable, filter_subject=filt,
                                                  ack_policy=AckPolicy.EXPLICIT))
    try:
        info = await jsm.consumer_info(STREAM, durable)
        expect(info.name == durable and info.stream_name == STREAM, f"info {info.name} on {info.stream_name}")
        expect(info.config.filter_subject == filt, f"filter_subject {info.config.filter_subject!r}")
        listed = await jsm.consumers_info(STREAM)
        names = [c.name for c in listed]
        expect(durable in names, f"consumer list {names}")
        mine = next(c for c in listed if c.name == durable)
        expect(mine.config.filter_subject == filt, f"listed filter_subject {mine.config.filter_subject!r}")
        return f"info and list show {durable} with filter {filt}"
    finally:
        await jsm.delete_consumer(STREAM, durable)


async def s_js_msg_get_by_subject():
    nc = await C.get("edge")
    js = nc.jetstream()
    subject = f"{STREAM}.compat.{RUN}.get"
    await publish_all(js, subject, ["first", "last"])
    msg = await nc.jsm().get_last_msg(STREAM, subject)
    expect(msg.data == b"last", f"data {msg.data!r}")
    expect(msg.subject == subject, f"subject {msg.subject!r}")
    return f"last message by subject: seq {msg.seq}, subject {msg.subject}"


# ---- KV and object store (edge) ----

async def kv_edge():
    return await (await js_ctx()).key_value(KV)


async def s_kv_put_get():
    kv = await kv_edge()
    key = f"{RUN}.k1"
    rev = await kv.put(key, b"v1")
    e = await kv.get(key)
    expect(e.value == b"v1" and e.revision == rev, f"entry {e.key}={e.value!r} rev {e.revision} (put rev {rev})")
    return f"put rev {rev}, get matches"


async def s_kv_watch():
    kv = await kv_edge()
    watcher = await kv.watch(f"{RUN}.w.*")
    try:
        deadline = time.monotonic() + 5
        await kv.put(f"{RUN}.w.a", b"1")
        while True:
            e = await watcher.updates(timeout=max(0.1, deadline - time.monotonic()))
            if e is None:  # end of the initial values
                continue
            expect(e.key == f"{RUN}.w.a" and e.value == b"1", f"update {e.key}={e.value!r}")
            return f"watch saw {e.key} rev {e.revision}"
    finally:
        await watcher.stop()


async def s_kv_history():
    kv = await kv_edge()
    key = f"{RUN}.hist"
    for v in (b"h1", b"h2", b"h3"):
        await kv.put(key, v)
    hist = await kv.history(key)
    values = [e.value for e in hist]
    expect(values == [b"h1", b"h2", b"h3"], f"history {values}")
    return "history h1,h2,h3"


async def s_kv_keys():
    kv = await kv_edge()
    mine = {f"{RUN}.keys.a", f"{RUN}.keys.b"}
    for k in mine:
        await kv.put(k, b"k")
    keys = await kv.keys()
    expect(mine <= set(keys), f"keys {keys}")
    return f"{len(keys)} keys, including both put"


async def obj_edge():
    return await (await js_ctx()).object_store(OBJ)


async def s_obj_put_get():
    obs = await obj_edge()
    name = f"{RUN}-put-get"
    data = bytes((i * 7) % 251 for i in range(300 * 1024))  # several chunks
    info = await obs.put(name, data)
    res = await obs.get(name)
    expect(res.data == data, f"got {len(res.data)} bytes back, put {len(data)}")
    return f"{len(data)} bytes in {info.chunks} chunks, read back intact"


async def s_obj_list():
    obs = await obj_edge()
    name = f"{RUN}-list"
    await obs.put(name, b"listed")
    names = [o.name for o in await obs.list()]
    expect(name in names, f"list {names}")
    return f"list has {len(names)} objects including {name}"


# ---- services (edge) ----

async def ensure_service():
    global _service
    if _service is None:
        nc = await C.get("edge")
        svc = await add_service(nc, name=f"compat-python-{RUN}", version="1.0.0", description="compat suite")

        async def echo(req):
            await req.respond(req.data)

        await svc.add_endpoint(name="echo", subject=f"svc.compat.{RUN}.echo", handler=echo)
        _service = svc
    return _service


async def s_service_call():
    await ensure_service()
    nc = await C.get("edge")
    reply = await nc.request(f"svc.compat.{RUN}.echo", b"hello", timeout=5)
    expect(reply.data == b"hello", f"reply {reply.data!r}")
    return "service endpoint answered"


async def s_service_discovery():
    svc = await ensure_service()
    nc = await C.get("edge")
    name = f"compat-python-{RUN}"
    seen = {}
    for verb in ("PING", "INFO", "STATS"):
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish(f"$SRV.{verb}", b"", reply=inbox)
        await nc.flush()
        names = []
        deadline = time.monotonic() + 1.0
        while (left := deadline - time.monotonic()) > 0:
            try:
                m = await sub.next_msg(timeout=left)
            except NatsTimeoutError:
                break
            names.append(json.loads(m.data).get("name"))
        await sub.unsubscribe()
        seen[verb] = names
        expect(name in names, f"$SRV.{verb} did not find {name}: {names}")
        expect("globex-decoy" not in names, f"$SRV.{verb} sees another tenant's service: {names}")
    # a targeted ping too, the way a tool narrows discovery to one service
    reply = await nc.request(f"$SRV.PING.{name}.{svc.id}", b"", timeout=5)
    expect(json.loads(reply.data).get("id") == svc.id, f"targeted ping answered {reply.data!r}")
    return "; ".join(f"{v}: {sorted(set(n))}" for v, n in seen.items())


# ---- platform (admin certificate) ----

async def s_platform_connect():
    nc = await C.get("admin")
    expect(nc.is_connected, "not connected")
    return f"admin connected, server {nc.connected_server_version}"


async def s_platform_sub_wildcard():
    admin = await C.get("admin")
    edge = await C.get("edge")
    sub = await admin.subscribe("*.events.>")
    await settle(admin)
    await edge.publish(f"events.compat.{RUN}", b"wild")
    await edge.flush()
    try:
        m = await next_matching(sub, f"{TENANT}.events.compat.{RUN}")
    finally:
        await sub.unsubscribe()
    expect(m.data == b"wild", f"data {m.data!r}")
    return f"admin received {m.subject}"


async def s_platform_publish_into_tenant():
    admin = await C.get("admin")
    edge = await C.get("edge")
    sub = await edge.subscribe(f"jobs.{RUN}")
    await settle(edge)
    await admin.publish(f"{TENANT}.jobs.{RUN}", b"job")
    await admin.flush()
    try:
        m = await sub.next_msg(timeout=5)
    finally:
        await sub.unsubscribe()
    expect(m.subject == f"jobs.{RUN}" and m.data == b"job", f"edge received {m.subject} {m.data!r}")
    return f"edge received {m.subject}"


async def s_platform_request_into_tenant():
    admin = await C.get("admin")
    edge = await C.get("edge")

    async def serve(msg):
        await msg.respond(b"served:" + msg.data)

    sub = await edge.subscribe(f"svc.{RUN}", cb=serve)
    await settle(edge)
    try:
        reply = await admin.request(f"{TENANT}.svc.{RUN}", b"q", timeout=5)
    finally:
        await sub.unsubscribe()
    expect(reply.data == b"served:q", f"reply {reply.data!r}")
    return "tenant service answered the admin"


def admin_js(admin):
    return admin.jetstream(prefix=f"$JS.{TENANT}.API")


async def s_platform_js_consume_ack():
    admin = await C.get("admin")
    edge = await C.get("edge")
    ack = await edge.jetstream().publish(f"events.compat.{RUN}", b"for-admin", timeout=5)
    js = admin_js(admin)
    durable = f"plat-{RUN}"
    filt = f"{TENANT}.events.compat.{RUN}"
    psub = await js.pull_subscribe(filt, durable=durable, stream=STREAM,
                                   config=ConsumerConfig(deliver_policy=DeliverPolicy.LAST))
    try:
        (m,) = await psub.fetch(1, timeout=5)
        md = m.metadata
        expect(m.data == b"for-admin", f"data {m.data!r}")
        expect(md.stream == STREAM and md.sequence.stream == ack.seq,
               f"metadata stream {md.stream} seq {md.sequence.stream}, published seq {ack.seq}")
        await m.ack_sync(timeout=5)
        info = await psub.consumer_info()
        expect(info.num_ack_pending == 0, f"ack pending {info.num_ack_pending} after the ack")
        return f"admin consumed {m.subject} (stream {md.stream} seq {md.sequence.stream}), ack confirmed"
    finally:
        await psub.unsubscribe()
        await admin.jsm(prefix=f"$JS.{TENANT}.API").delete_consumer(STREAM, durable)


async def s_platform_kv_write():
    # nats-py's KeyValue publishes to $KV.<bucket>.<key> whatever the context's API prefix
    # (js/client.py key_value(): pre=KV_PRE_TEMPLATE), so a bucket bound through another account's
    # $JS.<tenant>.API cannot be written, through nats-server alone as through the gateway.
    raise NotApplicable("nats-py 2.16 KV ignores the JetStream API prefix: put goes to $KV.<bucket>.<key> "
                        "in the admin's own namespace, so a bucket bound through $JS.<tenant>.API cannot be written")


SCENARIOS = [
    ("connect", s_connect), ("pubsub", s_pubsub), ("queue", s_queue),
    ("request_reply", s_request_reply), ("no_responders", s_no_responders), ("headers", s_headers),
    ("echo_false", s_echo_false), ("drain", s_drain), ("flush_rtt", s_flush_rtt),
    ("max_payload", s_max_payload), ("reconnect", s_reconnect),
    ("js_publish_ack", s_js_publish_ack), ("js_msg_id_dedupe", s_js_msg_id_dedupe),
    ("js_stream_info", s_js_stream_info), ("js_stream_names_list", s_js_stream_names_list),
    ("js_pull_fetch", s_js_pull_fetch), ("js_consume", s_js_consume), ("js_ordered", s_js_ordered),
    ("js_push_deliver", s_js_push_deliver), ("js_ack_nak_term_wpi", s_js_ack_nak_term_wpi),
    ("js_consumer_info_list", s_js_consumer_info_list),
    ("js_msg_get_by_subject", s_js_msg_get_by_subject),
    ("kv_put_get", s_kv_put_get), ("kv_watch", s_kv_watch), ("kv_history", s_kv_history),
    ("kv_keys", s_kv_keys), ("obj_put_get", s_obj_put_get), ("obj_list", s_obj_list),
    ("service_call", s_service_call), ("service_discovery", s_service_discovery),
    ("platform_connect", s_platform_connect), ("platform_sub_wildcard", s_platform_sub_wildcard),
    ("platform_publish_into_tenant", s_platform_publish_into_tenant),
    ("platform_request_into_tenant", s_platform_request_into_tenant),
    ("platform_js_consume_ack", s_platform_js_consume_ack), ("platform_kv_write", s_platform_kv_write),
]
CHAIN_SCENARIOS = ["connect", "pubsub", "request_reply", "platform_connect"]
LONG = {"reconnect": 40.0}


async def main():
    wanted = [s for s in ENV.get("NTG_SCENARIOS", "").split(",") if s]
    if not wanted and VARIANT == "chain":
        wanted = CHAIN_SCENARIOS
    for sid, fn in SCENARIOS:
        if wanted and sid not in wanted:
            continue
        left = PROGRAM_BUDGET - (time.monotonic() - STARTED)
        if left <= 1:
            emit({"scenario": sid, "result": "fail", "detail": "not run: the program's time budget is spent"})
            continue
        bound = min(LONG.get(sid, SCENARIO_TIMEOUT), left)
        try:
            detail = await asyncio.wait_for(fn(), bound)
            emit({"scenario": sid, "result": "pass", "detail": detail})
        except NotApplicable as e:
            emit({"scenario": sid, "result": "n/a", "detail": str(e)})
        except Fail as e:
            emit({"scenario": sid, "result": "fail", "detail": str(e)})
        except asyncio.TimeoutError:
            emit({"scenario": sid, "result": "fail", "detail": f"scenario did not finish within {bound:.0f} s"})
        except Exception as e:
            print(traceback.format_exc(), file=sys.stderr)
            emit({"scenario": sid, "result": "fail", "detail": describe(e)})
    if _service is not None:
        try:
            await _service.stop()
        except Exception:
            pass
    await C.close()


if __name__ == "__main__":
    asyncio.run(main())
