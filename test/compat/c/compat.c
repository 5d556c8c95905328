/*
 * Compatibility-suite client for the C client (libnats, Debian's libnats-dev): drives the scenario
 * list through the gateway the way a stock libnats program uses nats-server, and prints one JSON
 * line per scenario on stdout.
 *
 * Inputs and output follow the harness contract (test/compat/run.ts): NTG_* environment
 * variables, {"scenario","result","detail"} lines, and the {"control":"restart-gateway"} /
 * "restarted" exchange for the reconnect scenario. Features libnats lacks are n/a, with the reason.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCENARIO_TIMEOUT_MS 10000
#define PROGRAM_BUDGET_MS 110000
#define DETAIL_LEN 2048

/* ---- environment ---- */

static const char *URL, *CA, *EDGE_CERT, *EDGE_KEY, *ADMIN_CERT, *ADMIN_KEY;
static const char *TENANT, *STREAM, *KV, *RUN;
static int64_t MAX_PAYLOAD;

static const char *env_or(const char *k, const char *d) {
    const char *v = getenv(k);
    return (v && *v) ? v : d;
}

/* ---- output ---- */

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\r') fputs("\\r", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void emit(const char *id, const char *result, const char *detail) {
    pthread_mutex_lock(&out_mu);
    fputs("{\"scenario\":", stdout);
    json_str(stdout, id);
    fputs(",\"result\":", stdout);
    json_str(stdout, result);
    fputs(",\"detail\":", stdout);
    json_str(stdout, detail);
    fputs("}\n", stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
}

/* ---- scenario outcome ---- */

typedef struct {
    const char *result; /* "pass", "fail", "n/a" */
    char detail[DETAIL_LEN];
} outcome;

/* Asynchronous errors the library reports (permissions violations, slow consumers...) during the
 * current scenario, appended to a failure's detail. */
static pthread_mutex_t async_mu = PTHREAD_MUTEX_INITIALIZER;
static char async_err[512];

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure) {
    (void)nc; (void)sub;
    pthread_mutex_lock(&async_mu);
    snprintf(async_err, sizeof async_err, "%s connection: %s", (const char *)closure, natsStatus_GetText(err));
    pthread_mutex_unlock(&async_mu);
}

static void setf(outcome *o, const char *result, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    o->result = result;
    vsnprintf(o->detail, sizeof o->detail, fmt, ap);
    va_end(ap);
}

static void set_status(outcome *o, const char *what, natsStatus s, jsErrCode jerr) {
    /* the thread's last error text says more than the status (e.g. the server's -ERR); it may be
     * left from an earlier call, so only when its status is this one */
    natsStatus last_status = NATS_OK;
    const char *last = nats_GetLastError(&last_status);
    if (last_status != s) last = NULL;
    setf(o, "fail", "%s: %s%s%s", what, natsStatus_GetText(s), last ? " (" : "", last ? last : "");
    size_t n = strlen(o->detail);
    if (last) snprintf(o->detail + n, sizeof o->detail - n, ")");
    n = strlen(o->detail);
    if (jerr) snprintf(o->detail + n, sizeof o->detail - n, " [jserr %d]", (int)jerr);
}

/* Each scenario fills *o and jumps to its `done:` label (cleanup) on the first failure. */
#define TRY(call, what)                                                                                \
    do {                                                                                               \
        jerr = 0;                                                                                      \
        natsStatus s_ = (call);                                                                        \
        if (s_ != NATS_OK) { set_status(o, what, s_, jerr); goto done; }                               \
    } while (0)
#define EXPECT(cond, ...)                                                                              \
    do {                                                                                               \
        if (!(cond)) { setf(o, "fail", __VA_ARGS__); goto done; }                                      \
    } while (0)
#define PASS(...) setf(o, "pass", __VA_ARGS__)

/* ---- connections ---- */

typedef struct {
    atomic_int disconnected, reconnected, closed;
} conn_events;

static void ev_disconnected(natsConnection *nc, void *c) { (void)nc; atomic_fetch_add(&((conn_events *)c)->disconnected, 1); }
static void ev_reconnected(natsConnection *nc, void *c) { (void)nc; atomic_fetch_add(&((conn_events *)c)->reconnected, 1); }
static void ev_closed(natsConnection *nc, void *c) { (void)nc; atomic_fetch_add(&((conn_events *)c)->closed, 1); }

static natsStatus open_conn(natsConnection **nc, bool admin, bool no_echo, conn_events *ev) {
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    char name[128];
    snprintf(name, sizeof name, "compat-c-%s-%s", admin ? "admin" : "edge", RUN);
    if (s == NATS_OK) s = natsOptions_SetURL(opts, URL);
    if (s == NATS_OK) s = natsOptions_SetName(opts, name);
    if (s == NATS_OK) s = natsOptions_SetSecure(opts, true);
    if (s == NATS_OK) s = natsOptions_LoadCATrustedCertificates(opts, CA);
    if (s == NATS_OK) s = natsOptions_LoadCertificatesChain(opts, admin ? ADMIN_CERT : EDGE_CERT, admin ? ADMIN_KEY : EDGE_KEY);
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 5000);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 500);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, 60);
    if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts, on_async_error, admin ? "admin" : "edge");
    if (s == NATS_OK && no_echo) s = natsOptions_SetNoEcho(opts, true);
    if (s == NATS_OK && ev) s = natsOptions_SetDisconnectedCB(opts, ev_disconnected, ev);
    if (s == NATS_OK && ev) s = natsOptions_SetReconnectedCB(opts, ev_reconnected, ev);
    if (s == NATS_OK && ev) s = natsOptions_SetClosedCB(opts, ev_closed, ev);
    if (s == NATS_OK) s = natsConnection_Connect(nc, opts);
    natsOptions_Destroy(opts);
    return s;
}

/* The shared edge and admin connections; a connection that could not be made is remembered so
 * later scenarios fail at once with the same error. */
typedef struct {
    bool admin, tried;
    natsConnection *nc;
    jsCtx *js;
    char error[DETAIL_LEN];
} shared_conn;

static shared_conn EDGE = {.admin = false}, ADMIN = {.admin = true};

static natsConnection *get_conn(shared_conn *c, outcome *o) {
    /* a connection the library closed (it gives up on some server errors) is replaced, so one
     * scenario's failure does not fail every later one */
    if (c->nc != NULL && natsConnection_IsClosed(c->nc)) {
        jsCtx_Destroy(c->js);
        natsConnection_Destroy(c->nc);
        c->nc = NULL;
        c->js = NULL;
        c->tried = false;
    }
    if (!c->tried) {
        c->tried = true;
        natsStatus s = open_conn(&c->nc, c->admin, false, NULL);
        if (s != NATS_OK) {
            outcome tmp;
            set_status(&tmp, "connect failed", s, 0);
            snprintf(c->error, sizeof c->error, "%s", tmp.detail);
            c->nc = NULL;
        } else {
            jsOptions jo;
            jsOptions_Init(&jo);
            char prefix[256];
            snprintf(prefix, sizeof prefix, "$JS.%s.API", TENANT);
            if (c->admin) jo.Prefix = strdup(prefix);
            jo.Wait = 5000;
            s = natsConnection_JetStream(&c->js, c->nc, &jo);
            if (s != NATS_OK) c->js = NULL;
        }
    }
    if (c->nc == NULL) {
        setf(o, "fail", "%s connection unavailable: %s", c->admin ? "admin" : "edge", c->error);
        return NULL;
    }
    return c->nc;
}

/* ---- helpers ---- */

static char *subj(char *buf, size_t n, const char *rest) {
    snprintf(buf, n, "compat.%s.%s", RUN, rest);
    return buf;
}

static char *js_subj(char *buf, size_t n, const char *rest) {
    snprintf(buf, n, "%s.compat.%s.%s", STREAM, RUN, rest);
    return buf;
}

static bool data_is(natsMsg *m, const char *want) {
    return natsMsg_GetDataLength(m) == (int)strlen(want) && memcmp(natsMsg_GetData(m), want, strlen(want)) == 0;
}

/* Answers every request with prefix + the request's payload (closure: the prefix). */
static void responder(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure) {
    (void)sub;
    const char *prefix = closure ? closure : "";
    if (natsMsg_GetReply(m)) {
        size_t pl = strlen(prefix);
        int dl = natsMsg_GetDataLength(m);
        char *body = malloc(pl + dl + 1);
        memcpy(body, prefix, pl);
        memcpy(body + pl, natsMsg_GetData(m), dl);
        natsConnection_Publish(nc, natsMsg_GetReply(m), body, (int)(pl + dl));
        free(body);
    }
    natsMsg_Destroy(m);
}

static natsStatus publish_all(jsCtx *js, const char *subject, const char **payloads, int n, uint64_t *seqs, jsErrCode *jerr) {
    for (int i = 0; i < n; i++) {
        jsPubAck *pa = NULL;
        natsStatus s = js_Publish(&pa, js, subject, payloads[i], (int)strlen(payloads[i]), NULL, jerr);
        if (s != NATS_OK) return s;
        if (seqs) seqs[i] = pa->Sequence;
        jsPubAck_Destroy(pa);
    }
    return NATS_OK;
}

static void delete_consumer(jsCtx *js, const char *durable, outcome *o) {
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteConsumer(js, STREAM, durable, NULL, &jerr);
    if (s != NATS_OK && strcmp(o->result, "pass") == 0) set_status(o, "deleting the consumer", s, jerr);
}

/* ---- core NATS (edge) ---- */

static void s_connect(outcome *o) {
    natsConnection *nc = get_conn(&EDGE, o);
    if (!nc) return;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    PASS("connected to %s, max_payload %lld", url, (long long)natsConnection_GetMaxPayload(nc));
}

static void s_pubsub(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    char subject[256], got[64] = "";
    natsConnection *nc = get_conn(&EDGE, o);
    if (!nc) return;
    subj(subject, sizeof subject, "pubsub");
    TRY(natsConnection_SubscribeSync(&sub, nc, subject), "subscribe");
    TRY(natsConnection_Flush(nc), "flush");
    for (int i = 0; i < 3; i++) {
        char data[8];
        snprintf(data, sizeof data, "m%d", i);
        TRY(natsConnection_PublishString(nc, subject, data), "publish");
    }
    for (int i = 0; i < 3; i++) {
        TRY(natsSubscription_NextMsg(&m, sub, 5000), "next message");
        EXPECT(strcmp(natsMsg_GetSubject(m), subject) == 0, "subject %s, expected %s", natsMsg_GetSubject(m), subject);
        strncat(got, natsMsg_GetData(m), natsMsg_GetDataLength(m));
        natsMsg_Destroy(m);
        m = NULL;
    }
    EXPECT(strcmp(got, "m0m1m2") == 0, "received %s", got);
    PASS("3 messages in order, edge-view subject");
done:
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
}

static void s_queue(outcome *o) {
    jsErrCode jerr;
    natsSubscription *subs[2] = {NULL, NULL};
    char subject[256];
    int counts[2] = {0, 0};
    natsConnection *nc = get_conn(&EDGE, o);
    if (!nc) return;
    subj(subject, sizeof subject, "queue");
    for (int i = 0; i < 2; i++) TRY(natsConnection_QueueSubscribeSync(&subs[i], nc, subject, "workers"), "queue subscribe");
    TRY(natsConnection_Flush(nc), "flush");
    for (int i = 0; i < 20; i++) TRY(natsConnection_PublishString(nc, subject, "q"), "publish");
    TRY(natsConnection_Flush(nc), "flush");
    int64_t deadline = nats_Now() + 5000, quiet_until = 0;
    while (nats_Now() < deadline && (quiet_until == 0 || nats_Now() < quiet_until)) {
        for (int i = 0; i < 2; i++) {
            natsMsg *m = NULL;
            if (natsSubscription_NextMsg(&m, subs[i], 20) == NATS_OK) {
                counts[i]++;
                natsMsg_Destroy(m);
            }
        }
        /* after the 20th message, wait a little for a duplicate delivery to show up */
        if (counts[0] + counts[1] >= 20 && quiet_until == 0) quiet_until = nats_Now() + 300;
    }
    EXPECT(counts[0] + counts[1] == 20, "queue members received %d/%d, expected 20 in total", counts[0], counts[1]);
    PASS("20 messages split %d/%d across the group", counts[0], counts[1]);
done:
    for (int i = 0; i < 2; i++) natsSubscription_Destroy(subs[i]);
}

static void s_request_reply(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsg *reply = NULL;
    char subject[256];
    natsConnection *nc = get_conn(&EDGE, o);
    if (!nc) return;
    subj(subject, sizeof subject, "rr");
    TRY(natsConnection_Subscribe(&sub, nc, subject, responder, "pong:"), "subscribe");
    TRY(natsConnection_Flush(nc), "flush");
    TRY(natsConnection_RequestString(&reply, nc, subject, "ping", 5000), "request");
    EXPECT(data_is(reply, "pong:ping"), "reply %.*s", natsMsg_GetDataLength(reply), natsMsg_GetData(reply));
    PASS("reply received");
done:
    natsMsg_Destroy(reply);
    natsSubscription_Destroy(sub);
}

static void s_no_responders(outcome *o) {
    natsMsg *reply = NULL;
    char subject[256];
    natsConnection *nc = get_conn(&EDGE, o);
    if (!nc) return;
    int64_t start = nats_Now();
    natsStatus s = natsConnection_RequestString(&reply, nc, subj(subject, sizeof subject, "nobody"), "?", 5000);
    int64_t elapsed = nats_Now() - start;
    if (s == NATS_NO_RESPONDERS && elapsed < 4000) PASS("%s after %lld ms", natsStatus_GetText(s), (long long)elapsed);
    else if (s == NATS_OK) setf(o, "fail", "request to an unserved subject got a reply");
    else set_status(o, "expected no responders", s, 0);
    natsMsg_Destroy(reply);
}

static void s_headers(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsg *out = NULL, *m = NULL;
    char subject[256];
    const char *v1 = NULL, *v2 = NULL;
    natsConnection *nc = get_conn(&EDGE, o);
    if (!nc) return;
    subj(subject, sizeof subject, "headers");
    TRY(natsConnection_SubscribeSync(&sub, nc, subject), "subscribe");
    TRY(natsConnection_Flush(nc), "flush");
    TRY(natsMsg_Create(&out, subject, NULL, "h", 1), "message");
    TRY(natsMsgHeader_Set(out, "X-Compat", RUN), "header");
    TRY(natsMsgHeader_Set(out, "X-Client", "c"), "header");
    TRY(natsConnection_PublishMsg(nc, out), "publish");
    TRY(natsSubscription_NextMsg(&m, sub, 5000), "next message");
    TRY(natsMsgHeader_Get(m, "X-Compat", &v1), "X-Compat header");
    TRY(natsMsgHeader_Get(m, "X-Client", &v2), "X-Client header");
    EXPECT(strcmp(v1, RUN) == 0 && strcmp(v2, "c") == 0, "headers X-Compat=%s X-Client=%s", v1, v2);
    PASS("headers delivered");
done:
    natsMsg_Destroy(out);
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
}

static void s_echo_false(outcome *o) {
    jsErrCode jerr;
    natsConnection *quiet = NULL;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    char subject[256], got[64] = "";
    natsConnection *other = get_conn(&EDGE, o);
    if (!other) return;
    subj(subject, sizeof subject, "echo");
    TRY(open_conn(&quiet, false, true, NULL), "connect (no echo)");
    TRY(natsConnection_SubscribeSync(&sub, quiet, subject), "subscribe");
    TRY(natsConnection_PublishString(quiet, subject, "self"), "publish");
    TRY(natsConnection_Flush(quiet), "flush");
    TRY(natsConnection_PublishString(other, subject, "other"), "publish");
    TRY(natsConnection_Flush(other), "flush");
    TRY(natsSubscription_NextMsg(&m, sub, 5000), "next message");
    strncat(got, natsMsg_GetData(m), natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
    m = NULL;
    if (natsSubscription_NextMsg(&m, sub, 500) == NATS_OK) {
        strcat(got, ",");
        strncat(got, natsMsg_GetData(m), natsMsg_GetDataLength(m));
    }
    EXPECT(strcmp(got, "other") == 0, "no-echo connection received %s, expected only other", got);
    PASS("own message not echoed, other connection's message received");
done:
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(quiet);
}

static atomic_int drain_handled;

static void slow_handler(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure) {
    (void)nc; (void)sub; (void)closure;
    nats_Sleep(10);
    atomic_fetch_add(&drain_handled, 1);
    natsMsg_Destroy(m);
}

static void s_drain(outcome *o) {
    jsErrCode jerr;
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL, *barrier = NULL;
    natsMsg *reply = NULL;
    char subject[256], barrier_subj[300];
    conn_events ev = {0};
    natsConnection *pub = get_conn(&EDGE, o);
    if (!pub) return;
    subj(subject, sizeof subject, "drain");
    snprintf(barrier_subj, sizeof barrier_subj, "%s.barrier", subject);
    atomic_store(&drain_handled, 0);
    TRY(open_conn(&nc, false, false, &ev), "connect");
    TRY(natsConnection_Subscribe(&sub, nc, subject, slow_handler, NULL), "subscribe");
    TRY(natsConnection_Subscribe(&barrier, nc, barrier_subj, responder, ""), "subscribe");
    TRY(natsConnection_Flush(nc), "flush");
    for (int i = 0; i < 20; i++) TRY(natsConnection_PublishString(pub, subject, "d"), "publish");
    /* the answer proves the 20 messages reached the subscriber's connection */
    TRY(natsConnection_RequestString(&reply, pub, barrier_subj, "", 5000), "barrier request");
    TRY(natsConnection_DrainTimeout(nc, 5000), "drain");
    int64_t deadline = nats_Now() + 6000;
    while (atomic_load(&ev.closed) == 0 && nats_Now() < deadline) nats_Sleep(20);
    EXPECT(atomic_load(&ev.closed) > 0, "connection not closed within 6 s of drain");
    EXPECT(atomic_load(&drain_handled) == 20, "%d of 20 messages handled before the drain finished", atomic_load(&drain_handled));
    PASS("20 pending messages handled, connection closed");
done:
    natsMsg_Destroy(reply);
    natsSubscription_Destroy(sub);
    natsSubscription_Destroy(barrier);
    natsConnection_Destroy(nc);
}

static void s_flush_rtt(outcome *o) {
    jsErrCode jerr;
    int64_t rtt = 0;
    natsConnection *nc = get_conn(&EDGE, o);
    if (!nc) return;
    TRY(natsConnection_FlushTimeout(nc, 5000), "flush");
    TRY(natsConnection_GetRTT(nc, &rtt), "rtt");
    EXPECT(rtt > 0, "rtt %lld", (long long)rtt);
    PASS("flush ok, rtt %lld µs", (long long)(rtt / 1000));
done:;
}

static void s_max_payload(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    char subject[256];
    char *big = NULL;
    natsConnection *nc = get_conn(&EDGE, o);
    if (!nc) return;
    int64_t mp = natsConnection_GetMaxPayload(nc);
    EXPECT(mp == MAX_PAYLOAD, "client's max_payload %lld, expected %lld", (long long)mp, (long long)MAX_PAYLOAD);
    subj(subject, sizeof subject, "max");
    big = malloc(mp + 1);
    memset(big, 'x', mp + 1);
    TRY(natsConnection_SubscribeSync(&sub, nc, subject), "subscribe");
    TRY(natsConnection_Flush(nc), "flush");
    natsStatus s = natsConnection_Publish(nc, subject, big, (int)mp + 1);
    EXPECT(s == NATS_MAX_PAYLOAD, "publishing %lld bytes: %s (expected the library to refuse it)", (long long)mp + 1, natsStatus_GetText(s));
    TRY(natsConnection_Publish(nc, subject, big, (int)mp), "publishing exactly max_payload");
    TRY(natsSubscription_NextMsg(&m, sub, 5000), "next message");
    EXPECT(natsMsg_GetDataLength(m) == mp, "received %d bytes", natsMsg_GetDataLength(m));
    PASS("max_payload %lld: +1 byte refused by the library, exactly max_payload delivered", (long long)mp);
done:
    free(big);
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
}

static void s_reconnect(outcome *o) {
    jsErrCode jerr;
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    char subject[256], line[64] = "";
    conn_events ev = {0};
    subj(subject, sizeof subject, "reconnect");
    TRY(open_conn(&nc, false, false, &ev), "connect");
    TRY(natsConnection_SubscribeSync(&sub, nc, subject), "subscribe");
    TRY(natsConnection_Flush(nc), "flush");
    pthread_mutex_lock(&out_mu);
    fputs("{\"control\":\"restart-gateway\"}\n", stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
    EXPECT(fgets(line, sizeof line, stdin) != NULL, "no answer from the harness on stdin");
    EXPECT(strncmp(line, "restarted", 9) == 0, "harness answered %s", line);
    int64_t deadline = nats_Now() + 15000;
    while (atomic_load(&ev.reconnected) == 0 && nats_Now() < deadline) nats_Sleep(50);
    EXPECT(atomic_load(&ev.reconnected) > 0, "no reconnect within 15 s after the restart (disconnected %d, status %d, last error %s)",
           atomic_load(&ev.disconnected), (int)natsConnection_Status(nc), nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "none");
    TRY(natsConnection_PublishString(nc, subject, "again"), "publish after reconnect");
    TRY(natsSubscription_NextMsg(&m, sub, 5000), "next message after reconnect");
    EXPECT(data_is(m, "again"), "received %.*s", natsMsg_GetDataLength(m), natsMsg_GetData(m));
    PASS("disconnected %d, reconnected %d; subscription works after reconnect", atomic_load(&ev.disconnected), atomic_load(&ev.reconnected));
done:
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
}

/* ---- JetStream (edge) ---- */

static jsCtx *edge_js(outcome *o) {
    if (!get_conn(&EDGE, o)) return NULL;
    if (!EDGE.js) setf(o, "fail", "no JetStream context");
    return EDGE.js;
}

static void s_js_publish_ack(outcome *o) {
    jsErrCode jerr;
    jsPubAck *pa = NULL;
    char subject[256];
    jsCtx *js = edge_js(o);
    if (!js) return;
    TRY(js_Publish(&pa, js, js_subj(subject, sizeof subject, "ack"), "a", 1, NULL, &jerr), "publish");
    EXPECT(strcmp(pa->Stream, STREAM) == 0 && pa->Sequence > 0, "ack stream=%s seq=%llu", pa->Stream, (unsigned long long)pa->Sequence);
    PASS("ack stream=%s seq=%llu", pa->Stream, (unsigned long long)pa->Sequence);
done:
    jsPubAck_Destroy(pa);
}

static void s_js_msg_id_dedupe(outcome *o) {
    jsErrCode jerr;
    jsPubAck *first = NULL, *second = NULL;
    jsPubOptions po;
    char subject[256], id[128];
    jsCtx *js = edge_js(o);
    if (!js) return;
    js_subj(subject, sizeof subject, "dedupe");
    snprintf(id, sizeof id, "%s-dedupe", RUN);
    jsPubOptions_Init(&po);
    po.MsgId = id;
    TRY(js_Publish(&first, js, subject, "d", 1, &po, &jerr), "first publish");
    TRY(js_Publish(&second, js, subject, "d", 1, &po, &jerr), "second publish");
    EXPECT(!first->Duplicate, "first ack marked duplicate");
    EXPECT(second->Duplicate && second->Sequence == first->Sequence, "second ack duplicate=%d seq=%llu, first seq %llu",
           second->Duplicate, (unsigned long long)second->Sequence, (unsigned long long)first->Sequence);
    PASS("second publish acked as duplicate of seq %llu", (unsigned long long)first->Sequence);
done:
    jsPubAck_Destroy(first);
    jsPubAck_Destroy(second);
}

static void s_js_stream_info(outcome *o) {
    jsErrCode jerr;
    jsStreamInfo *si = NULL;
    char want[128];
    jsCtx *js = edge_js(o);
    if (!js) return;
    snprintf(want, sizeof want, "%s.>", STREAM);
    TRY(js_GetStreamInfo(&si, js, STREAM, NULL, &jerr), "stream info");
    EXPECT(strcmp(si->Config->Name, STREAM) == 0, "name %s", si->Config->Name);
    EXPECT(si->Config->SubjectsLen == 1 && strcmp(si->Config->Subjects[0], want) == 0, "subjects [%s%s] (%d)",
           si->Config->SubjectsLen > 0 ? si->Config->Subjects[0] : "", si->Config->SubjectsLen > 1 ? ", ..." : "", si->Config->SubjectsLen);
    PASS("subjects [\"%s\"], %llu messages", si->Config->Subjects[0], (unsigned long long)si->State.Msgs);
done:
    jsStreamInfo_Destroy(si);
}

static void s_js_stream_names_list(outcome *o) {
    jsErrCode jerr;
    jsStreamNamesList *names = NULL;
    jsStreamInfoList *list = NULL;
    char seen[1024] = "", prefix[128];
    bool named = false, listed = false, prefixed = false;
    jsCtx *js = edge_js(o);
    if (!js) return;
    snprintf(prefix, sizeof prefix, "%s.", TENANT);
    TRY(js_StreamNames(&names, js, NULL, &jerr), "stream names");
    for (int i = 0; i < names->Count; i++) {
        named |= strcmp(names->List[i], STREAM) == 0;
        strncat(seen, names->List[i], sizeof seen - strlen(seen) - 2);
        strcat(seen, " ");
    }
    EXPECT(named, "stream names: %s", seen);
    TRY(js_Streams(&list, js, NULL, &jerr), "stream list");
    for (int i = 0; i < list->Count; i++) {
        jsStreamConfig *c = list->List[i]->Config;
        if (strcmp(c->Name, STREAM) == 0) listed = c->SubjectsLen == 1 && strncmp(c->Subjects[0], STREAM, strlen(STREAM)) == 0;
        for (int j = 0; j < c->SubjectsLen; j++) prefixed |= strncmp(c->Subjects[j], prefix, strlen(prefix)) == 0;
    }
    EXPECT(listed, "stream list has no %s with subjects %s.>", STREAM, STREAM);
    EXPECT(!prefixed, "tenant prefix visible in the stream list");
    PASS("names: %s; list has %d streams", seen, list->Count);
done:
    jsStreamNamesList_Destroy(names);
    jsStreamInfoList_Destroy(list);
}

static void s_js_pull_fetch(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsgList list = {0};
    jsSubOptions so;
    char subject[256], durable[128], got[64] = "";
    const char *payloads[] = {"p0", "p1", "p2"};
    bool created = false;
    jsCtx *js = edge_js(o);
    if (!js) return;
    js_subj(subject, sizeof subject, "pull");
    snprintf(durable, sizeof durable, "pull-%s", RUN);
    TRY(publish_all(js, subject, payloads, 3, NULL, &jerr), "publish");
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    TRY(js_PullSubscribe(&sub, js, subject, durable, NULL, &so, &jerr), "pull subscribe");
    created = true;
    TRY(natsSubscription_Fetch(&list, sub, 3, 5000, &jerr), "fetch");
    for (int i = 0; i < list.Count; i++) {
        EXPECT(strcmp(natsMsg_GetSubject(list.Msgs[i]), subject) == 0, "subject %s", natsMsg_GetSubject(list.Msgs[i]));
        strncat(got, natsMsg_GetData(list.Msgs[i]), natsMsg_GetDataLength(list.Msgs[i]));
        TRY(natsMsg_Ack(list.Msgs[i], NULL), "ack");
    }
    EXPECT(strcmp(got, "p0p1p2") == 0, "fetched %s", got);
    PASS("fetched 3 messages in order, acked");
done:
    natsMsgList_Destroy(&list);
    natsSubscription_Destroy(sub);
    if (created) delete_consumer(js, durable, o);
}

typedef struct {
    pthread_mutex_t mu;
    char got[64];
    atomic_int n;
} consumed;

static void consume_handler(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure) {
    (void)nc; (void)sub;
    consumed *c = closure;
    pthread_mutex_lock(&c->mu);
    strncat(c->got, natsMsg_GetData(m), natsMsg_GetDataLength(m));
    pthread_mutex_unlock(&c->mu);
    natsMsg_Ack(m, NULL);
    atomic_fetch_add(&c->n, 1);
    natsMsg_Destroy(m);
}

static void s_js_consume(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    char subject[256];
    const char *payloads[] = {"c0", "c1", "c2"};
    consumed c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    jsCtx *js = edge_js(o);
    if (!js) return;
    js_subj(subject, sizeof subject, "consume");
    TRY(publish_all(js, subject, payloads, 3, NULL, &jerr), "publish");
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.ManualAck = true;
    TRY(js_Subscribe(&sub, js, subject, consume_handler, &c, NULL, &so, &jerr), "subscribe");
    int64_t deadline = nats_Now() + 5000;
    while (atomic_load(&c.n) < 3 && nats_Now() < deadline) nats_Sleep(20);
    pthread_mutex_lock(&c.mu);
    bool ok = strcmp(c.got, "c0c1c2") == 0;
    pthread_mutex_unlock(&c.mu);
    EXPECT(ok, "consumed %s", c.got);
    PASS("3 messages consumed by callback (libnats 3.4 has no pull consume API: js_Subscribe, push, is its continuous consumer)");
done:
    if (sub) natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
}

static void s_js_ordered(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    jsMsgMetaData *meta = NULL;
    jsSubOptions so;
    char subject[256], got[64] = "";
    const char *payloads[] = {"o0", "o1", "o2"};
    uint64_t seqs[3], got_seqs[3] = {0};
    jsCtx *js = edge_js(o);
    if (!js) return;
    js_subj(subject, sizeof subject, "ordered");
    TRY(publish_all(js, subject, payloads, 3, seqs, &jerr), "publish");
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.Ordered = true;
    TRY(js_SubscribeSync(&sub, js, subject, NULL, &so, &jerr), "ordered subscribe");
    for (int i = 0; i < 3; i++) {
        TRY(natsSubscription_NextMsg(&m, sub, 5000), "next message");
        strncat(got, natsMsg_GetData(m), natsMsg_GetDataLength(m));
        TRY(natsMsg_GetMetaData(&meta, m), "metadata");
        got_seqs[i] = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
        meta = NULL;
        natsMsg_Destroy(m);
        m = NULL;
    }
    EXPECT(strcmp(got, "o0o1o2") == 0, "ordered consumer got %s", got);
    EXPECT(memcmp(seqs, got_seqs, sizeof seqs) == 0, "stream sequences %llu,%llu,%llu, published %llu,%llu,%llu",
           (unsigned long long)got_seqs[0], (unsigned long long)got_seqs[1], (unsigned long long)got_seqs[2],
           (unsigned long long)seqs[0], (unsigned long long)seqs[1], (unsigned long long)seqs[2]);
    PASS("3 messages in order, stream seqs %llu,%llu,%llu", (unsigned long long)seqs[0], (unsigned long long)seqs[1], (unsigned long long)seqs[2]);
done:
    jsMsgMetaData_Destroy(meta);
    natsMsg_Destroy(m);
    if (sub) natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
}

static void s_js_push_deliver(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    jsMsgMetaData *meta = NULL;
    jsConsumerInfo *ci = NULL, *ci2 = NULL;
    jsConsumerConfig cc;
    jsSubOptions so;
    char subject[256], deliver[256], durable[128], got[64] = "";
    const char *payloads[] = {"d0", "d1"};
    bool created = false;
    jsCtx *js = edge_js(o);
    if (!js) return;
    js_subj(subject, sizeof subject, "push");
    subj(deliver, sizeof deliver, "deliver");
    snprintf(durable, sizeof durable, "push-%s", RUN);
    TRY(publish_all(js, subject, payloads, 2, NULL, &jerr), "publish");
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.DeliverSubject = deliver;
    cc.FilterSubject = subject;
    cc.AckPolicy = js_AckExplicit;
    TRY(js_AddConsumer(&ci, js, STREAM, &cc, NULL, &jerr), "add push consumer");
    created = true;
    /* bound to the consumer, the library subscribes to its deliver subject (natsMsg_Ack needs a
     * JetStream subscription: on a plain one libnats 3.4.1 crashes) */
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.Consumer = durable;
    so.ManualAck = true;
    TRY(js_SubscribeSync(&sub, js, subject, NULL, &so, &jerr), "subscribe bound to the push consumer");
    for (int i = 0; i < 2; i++) {
        TRY(natsSubscription_NextMsg(&m, sub, 5000), "next delivered message");
        EXPECT(strcmp(natsMsg_GetSubject(m), subject) == 0, "subject %s", natsMsg_GetSubject(m));
        TRY(natsMsg_GetMetaData(&meta, m), "metadata");
        EXPECT(strcmp(meta->Stream, STREAM) == 0, "metadata stream %s", meta->Stream);
        jsMsgMetaData_Destroy(meta);
        meta = NULL;
        strncat(got, natsMsg_GetData(m), natsMsg_GetDataLength(m));
        TRY(natsMsg_Ack(m, NULL), "ack");
        natsMsg_Destroy(m);
        m = NULL;
    }
    EXPECT(strcmp(got, "d0d1") == 0, "delivered %s", got);
    TRY(js_GetConsumerInfo(&ci2, js, STREAM, durable, NULL, &jerr), "consumer info");
    EXPECT(ci2->Config->DeliverSubject && strcmp(ci2->Config->DeliverSubject, deliver) == 0, "deliver_subject %s",
           ci2->Config->DeliverSubject ? ci2->Config->DeliverSubject : "(none)");
    PASS("2 messages delivered to %s, acked", deliver);
done:
    jsMsgMetaData_Destroy(meta);
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
    jsConsumerInfo_Destroy(ci);
    jsConsumerInfo_Destroy(ci2);
    if (created) delete_consumer(js, durable, o);
}

static void s_js_ack_nak_term_wpi(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsgList list = {0}, again = {0}, extra = {0};
    jsMsgMetaData *meta = NULL;
    jsConsumerInfo *ci = NULL;
    jsSubOptions so;
    char subject[256], durable[128];
    const char *payloads[] = {"nak", "term", "wpi"};
    bool created = false;
    jsCtx *js = edge_js(o);
    if (!js) return;
    js_subj(subject, sizeof subject, "acks");
    snprintf(durable, sizeof durable, "acks-%s", RUN);
    TRY(publish_all(js, subject, payloads, 3, NULL, &jerr), "publish");
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.Config.AckWait = 30LL * 1000000000LL;
    so.Config.MaxDeliver = 5;
    TRY(js_PullSubscribe(&sub, js, subject, durable, NULL, &so, &jerr), "pull subscribe");
    created = true;
    TRY(natsSubscription_Fetch(&list, sub, 3, 5000, &jerr), "fetch");
    EXPECT(list.Count == 3, "fetched %d messages", list.Count);
    TRY(natsMsg_Nak(list.Msgs[0], NULL), "nak");
    TRY(natsMsg_Term(list.Msgs[1], NULL), "term");
    TRY(natsMsg_InProgress(list.Msgs[2], NULL), "in progress");
    TRY(natsMsg_AckSync(list.Msgs[2], NULL, &jerr), "ack sync");
    TRY(natsSubscription_Fetch(&again, sub, 1, 5000, &jerr), "fetch the nak'ed message");
    TRY(natsMsg_GetMetaData(&meta, again.Msgs[0]), "metadata");
    EXPECT(data_is(again.Msgs[0], "nak") && meta->NumDelivered == 2, "redelivered %.*s (delivered %llu)",
           natsMsg_GetDataLength(again.Msgs[0]), natsMsg_GetData(again.Msgs[0]), (unsigned long long)meta->NumDelivered);
    TRY(natsMsg_AckSync(again.Msgs[0], NULL, &jerr), "ack sync");
    natsStatus s = natsSubscription_Fetch(&extra, sub, 1, 1000, &jerr);
    EXPECT(s == NATS_TIMEOUT, "fetch after term and acks: %s, %d messages (expected nothing)", natsStatus_GetText(s), extra.Count);
    TRY(js_GetConsumerInfo(&ci, js, STREAM, durable, NULL, &jerr), "consumer info");
    EXPECT(ci->NumAckPending == 0 && ci->NumPending == 0, "ack pending %lld, pending %llu", (long long)ci->NumAckPending,
           (unsigned long long)ci->NumPending);
    PASS("nak redelivered, term not redelivered, in-progress then ack sync confirmed");
done:
    jsMsgMetaData_Destroy(meta);
    jsConsumerInfo_Destroy(ci);
    natsMsgList_Destroy(&list);
    natsMsgList_Destroy(&again);
    natsMsgList_Destroy(&extra);
    natsSubscription_Destroy(sub);
    if (created) delete_consumer(js, durable, o);
}

static void s_js_consumer_info_list(outcome *o) {
    jsErrCode jerr;
    jsConsumerInfo *ci = NULL, *info = NULL;
    jsConsumerInfoList *list = NULL;
    jsConsumerNamesList *names = NULL;
    jsConsumerConfig cc;
    char filter[256], durable[128];
    bool created = false, listed = false, named = false;
    jsCtx *js = edge_js(o);
    if (!js) return;
    js_subj(filter, sizeof filter, "info");
    snprintf(durable, sizeof durable, "info-%s", RUN);
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.FilterSubject = filter;
    cc.AckPolicy = js_AckExplicit;
    TRY(js_AddConsumer(&ci, js, STREAM, &cc, NULL, &jerr), "add consumer");
    created = true;
    TRY(js_GetConsumerInfo(&info, js, STREAM, durable, NULL, &jerr), "consumer info");
    EXPECT(strcmp(info->Name, durable) == 0 && strcmp(info->Stream, STREAM) == 0, "info %s on %s", info->Name, info->Stream);
    EXPECT(info->Config->FilterSubject && strcmp(info->Config->FilterSubject, filter) == 0, "filter_subject %s",
           info->Config->FilterSubject ? info->Config->FilterSubject : "(none)");
    TRY(js_Consumers(&list, js, STREAM, NULL, &jerr), "consumer list");
    for (int i = 0; i < list->Count; i++)
        if (strcmp(list->List[i]->Name, durable) == 0)
            listed = list->List[i]->Config->FilterSubject && strcmp(list->List[i]->Config->FilterSubject, filter) == 0;
    EXPECT(listed, "consumer list (%d) has no %s with filter %s", list->Count, durable, filter);
    TRY(js_ConsumerNames(&names, js, STREAM, NULL, &jerr), "consumer names");
    for (int i = 0; i < names->Count; i++) named |= strcmp(names->List[i], durable) == 0;
    EXPECT(named, "consumer names (%d) lack %s", names->Count, durable);
    PASS("info, list and names show %s with filter %s", durable, filter);
done:
    jsConsumerInfo_Destroy(ci);
    jsConsumerInfo_Destroy(info);
    jsConsumerInfoList_Destroy(list);
    jsConsumerNamesList_Destroy(names);
    if (created) delete_consumer(js, durable, o);
}

static void s_js_msg_get_by_subject(outcome *o) {
    jsErrCode jerr;
    natsMsg *m = NULL;
    char subject[256];
    const char *payloads[] = {"first", "last"};
    uint64_t seqs[2];
    jsCtx *js = edge_js(o);
    if (!js) return;
    js_subj(subject, sizeof subject, "get");
    TRY(publish_all(js, subject, payloads, 2, seqs, &jerr), "publish");
    TRY(js_GetLastMsg(&m, js, STREAM, subject, NULL, &jerr), "get last message by subject");
    EXPECT(data_is(m, "last"), "data %.*s", natsMsg_GetDataLength(m), natsMsg_GetData(m));
    EXPECT(strcmp(natsMsg_GetSubject(m), subject) == 0, "subject %s", natsMsg_GetSubject(m));
    EXPECT(natsMsg_GetSequence(m) == seqs[1], "seq %llu (published %llu)", (unsigned long long)natsMsg_GetSequence(m), (unsigned long long)seqs[1]);
    PASS("last message by subject: seq %llu, subject %s", (unsigned long long)natsMsg_GetSequence(m), natsMsg_GetSubject(m));
done:
    natsMsg_Destroy(m);
}

/* ---- KV (edge); libnats 3.4 has no object store ---- */

static void s_kv_put_get(outcome *o) {
    jsErrCode jerr;
    kvStore *kv = NULL;
    kvEntry *e = NULL;
    uint64_t rev = 0;
    char key[128];
    jsCtx *js = edge_js(o);
    if (!js) return;
    snprintf(key, sizeof key, "%s.k1", RUN);
    TRY(js_KeyValue(&kv, js, KV), "bind KV bucket");
    TRY(kvStore_PutString(&rev, kv, key, "v1"), "put");
    TRY(kvStore_Get(&e, kv, key), "get");
    EXPECT(strcmp(kvEntry_ValueString(e), "v1") == 0 && kvEntry_Revision(e) == rev, "entry %s=%s rev %llu (put rev %llu)",
           kvEntry_Key(e), kvEntry_ValueString(e), (unsigned long long)kvEntry_Revision(e), (unsigned long long)rev);
    PASS("put rev %llu, get matches", (unsigned long long)rev);
done:
    kvEntry_Destroy(e);
    kvStore_Destroy(kv);
}

static void s_kv_watch(outcome *o) {
    jsErrCode jerr;
    kvStore *kv = NULL;
    kvWatcher *w = NULL;
    kvEntry *e = NULL;
    char pattern[128], key[128];
    jsCtx *js = edge_js(o);
    if (!js) return;
    snprintf(pattern, sizeof pattern, "%s.w.*", RUN);
    snprintf(key, sizeof key, "%s.w.a", RUN);
    TRY(js_KeyValue(&kv, js, KV), "bind KV bucket");
    TRY(kvStore_Watch(&w, kv, pattern, NULL), "watch");
    TRY(kvStore_PutString(NULL, kv, key, "1"), "put");
    int64_t deadline = nats_Now() + 5000;
    for (;;) {
        int64_t left = deadline - nats_Now();
        EXPECT(left > 0, "no watch update within 5 s");
        TRY(kvWatcher_Next(&e, w, left), "watch next");
        if (e != NULL) break; /* NULL marks the end of the initial values */
    }
    EXPECT(strcmp(kvEntry_Key(e), key) == 0 && strcmp(kvEntry_ValueString(e), "1") == 0, "update %s=%s", kvEntry_Key(e), kvEntry_ValueString(e));
    PASS("watch saw %s rev %llu", kvEntry_Key(e), (unsigned long long)kvEntry_Revision(e));
done:
    kvEntry_Destroy(e);
    kvWatcher_Destroy(w);
    kvStore_Destroy(kv);
}

static void s_kv_history(outcome *o) {
    jsErrCode jerr;
    kvStore *kv = NULL;
    kvEntryList list = {0};
    char key[128], got[64] = "";
    jsCtx *js = edge_js(o);
    if (!js) return;
    snprintf(key, sizeof key, "%s.hist", RUN);
    TRY(js_KeyValue(&kv, js, KV), "bind KV bucket");
    TRY(kvStore_PutString(NULL, kv, key, "h1"), "put");
    TRY(kvStore_PutString(NULL, kv, key, "h2"), "put");
    TRY(kvStore_PutString(NULL, kv, key, "h3"), "put");
    TRY(kvStore_History(&list, kv, key, NULL), "history");
    for (int i = 0; i < list.Count; i++) strncat(got, kvEntry_ValueString(list.Entries[i]), sizeof got - strlen(got) - 1);
    EXPECT(strcmp(got, "h1h2h3") == 0, "history %s", got);
    PASS("history h1,h2,h3");
done:
    kvEntryList_Destroy(&list);
    kvStore_Destroy(kv);
}

static void s_kv_keys(outcome *o) {
    jsErrCode jerr;
    kvStore *kv = NULL;
    kvKeysList list = {0};
    char a[128], b[128];
    bool has_a = false, has_b = false;
    jsCtx *js = edge_js(o);
    if (!js) return;
    snprintf(a, sizeof a, "%s.keys.a", RUN);
    snprintf(b, sizeof b, "%s.keys.b", RUN);
    TRY(js_KeyValue(&kv, js, KV), "bind KV bucket");
    TRY(kvStore_PutString(NULL, kv, a, "k"), "put");
    TRY(kvStore_PutString(NULL, kv, b, "k"), "put");
    TRY(kvStore_Keys(&list, kv, NULL), "keys");
    for (int i = 0; i < list.Count; i++) {
        has_a |= strcmp(list.Keys[i], a) == 0;
        has_b |= strcmp(list.Keys[i], b) == 0;
    }
    EXPECT(has_a && has_b, "%d keys, %s%s missing", list.Count, has_a ? "" : a, has_b ? "" : b);
    PASS("%d keys, including both put", list.Count);
done:
    kvKeysList_Destroy(&list);
    kvStore_Destroy(kv);
}

static void s_obj_put_get(outcome *o) { setf(o, "n/a", "libnats %s has no object store API", nats_GetVersion()); }
static void s_obj_list(outcome *o) { setf(o, "n/a", "libnats %s has no object store API", nats_GetVersion()); }
static void s_service_call(outcome *o) {
    setf(o, "n/a", "libnats %s has no service (micro) API; it arrived in libnats 3.6", nats_GetVersion());
}
static void s_service_discovery(outcome *o) {
    setf(o, "n/a", "libnats %s has no service (micro) API; it arrived in libnats 3.6", nats_GetVersion());
}

/* ---- platform (admin certificate) ---- */

static void s_platform_connect(outcome *o) {
    natsConnection *nc = get_conn(&ADMIN, o);
    if (!nc) return;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    PASS("admin connected to %s", url);
}

static void s_platform_sub_wildcard(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    char publish[256], want[256], others[512] = "";
    natsConnection *admin = get_conn(&ADMIN, o), *edge = admin ? get_conn(&EDGE, o) : NULL;
    if (!edge) return;
    snprintf(publish, sizeof publish, "events.compat.%s", RUN);
    snprintf(want, sizeof want, "%s.events.compat.%s", TENANT, RUN);
    TRY(natsConnection_SubscribeSync(&sub, admin, "*.events.>"), "admin subscribe");
    TRY(natsConnection_Flush(admin), "flush");
    TRY(natsConnection_PublishString(edge, publish, "wild"), "edge publish");
    TRY(natsConnection_Flush(edge), "flush");
    int64_t deadline = nats_Now() + 5000;
    for (;;) {
        int64_t left = deadline - nats_Now();
        EXPECT(left > 0, "no message on %s within 5 s (others seen: %s)", want, others);
        natsStatus s = natsSubscription_NextMsg(&m, sub, left);
        EXPECT(s == NATS_OK || s == NATS_TIMEOUT, "next message: %s", natsStatus_GetText(s));
        if (s != NATS_OK) continue;
        if (strcmp(natsMsg_GetSubject(m), want) == 0) break;
        if (strlen(others) < 400) { strcat(others, natsMsg_GetSubject(m)); strcat(others, " "); }
        natsMsg_Destroy(m);
        m = NULL;
    }
    EXPECT(data_is(m, "wild"), "data %.*s", natsMsg_GetDataLength(m), natsMsg_GetData(m));
    PASS("admin received %s", want);
done:
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
}

static void s_platform_publish_into_tenant(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    char subject[256], prefixed[300];
    natsConnection *admin = get_conn(&ADMIN, o), *edge = admin ? get_conn(&EDGE, o) : NULL;
    if (!edge) return;
    snprintf(subject, sizeof subject, "jobs.%s", RUN);
    snprintf(prefixed, sizeof prefixed, "%s.%s", TENANT, subject);
    TRY(natsConnection_SubscribeSync(&sub, edge, subject), "edge subscribe");
    TRY(natsConnection_Flush(edge), "flush");
    TRY(natsConnection_PublishString(admin, prefixed, "job"), "admin publish");
    TRY(natsConnection_Flush(admin), "flush");
    TRY(natsSubscription_NextMsg(&m, sub, 5000), "edge next message");
    EXPECT(strcmp(natsMsg_GetSubject(m), subject) == 0 && data_is(m, "job"), "edge received %s %.*s", natsMsg_GetSubject(m),
           natsMsg_GetDataLength(m), natsMsg_GetData(m));
    PASS("edge received %s", subject);
done:
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
}

static void s_platform_request_into_tenant(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsg *reply = NULL;
    char subject[256], prefixed[300];
    natsConnection *admin = get_conn(&ADMIN, o), *edge = admin ? get_conn(&EDGE, o) : NULL;
    if (!edge) return;
    snprintf(subject, sizeof subject, "svc.%s", RUN);
    snprintf(prefixed, sizeof prefixed, "%s.%s", TENANT, subject);
    TRY(natsConnection_Subscribe(&sub, edge, subject, responder, "served:"), "edge subscribe");
    TRY(natsConnection_Flush(edge), "flush");
    TRY(natsConnection_RequestString(&reply, admin, prefixed, "q", 5000), "admin request");
    EXPECT(data_is(reply, "served:q"), "reply %.*s", natsMsg_GetDataLength(reply), natsMsg_GetData(reply));
    PASS("tenant service answered the admin");
done:
    natsMsg_Destroy(reply);
    natsSubscription_Destroy(sub);
}

static void s_platform_js_consume_ack(outcome *o) {
    jsErrCode jerr;
    natsSubscription *sub = NULL;
    natsMsgList list = {0};
    jsMsgMetaData *meta = NULL;
    jsConsumerInfo *ci = NULL;
    jsPubAck *pa = NULL;
    jsSubOptions so;
    char publish[256], filter[256], durable[128];
    bool created = false;
    if (!get_conn(&ADMIN, o) || !edge_js(o)) return;
    jsCtx *ajs = ADMIN.js;
    EXPECT(ajs, "no admin JetStream context");
    snprintf(publish, sizeof publish, "events.compat.%s", RUN);
    snprintf(filter, sizeof filter, "%s.events.compat.%s", TENANT, RUN);
    snprintf(durable, sizeof durable, "plat-%s", RUN);
    TRY(js_Publish(&pa, EDGE.js, publish, "for-admin", 9, NULL, &jerr), "edge publish");
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.Config.DeliverPolicy = js_DeliverLast;
    TRY(js_PullSubscribe(&sub, ajs, filter, durable, NULL, &so, &jerr), "admin pull subscribe");
    created = true;
    TRY(natsSubscription_Fetch(&list, sub, 1, 5000, &jerr), "admin fetch");
    EXPECT(data_is(list.Msgs[0], "for-admin"), "data %.*s", natsMsg_GetDataLength(list.Msgs[0]), natsMsg_GetData(list.Msgs[0]));
    TRY(natsMsg_GetMetaData(&meta, list.Msgs[0]), "metadata");
    EXPECT(strcmp(meta->Stream, STREAM) == 0 && meta->Sequence.Stream == pa->Sequence, "metadata stream %s seq %llu, published seq %llu",
           meta->Stream, (unsigned long long)meta->Sequence.Stream, (unsigned long long)pa->Sequence);
    TRY(natsMsg_AckSync(list.Msgs[0], NULL, &jerr), "ack sync");
    TRY(js_GetConsumerInfo(&ci, ajs, STREAM, durable, NULL, &jerr), "consumer info");
    EXPECT(ci->NumAckPending == 0, "ack pending %lld after the ack", (long long)ci->NumAckPending);
    PASS("admin consumed %s (stream %s seq %llu), ack confirmed", natsMsg_GetSubject(list.Msgs[0]), meta->Stream,
         (unsigned long long)meta->Sequence.Stream);
done:
    jsPubAck_Destroy(pa);
    jsMsgMetaData_Destroy(meta);
    jsConsumerInfo_Destroy(ci);
    natsMsgList_Destroy(&list);
    natsSubscription_Destroy(sub);
    if (created) delete_consumer(ajs, durable, o);
}

static void s_platform_kv_write(outcome *o) {
    jsErrCode jerr;
    kvStore *akv = NULL, *ekv = NULL;
    kvEntry *e = NULL;
    uint64_t rev = 0;
    char key[128];
    if (!get_conn(&ADMIN, o) || !edge_js(o)) return;
    EXPECT(ADMIN.js, "no admin JetStream context");
    snprintf(key, sizeof key, "%s.platform", RUN);
    TRY(js_KeyValue(&akv, ADMIN.js, KV), "admin bind KV bucket");
    TRY(kvStore_PutString(&rev, akv, key, "from-admin"), "admin put");
    TRY(js_KeyValue(&ekv, EDGE.js, KV), "edge bind KV bucket");
    TRY(kvStore_Get(&e, ekv, key), "edge get");
    EXPECT(strcmp(kvEntry_ValueString(e), "from-admin") == 0, "edge read %s", kvEntry_ValueString(e));
    PASS("admin put rev %llu, edge read it", (unsigned long long)rev);
done:
    kvEntry_Destroy(e);
    kvStore_Destroy(akv);
    kvStore_Destroy(ekv);
}

/* ---- runner ---- */

typedef struct {
    const char *id;
    void (*fn)(outcome *);
} scenario;

static const scenario SCENARIOS[] = {
    {"connect", s_connect}, {"pubsub", s_pubsub}, {"queue", s_queue}, {"request_reply", s_request_reply},
    {"no_responders", s_no_responders}, {"headers", s_headers}, {"echo_false", s_echo_false}, {"drain", s_drain},
    {"flush_rtt", s_flush_rtt}, {"max_payload", s_max_payload}, {"reconnect", s_reconnect},
    {"js_publish_ack", s_js_publish_ack}, {"js_msg_id_dedupe", s_js_msg_id_dedupe}, {"js_stream_info", s_js_stream_info},
    {"js_stream_names_list", s_js_stream_names_list}, {"js_pull_fetch", s_js_pull_fetch}, {"js_consume", s_js_consume},
    {"js_ordered", s_js_ordered}, {"js_push_deliver", s_js_push_deliver}, {"js_ack_nak_term_wpi", s_js_ack_nak_term_wpi},
    {"js_consumer_info_list", s_js_consumer_info_list}, {"js_msg_get_by_subject", s_js_msg_get_by_subject},
    {"kv_put_get", s_kv_put_get}, {"kv_watch", s_kv_watch}, {"kv_history", s_kv_history}, {"kv_keys", s_kv_keys},
    {"obj_put_get", s_obj_put_get}, {"obj_list", s_obj_list}, {"service_call", s_service_call},
    {"service_discovery", s_service_discovery}, {"platform_connect", s_platform_connect},
    {"platform_sub_wildcard", s_platform_sub_wildcard}, {"platform_publish_into_tenant", s_platform_publish_into_tenant},
    {"platform_request_into_tenant", s_platform_request_into_tenant}, {"platform_js_consume_ack", s_platform_js_consume_ack},
    {"platform_kv_write", s_platform_kv_write},
};

/* A scenario stuck inside the library (every wait above is bounded, so this is a safety net) is
 * reported as failed and the program ends, rather than hanging the harness. */
static atomic_llong watchdog_deadline;
static const char *volatile current_id;

static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        nats_Sleep(200);
        long long d = atomic_load(&watchdog_deadline);
        if (d && nats_Now() > d) {
            emit(current_id, "fail", "scenario did not finish in time (stuck in the library); program aborted");
            _exit(0);
        }
    }
    return NULL;
}

static bool wanted(const char *list, const char *id) {
    if (!list || !*list) return true;
    size_t n = strlen(id);
    for (const char *p = list; (p = strstr(p, id)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

int main(void) {
    URL = env_or("NTG_URL", "");
    CA = env_or("NTG_CA", "");
    EDGE_CERT = env_or("NTG_EDGE_CERT", "");
    EDGE_KEY = env_or("NTG_EDGE_KEY", "");
    ADMIN_CERT = env_or("NTG_ADMIN_CERT", "");
    ADMIN_KEY = env_or("NTG_ADMIN_KEY", "");
    TENANT = env_or("NTG_TENANT", "acme-corp");
    STREAM = env_or("NTG_STREAM", "events");
    KV = env_or("NTG_KV", "compat-kv");
    static char run_default[32];
    snprintf(run_default, sizeof run_default, "c%d", (int)getpid());
    RUN = env_or("NTG_RUN", run_default);
    MAX_PAYLOAD = atoll(env_or("NTG_MAX_PAYLOAD", "0"));
    const char *list = env_or("NTG_SCENARIOS", "");
    if (!*list && strcmp(env_or("NTG_VARIANT", "leaf"), "chain") == 0) list = "connect,pubsub,request_reply,platform_connect";

    nats_Open(-1);
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    int64_t started = nats_Now();
    for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++) {
        const scenario *sc = &SCENARIOS[i];
        if (!wanted(list, sc->id)) continue;
        int64_t left = PROGRAM_BUDGET_MS - (nats_Now() - started);
        if (left < 1000) {
            emit(sc->id, "fail", "not run: the program's time budget is spent");
            continue;
        }
        int64_t bound = strcmp(sc->id, "reconnect") == 0 ? 40000 : SCENARIO_TIMEOUT_MS;
        current_id = sc->id;
        atomic_store(&watchdog_deadline, nats_Now() + (bound < left ? bound : left) + 5000);
        pthread_mutex_lock(&async_mu);
        async_err[0] = '\0';
        pthread_mutex_unlock(&async_mu);
        outcome o = {.result = "fail", .detail = "scenario set no result"};
        sc->fn(&o);
        atomic_store(&watchdog_deadline, 0);
        if (strcmp(o.result, "fail") == 0) {
            pthread_mutex_lock(&async_mu);
            if (async_err[0]) {
                size_t n = strlen(o.detail);
                snprintf(o.detail + n, sizeof o.detail - n, "; async error on the %s", async_err);
            }
            pthread_mutex_unlock(&async_mu);
        }
        emit(sc->id, o.result, o.detail);
    }
    /* No teardown of the library: connections close with the process, and nats_Close would wait
     * on callbacks still running in a misbehaving gateway's session. */
    fflush(stdout);
    _exit(0);
}
