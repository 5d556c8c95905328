//! Compatibility-suite client for `async-nats`: drives the scenario list through the gateway the
//! way a stock async-nats program uses nats-server, and prints one JSON line per scenario.
//!
//! Inputs and output follow the harness contract (test/compat/run.ts): `NTG_*` environment
//! variables, `{"scenario","result","detail"}` lines on stdout, and the
//! `{"control":"restart-gateway"}` / `restarted` exchange for the reconnect scenario.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream, AckKind};
use async_nats::service::ServiceExt;
use async_nats::{Client, ConnectOptions, Event, HeaderMap};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::{mpsc, Mutex};
use tokio::time::{sleep, timeout};

const SCENARIO_TIMEOUT: Duration = Duration::from_secs(10);
const PROGRAM_BUDGET: Duration = Duration::from_secs(110);

/// Why a scenario did not pass.
enum Out {
    Fail(String),
    NotApplicable(String),
}

impl<E: Display> From<E> for Out {
    fn from(e: E) -> Self {
        Out::Fail(e.to_string())
    }
}

type R = Result<String, Out>;

fn fail<T>(detail: impl Into<String>) -> Result<T, Out> {
    Err(Out::Fail(detail.into()))
}

macro_rules! expect {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return fail(format!($($fmt)+));
        }
    };
}

/// Awaits `fut` for at most `secs` seconds; a timeout is a failure naming `what`.
async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> Result<T, Out> {
    match timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => Ok(v),
        Err(_) => fail(format!("{what}: nothing within {secs} s")),
    }
}

fn emit(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

struct Env {
    url: String,
    ca: PathBuf,
    edge: (PathBuf, PathBuf),
    admin: (PathBuf, PathBuf),
    tenant: String,
    max_payload: usize,
    stream: String,
    kv: String,
    obj: String,
    run: String,
}

impl Env {
    fn load() -> Env {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        let or = |k: &str, d: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or(d.to_string());
        Env {
            url: var("NTG_URL"),
            ca: var("NTG_CA").into(),
            edge: (var("NTG_EDGE_CERT").into(), var("NTG_EDGE_KEY").into()),
            admin: (var("NTG_ADMIN_CERT").into(), var("NTG_ADMIN_KEY").into()),
            tenant: or("NTG_TENANT", "acme-corp"),
            max_payload: var("NTG_MAX_PAYLOAD").parse().unwrap_or(0),
            stream: or("NTG_STREAM", "events"),
            kv: or("NTG_KV", "compat-kv"),
            obj: or("NTG_OBJ", "compat-obj"),
            run: or("NTG_RUN", &format!("rs{}", std::process::id())),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Who {
    Edge,
    Admin,
}

/// The shared edge and admin connections (a connection that could not be made is remembered, so
/// later scenarios fail at once with the same error) and the program's service.
struct State {
    env: Env,
    edge: Mutex<Option<Result<Client, String>>>,
    admin: Mutex<Option<Result<Client, String>>>,
    service: Mutex<Option<(async_nats::service::Service, String)>>,
}

type S = Arc<State>;

impl State {
    fn options(&self, who: Who) -> ConnectOptions {
        let (cert, key) = if who == Who::Admin { &self.env.admin } else { &self.env.edge };
        let name = match who {
            Who::Edge => "edge",
            Who::Admin => "admin",
        };
        ConnectOptions::new()
            .name(format!("compat-rust-{name}-{}", self.env.run))
            .add_root_certificates(self.env.ca.clone())
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true)
            .connection_timeout(Duration::from_secs(5))
    }

    async fn open(&self, who: Who, options: ConnectOptions) -> Result<Client, Out> {
        match timeout(Duration::from_secs(8), options.connect(self.env.url.as_str())).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => fail(format!("connect failed: {e}")),
            Err(_) => fail(format!("connect ({}) did not finish within 8 s", if who == Who::Edge { "edge" } else { "admin" })),
        }
    }

    async fn get(&self, who: Who) -> Result<Client, Out> {
        let slot = if who == Who::Admin { &self.admin } else { &self.edge };
        let mut slot = slot.lock().await;
        if slot.is_none() {
            *slot = Some(match self.open(who, self.options(who)).await {
                Ok(c) => Ok(c),
                Err(Out::Fail(d)) | Err(Out::NotApplicable(d)) => Err(d),
            });
        }
        match slot.as_ref().unwrap() {
            Ok(c) => Ok(c.clone()),
            Err(d) => fail(format!("connection unavailable: {d}")),
        }
    }

    async fn edge(&self) -> Result<Client, Out> {
        self.get(Who::Edge).await
    }

    async fn admin(&self) -> Result<Client, Out> {
        self.get(Who::Admin).await
    }

    async fn js(&self) -> Result<jetstream::Context, Out> {
        Ok(jetstream::new(self.edge().await?))
    }

    fn admin_prefix(&self) -> String {
        format!("$JS.{}.API", self.env.tenant)
    }

    fn subj(&self, rest: &str) -> String {
        format!("compat.{}.{rest}", self.env.run)
    }

    fn js_subj(&self, rest: &str) -> String {
        format!("{}.compat.{}.{rest}", self.env.stream, self.env.run)
    }
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Responds to every request on `sub` with `prefix` + the request's payload.
fn serve(client: Client, mut sub: async_nats::Subscriber, prefix: &'static str) {
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if let Some(reply) = m.reply {
                let mut body = prefix.as_bytes().to_vec();
                body.extend_from_slice(&m.payload);
                let _ = client.publish(reply, body.into()).await;
            }
        }
    });
}

/// Makes sure the server has processed everything `client` sent so far (its subscriptions above
/// all), before another connection acts on them. async-nats's `flush()` only writes the socket
/// buffer (no PING/PONG round trip), so this sends a request nobody serves: the server answers
/// "no responders" only after it has processed what came before on this connection.
async fn sync_with_server(client: &Client, subject: String) -> Result<(), Out> {
    let res = client
        .send_request(subject, async_nats::Request::new().timeout(Some(Duration::from_secs(2))))
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), async_nats::RequestErrorKind::NoResponders | async_nats::RequestErrorKind::TimedOut) => Ok(()),
        Err(e) => fail(format!("round trip to the server: {e}")),
    }
}

// ---- core NATS (edge) ----

async fn s_connect(st: S) -> R {
    let nc = st.edge().await?;
    let info = nc.server_info();
    expect!(
        nc.connection_state() == async_nats::connection::State::Connected,
        "state {:?}",
        nc.connection_state()
    );
    Ok(format!("connected, server {} (max_payload {})", info.version, info.max_payload))
}

async fn s_pubsub(st: S) -> R {
    let nc = st.edge().await?;
    let subject = st.subj("pubsub");
    let mut sub = nc.subscribe(subject.clone()).await?;
    nc.flush().await?;
    for i in 0..3 {
        nc.publish(subject.clone(), format!("m{i}").into()).await?;
    }
    let mut got = vec![];
    for _ in 0..3 {
        let m = within(5, "subscription", sub.next()).await?.ok_or(Out::Fail("subscription ended".into()))?;
        expect!(m.subject.as_str() == subject, "subject {:?}, expected {subject:?}", m.subject);
        got.push(text(&m.payload));
    }
    expect!(got == ["m0", "m1", "m2"], "received {got:?}");
    Ok("3 messages in order, edge-view subject".into())
}

async fn s_queue(st: S) -> R {
    let nc = st.edge().await?;
    let subject = st.subj("queue");
    let a = nc.queue_subscribe(subject.clone(), "workers".into()).await?;
    let b = nc.queue_subscribe(subject.clone(), "workers".into()).await?;
    nc.flush().await?;
    for i in 0..20 {
        nc.publish(subject.clone(), i.to_string().into()).await?;
    }
    nc.flush().await?;
    let mut merged = futures::stream::select(a.map(|m| (0usize, m)), b.map(|m| (1usize, m)));
    let mut counts = [0usize; 2];
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // after the 20th message, wait a little for a duplicate delivery to show up
        let wait = if counts[0] + counts[1] >= 20 { Duration::from_millis(300) } else { left };
        match timeout(wait, merged.next()).await {
            Ok(Some((i, m))) => {
                counts[i] += 1;
                seen.insert(m.payload);
            }
            _ => break,
        }
    }
    expect!(counts[0] + counts[1] == 20 && seen.len() == 20, "queue members received {counts:?} ({} distinct), expected 20", seen.len());
    Ok(format!("20 messages split {}/{} across the group", counts[0], counts[1]))
}

async fn s_request_reply(st: S) -> R {
    let nc = st.edge().await?;
    let subject = st.subj("rr");
    let sub = nc.subscribe(subject.clone()).await?;
    serve(nc.clone(), sub, "pong:");
    nc.flush().await?;
    let reply = nc
        .send_request(subject, async_nats::Request::new().payload("ping".into()).timeout(Some(Duration::from_secs(5))))
        .await?;
    expect!(reply.payload.as_ref() == b"pong:ping", "reply {:?}", reply.payload);
    Ok("reply received".into())
}

async fn s_no_responders(st: S) -> R {
    let nc = st.edge().await?;
    let start = Instant::now();
    let res = nc
        .send_request(st.subj("nobody"), async_nats::Request::new().payload("?".into()).timeout(Some(Duration::from_secs(5))))
        .await;
    let elapsed = start.elapsed();
    match res {
        Ok(m) => fail(format!("request to an unserved subject got a reply {:?}", m.payload)),
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            expect!(elapsed < Duration::from_secs(4), "no-responders error only after {elapsed:?}");
            Ok(format!("\"{e}\" after {} ms", elapsed.as_millis()))
        }
        Err(e) => fail(format!("{:?}: {e} after {} ms (expected no responders)", e.kind(), elapsed.as_millis())),
    }
}

async fn s_headers(st: S) -> R {
    let nc = st.edge().await?;
    let subject = st.subj("headers");
    let mut sub = nc.subscribe(subject.clone()).await?;
    nc.flush().await?;
    let mut headers = HeaderMap::new();
    headers.insert("X-Compat", st.env.run.as_str());
    headers.insert("X-Client", "rust");
    nc.publish_with_headers(subject, headers, "h".into()).await?;
    let m = within(5, "subscription", sub.next()).await?.ok_or(Out::Fail("subscription ended".into()))?;
    let h = m.headers.ok_or(Out::Fail("message arrived without headers".into()))?;
    expect!(
        h.get("X-Compat").map(|v| v.as_str()) == Some(st.env.run.as_str()) && h.get("X-Client").map(|v| v.as_str()) == Some("rust"),
        "headers {h:?}"
    );
    Ok("headers delivered".into())
}

async fn s_echo_false(st: S) -> R {
    let other = st.edge().await?;
    let quiet = st.open(Who::Edge, st.options(Who::Edge).no_echo()).await?;
    let subject = st.subj("echo");
    let mut sub = quiet.subscribe(subject.clone()).await?;
    quiet.publish(subject.clone(), "self".into()).await?;
    sync_with_server(&quiet, st.subj("sync")).await?;
    other.publish(subject.clone(), "other".into()).await?;
    other.flush().await?;
    let mut got = vec![];
    if let Some(m) = within(5, "subscription", sub.next()).await? {
        got.push(text(&m.payload));
    }
    if let Ok(Some(m)) = timeout(Duration::from_millis(500), sub.next()).await {
        got.push(text(&m.payload));
    }
    drop(sub);
    let _ = quiet.drain().await;
    expect!(got == ["other"], "no_echo connection received {got:?}, expected only \"other\"");
    Ok("own message not echoed, other connection's message received".into())
}

async fn s_drain(st: S) -> R {
    let publisher = st.edge().await?;
    let nc = st.open(Who::Edge, st.options(Who::Edge)).await?;
    let subject = st.subj("drain");
    let mut sub = nc.subscribe(subject.clone()).await?;
    let barrier = nc.subscribe(format!("{subject}.barrier")).await?;
    serve(nc.clone(), barrier, "");
    sync_with_server(&nc, st.subj("sync")).await?;
    let handler = tokio::spawn(async move {
        let mut n = 0;
        while let Some(_m) = sub.next().await {
            sleep(Duration::from_millis(10)).await;
            n += 1;
        }
        n
    });
    for i in 0..20 {
        publisher.publish(subject.clone(), i.to_string().into()).await?;
    }
    // the answer proves the 20 messages reached the subscriber's connection
    publisher
        .send_request(format!("{subject}.barrier"), async_nats::Request::new().timeout(Some(Duration::from_secs(5))))
        .await?;
    within(5, "drain", nc.drain()).await??;
    let handled = within(5, "subscription end after drain", handler).await??;
    expect!(handled == 20, "{handled} of 20 messages handled before the subscription ended");
    let after = nc.publish(subject, "late".into()).await;
    expect!(after.is_err(), "publish still accepted after drain");
    Ok(format!("20 pending messages handled, subscription ended, publish refused after drain ({})", after.unwrap_err()))
}

async fn s_flush_rtt(st: S) -> R {
    st.edge().await?;
    Err(Out::NotApplicable(
        "async-nats has no rtt(), and its flush() only writes the socket buffer (no PING/PONG round trip)".into(),
    ))
}

async fn s_max_payload(st: S) -> R {
    // async-nats reads max_payload from the first INFO only (an INFO update after connect, which the
    // gateway and nats-server send for an account's lower limit, is not applied): with TLS first the
    // gateway knows the identity before that first INFO, and it carries the tenant's limit.
    let nc = st.open(Who::Edge, st.options(Who::Edge).tls_first()).await?;
    let mp = st.env.max_payload;
    expect!(
        nc.server_info().max_payload == mp && nc.max_payload() == mp,
        "client's max_payload {} (server INFO {}), expected {mp}",
        nc.max_payload(),
        nc.server_info().max_payload
    );
    let subject = st.subj("max");
    let mut sub = nc.subscribe(subject.clone()).await?;
    nc.flush().await?;
    match nc.publish(subject.clone(), vec![b'x'; mp + 1].into()).await {
        Err(e) if e.kind() == async_nats::client::PublishErrorKind::MaxPayloadExceeded => {}
        Err(e) => return fail(format!("publishing {} bytes failed otherwise: {e}", mp + 1)),
        Ok(()) => return fail(format!("publishing {} bytes was not refused by the library", mp + 1)),
    }
    nc.publish(subject, vec![b'y'; mp].into()).await?;
    let m = within(5, "subscription", sub.next()).await?.ok_or(Out::Fail("subscription ended".into()))?;
    expect!(m.payload.len() == mp, "received {} bytes", m.payload.len());
    Ok(format!("max_payload {mp} (TLS first): +1 byte refused by the library, exactly max_payload delivered"))
}

async fn s_reconnect(st: S) -> R {
    let (tx, mut events) = mpsc::unbounded_channel();
    let options = st.options(Who::Edge).event_callback(move |e| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(e);
        }
    });
    let nc = st.open(Who::Edge, options).await?;
    let subject = st.subj("reconnect");
    let mut sub = nc.subscribe(subject.clone()).await?;
    nc.flush().await?;
    while events.try_recv().is_ok() {}
    emit(serde_json::json!({"control": "restart-gateway"}));
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin()).read_line(&mut line).await?;
    expect!(line.trim() == "restarted", "harness answered {line:?}");
    let mut seen = vec![];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if seen.iter().any(|e| matches!(e, Event::Connected)) && nc.connection_state() == async_nats::connection::State::Connected {
            break;
        }
        match timeout(deadline.saturating_duration_since(Instant::now()), events.recv()).await {
            Ok(Some(e)) => seen.push(e),
            _ => return fail(format!("no reconnect within 15 s after the restart (events {seen:?}, state {:?})", nc.connection_state())),
        }
    }
    nc.publish(subject, "again".into()).await?;
    let m = within(5, "subscription after reconnect", sub.next()).await?.ok_or(Out::Fail("subscription ended".into()))?;
    expect!(m.payload.as_ref() == b"again", "received {:?}", m.payload);
    Ok(format!("events {seen:?}; subscription works after reconnect"))
}

// ---- JetStream (edge) ----

async fn publish_all(js: &jetstream::Context, subject: &str, payloads: &[&str]) -> Result<Vec<u64>, Out> {
    let mut seqs = vec![];
    for p in payloads {
        let ack = js.publish(subject.to_string(), p.to_string().into()).await?.await?;
        seqs.push(ack.sequence);
    }
    Ok(seqs)
}

async fn s_js_publish_ack(st: S) -> R {
    let js = st.js().await?;
    let ack = js.publish(st.js_subj("ack"), "a".into()).await?.await?;
    expect!(ack.stream == st.env.stream && ack.sequence > 0, "ack {ack:?}");
    Ok(format!("ack stream={} seq={}", ack.stream, ack.sequence))
}

async fn s_js_msg_id_dedupe(st: S) -> R {
    let js = st.js().await?;
    let subject = st.js_subj("dedupe");
    let id = format!("{}-dedupe", st.env.run);
    let first = js.send_publish(subject.clone(), jetstream::message::PublishMessage::build().payload("d".into()).message_id(&id)).await?.await?;
    let second = js.send_publish(subject, jetstream::message::PublishMessage::build().payload("d".into()).message_id(&id)).await?.await?;
    expect!(!first.duplicate, "first ack {first:?}");
    expect!(second.duplicate && second.sequence == first.sequence, "second ack {second:?}, first {first:?}");
    Ok(format!("second publish acked as duplicate of seq {}", first.sequence))
}

async fn s_js_stream_info(st: S) -> R {
    let js = st.js().await?;
    let mut stream = js.get_stream(&st.env.stream).await?;
    let info = stream.info().await?;
    let want = vec![format!("{}.>", st.env.stream)];
    expect!(info.config.name == st.env.stream, "name {}", info.config.name);
    expect!(info.config.subjects == want, "subjects {:?}", info.config.subjects);
    Ok(format!("subjects {:?}, {} messages", info.config.subjects, info.state.messages))
}

async fn s_js_stream_names_list(st: S) -> R {
    let js = st.js().await?;
    let names: Vec<String> = js.stream_names().collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
    expect!(names.contains(&st.env.stream), "stream names {names:?}");
    let infos: Vec<stream::Info> = js.streams().collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
    let mine = infos.iter().find(|i| i.config.name == st.env.stream).ok_or(Out::Fail(format!(
        "stream list {:?}",
        infos.iter().map(|i| &i.config.name).collect::<Vec<_>>()
    )))?;
    expect!(mine.config.subjects == vec![format!("{}.>", st.env.stream)], "listed subjects {:?}", mine.config.subjects);
    let prefixed: Vec<_> = infos.iter().flat_map(|i| i.config.subjects.iter()).filter(|s| s.starts_with(&format!("{}.", st.env.tenant))).collect();
    expect!(prefixed.is_empty(), "tenant prefix visible in {prefixed:?}");
    Ok(format!("names {names:?}; list has {} streams", infos.len()))
}

fn pull_config(durable: &str, filter: &str) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(durable.to_string()),
        filter_subject: filter.to_string(),
        ack_policy: consumer::AckPolicy::Explicit,
        ..Default::default()
    }
}

async fn fetch(consumer: &consumer::PullConsumer, n: usize, secs: u64) -> Result<Vec<jetstream::Message>, Out> {
    let batch = consumer.fetch().max_messages(n).expires(Duration::from_secs(secs)).messages().await?;
    let msgs: Vec<_> = within(secs + 2, "fetch", batch.collect::<Vec<_>>()).await?;
    Ok(msgs.into_iter().collect::<Result<Vec<_>, _>>()?)
}

async fn s_js_pull_fetch(st: S) -> R {
    let js = st.js().await?;
    let subject = st.js_subj("pull");
    publish_all(&js, &subject, &["p0", "p1", "p2"]).await?;
    let stream = js.get_stream(&st.env.stream).await?;
    let durable = format!("pull-{}", st.env.run);
    let consumer: consumer::PullConsumer = stream.create_consumer(pull_config(&durable, &subject)).await?;
    let res = async {
        let msgs = fetch(&consumer, 3, 5).await?;
        let got: Vec<_> = msgs.iter().map(|m| text(&m.payload)).collect();
        expect!(got == ["p0", "p1", "p2"], "fetched {got:?}");
        expect!(msgs.iter().all(|m| m.subject.as_str() == subject), "subjects {:?}", msgs.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>());
        for m in &msgs {
            m.ack().await?;
        }
        Ok("fetched 3 messages in order, acked".to_string())
    }
    .await;
    stream.delete_consumer(&durable).await?;
    res
}

async fn s_js_consume(st: S) -> R {
    let js = st.js().await?;
    let subject = st.js_subj("consume");
    publish_all(&js, &subject, &["c0", "c1", "c2"]).await?;
    let stream = js.get_stream(&st.env.stream).await?;
    let durable = format!("consume-{}", st.env.run);
    let consumer: consumer::PullConsumer = stream.create_consumer(pull_config(&durable, &subject)).await?;
    let res = async {
        let mut messages = consumer.messages().await?;
        let mut got = vec![];
        while got.len() < 3 {
            let m = within(5, "consume", messages.next()).await?.ok_or(Out::Fail("consume stream ended".into()))??;
            got.push(text(&m.payload));
            m.ack().await?;
        }
        expect!(got == ["c0", "c1", "c2"], "consumed {got:?}");
        Ok("3 messages from consumer.messages(), acked".to_string())
    }
    .await;
    stream.delete_consumer(&durable).await?;
    res
}

async fn s_js_ordered(st: S) -> R {
    let js = st.js().await?;
    let subject = st.js_subj("ordered");
    let seqs = publish_all(&js, &subject, &["o0", "o1", "o2"]).await?;
    let stream = js.get_stream(&st.env.stream).await?;
    let consumer: consumer::Consumer<consumer::pull::OrderedConfig> = stream
        .create_consumer(consumer::pull::OrderedConfig { filter_subject: subject.clone(), ..Default::default() })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut got = vec![];
    let mut got_seqs = vec![];
    while got.len() < 3 {
        let m = within(5, "ordered consumer", messages.next()).await?.ok_or(Out::Fail("ordered stream ended".into()))??;
        got.push(text(&m.payload));
        got_seqs.push(m.info()?.stream_sequence);
    }
    expect!(got == ["o0", "o1", "o2"], "ordered consumer got {got:?}");
    expect!(got_seqs == seqs, "stream sequences {got_seqs:?}, published {seqs:?}");
    Ok(format!("3 messages in order, stream seqs {got_seqs:?}"))
}

async fn s_js_push_deliver(st: S) -> R {
    let js = st.js().await?;
    let subject = st.js_subj("push");
    let deliver = st.subj("deliver");
    publish_all(&js, &subject, &["d0", "d1"]).await?;
    let stream = js.get_stream(&st.env.stream).await?;
    let durable = format!("push-{}", st.env.run);
    let consumer: consumer::PushConsumer = stream
        .create_consumer(consumer::push::Config {
            durable_name: Some(durable.clone()),
            deliver_subject: deliver.clone(),
            filter_subject: subject.clone(),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let res = async {
        let mut messages = consumer.messages().await?;
        let mut got = vec![];
        while got.len() < 2 {
            let m = within(5, "push consumer", messages.next()).await?.ok_or(Out::Fail("push stream ended".into()))??;
            expect!(m.subject.as_str() == subject, "subject {}", m.subject);
            expect!(m.info()?.stream == st.env.stream, "metadata stream {}", m.info()?.stream);
            got.push(text(&m.payload));
            m.ack().await?;
        }
        expect!(got == ["d0", "d1"], "delivered {got:?}");
        let info = stream.consumer_info(&durable).await?;
        expect!(info.config.deliver_subject.as_deref() == Some(deliver.as_str()), "deliver_subject {:?}", info.config.deliver_subject);
        Ok(format!("2 messages delivered to {deliver}, acked"))
    }
    .await;
    stream.delete_consumer(&durable).await?;
    res
}

async fn s_js_ack_nak_term_wpi(st: S) -> R {
    let js = st.js().await?;
    let subject = st.js_subj("acks");
    publish_all(&js, &subject, &["nak", "term", "wpi"]).await?;
    let stream = js.get_stream(&st.env.stream).await?;
    let durable = format!("acks-{}", st.env.run);
    let mut config = pull_config(&durable, &subject);
    config.ack_wait = Duration::from_secs(30);
    config.max_deliver = 5;
    let consumer: consumer::PullConsumer = stream.create_consumer(config).await?;
    let res = async {
        let msgs = fetch(&consumer, 3, 5).await?;
        expect!(msgs.len() == 3, "fetched {} messages", msgs.len());
        msgs[0].ack_with(AckKind::Nak(None)).await?;
        msgs[1].ack_with(AckKind::Term).await?;
        msgs[2].ack_with(AckKind::Progress).await?;
        msgs[2].double_ack().await?;
        let again = fetch(&consumer, 1, 5).await?;
        expect!(again.len() == 1, "nak'ed message not redelivered");
        let info = again[0].info()?;
        expect!(again[0].payload.as_ref() == b"nak" && info.delivered == 2, "redelivered {:?} (delivered {})", again[0].payload, info.delivered);
        again[0].double_ack().await?;
        let extra = fetch(&consumer, 1, 1).await?;
        expect!(extra.is_empty(), "unexpected redelivery of {:?} (term or ack lost)", extra.iter().map(|m| text(&m.payload)).collect::<Vec<_>>());
        let ci = stream.consumer_info(&durable).await?;
        expect!(ci.num_ack_pending == 0 && ci.num_pending == 0, "ack pending {}, pending {}", ci.num_ack_pending, ci.num_pending);
        Ok("nak redelivered, term not redelivered, in-progress then double ack confirmed".to_string())
    }
    .await;
    stream.delete_consumer(&durable).await?;
    res
}

async fn s_js_consumer_info_list(st: S) -> R {
    let js = st.js().await?;
    let stream = js.get_stream(&st.env.stream).await?;
    let durable = format!("info-{}", st.env.run);
    let filter = st.js_subj("info");
    let _: consumer::PullConsumer = stream.create_consumer(pull_config(&durable, &filter)).await?;
    let res = async {
        let info = stream.consumer_info(&durable).await?;
        expect!(info.name == durable && info.stream_name == st.env.stream, "info {} on {}", info.name, info.stream_name);
        expect!(info.config.filter_subject == filter, "filter_subject {:?}", info.config.filter_subject);
        let listed: Vec<consumer::Info> = stream.consumers().collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
        let mine = listed.iter().find(|c| c.name == durable).ok_or(Out::Fail(format!(
            "consumer list {:?}",
            listed.iter().map(|c| &c.name).collect::<Vec<_>>()
        )))?;
        expect!(mine.config.filter_subject == filter, "listed filter_subject {:?}", mine.config.filter_subject);
        let names: Vec<String> = stream.consumer_names().collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
        expect!(names.contains(&durable), "consumer names {names:?}");
        Ok(format!("info, list and names show {durable} with filter {filter}"))
    }
    .await;
    stream.delete_consumer(&durable).await?;
    res
}

async fn s_js_msg_get_by_subject(st: S) -> R {
    let js = st.js().await?;
    let subject = st.js_subj("get");
    let seqs = publish_all(&js, &subject, &["first", "last"]).await?;
    let stream = js.get_stream(&st.env.stream).await?;
    let m = stream.get_last_raw_message_by_subject(&subject).await?;
    expect!(m.payload.as_ref() == b"last", "data {:?}", m.payload);
    expect!(m.subject.as_str() == subject, "subject {:?}", m.subject);
    expect!(m.sequence == seqs[1], "seq {} (published {})", m.sequence, seqs[1]);
    Ok(format!("last message by subject: seq {}, subject {}", m.sequence, m.subject))
}

// ---- KV and object store (edge) ----

async fn kv_edge(st: &S) -> Result<jetstream::kv::Store, Out> {
    Ok(st.js().await?.get_key_value(&st.env.kv).await?)
}

async fn s_kv_put_get(st: S) -> R {
    let kv = kv_edge(&st).await?;
    let key = format!("{}.k1", st.env.run);
    let rev = kv.put(&key, "v1".into()).await?;
    let e = kv.entry(&key).await?.ok_or(Out::Fail(format!("{key} not found after put")))?;
    expect!(e.value.as_ref() == b"v1" && e.revision == rev, "entry {}={:?} rev {} (put rev {rev})", e.key, e.value, e.revision);
    let v = kv.get(&key).await?;
    expect!(v.as_deref() == Some(&b"v1"[..]), "get {v:?}");
    Ok(format!("put rev {rev}, get and entry match"))
}

async fn s_kv_watch(st: S) -> R {
    let kv = kv_edge(&st).await?;
    let mut watch = kv.watch(format!("{}.w.*", st.env.run)).await?;
    let key = format!("{}.w.a", st.env.run);
    kv.put(&key, "1".into()).await?;
    let e = within(5, "watch", watch.next()).await?.ok_or(Out::Fail("watch ended".into()))??;
    expect!(e.key == key && e.value.as_ref() == b"1", "update {}={:?}", e.key, e.value);
    Ok(format!("watch saw {} rev {}", e.key, e.revision))
}

async fn s_kv_history(st: S) -> R {
    let kv = kv_edge(&st).await?;
    let key = format!("{}.hist", st.env.run);
    for v in ["h1", "h2", "h3"] {
        kv.put(&key, v.into()).await?;
    }
    let hist: Vec<_> = within(5, "history", kv.history(&key).await?.collect::<Vec<_>>()).await?;
    let values: Vec<String> = hist.into_iter().map(|e| e.map(|e| text(&e.value))).collect::<Result<_, _>>()?;
    expect!(values == ["h1", "h2", "h3"], "history {values:?}");
    Ok("history h1,h2,h3".into())
}

async fn s_kv_keys(st: S) -> R {
    let kv = kv_edge(&st).await?;
    let mine: BTreeSet<String> = [format!("{}.keys.a", st.env.run), format!("{}.keys.b", st.env.run)].into();
    for k in &mine {
        kv.put(k, "k".into()).await?;
    }
    let keys: Vec<String> = within(5, "keys", kv.keys().await?.collect::<Vec<_>>()).await?.into_iter().collect::<Result<_, _>>()?;
    let all: BTreeSet<String> = keys.iter().cloned().collect();
    expect!(mine.is_subset(&all), "keys {keys:?}");
    Ok(format!("{} keys, including both put", keys.len()))
}

async fn obj_edge(st: &S) -> Result<jetstream::object_store::ObjectStore, Out> {
    Ok(st.js().await?.get_object_store(&st.env.obj).await?)
}

async fn s_obj_put_get(st: S) -> R {
    let store = obj_edge(&st).await?;
    let name = format!("{}-put-get", st.env.run);
    let data: Vec<u8> = (0..300 * 1024).map(|i| ((i * 7) % 251) as u8).collect();
    let info = store.put(name.as_str(), &mut data.as_slice()).await?;
    let mut object = store.get(&name).await?;
    let mut back = vec![];
    within(5, "object read", object.read_to_end(&mut back)).await??;
    expect!(back == data, "got {} bytes back, put {}", back.len(), data.len());
    Ok(format!("{} bytes in {} chunks, read back intact", data.len(), info.chunks))
}

async fn s_obj_list(st: S) -> R {
    let store = obj_edge(&st).await?;
    let name = format!("{}-list", st.env.run);
    store.put(name.as_str(), &mut &b"listed"[..]).await?;
    let list: Vec<_> = within(5, "object list", store.list().await?.collect::<Vec<_>>()).await?;
    let names: Vec<String> = list.into_iter().map(|o| o.map(|o| o.name)).collect::<Result<_, _>>()?;
    expect!(names.contains(&name), "list {names:?}");
    Ok(format!("list has {} objects including {name}", names.len()))
}

// ---- services (edge) ----

fn service_name(st: &S) -> String {
    format!("compat-rust-{}", st.env.run)
}

async fn ensure_service(st: &S) -> Result<String, Out> {
    let mut slot = st.service.lock().await;
    if slot.is_none() {
        let nc = st.edge().await?;
        let service = nc.service_builder().description("compat suite").start(service_name(st), "1.0.0").await?;
        let mut endpoint = service.endpoint_builder().name("echo").add(format!("svc.compat.{}.echo", st.env.run)).await?;
        tokio::spawn(async move {
            while let Some(req) = endpoint.next().await {
                let body = req.message.payload.clone();
                let _ = req.respond(Ok(body)).await;
            }
        });
        let id = service.info().await.id;
        *slot = Some((service, id));
    }
    Ok(slot.as_ref().unwrap().1.clone())
}

async fn s_service_call(st: S) -> R {
    ensure_service(&st).await?;
    let nc = st.edge().await?;
    let reply = nc
        .send_request(
            format!("svc.compat.{}.echo", st.env.run),
            async_nats::Request::new().payload("hello".into()).timeout(Some(Duration::from_secs(5))),
        )
        .await?;
    expect!(reply.payload.as_ref() == b"hello", "reply {:?}", reply.payload);
    Ok("service endpoint answered".into())
}

async fn s_service_discovery(st: S) -> R {
    let id = ensure_service(&st).await?;
    let nc = st.edge().await?;
    let name = service_name(&st);
    let mut report = vec![];
    for verb in ["PING", "INFO", "STATS"] {
        let inbox = nc.new_inbox();
        let mut sub = nc.subscribe(inbox.clone()).await?;
        nc.publish_with_reply(format!("$SRV.{verb}"), inbox, Bytes::new()).await?;
        nc.flush().await?;
        let mut names = vec![];
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Ok(Some(m)) = timeout(deadline.saturating_duration_since(Instant::now()), sub.next()).await {
            let v: serde_json::Value = serde_json::from_slice(&m.payload)?;
            names.push(v["name"].as_str().unwrap_or("?").to_string());
        }
        expect!(names.contains(&name), "$SRV.{verb} did not find {name}: {names:?}");
        expect!(!names.iter().any(|n| n == "globex-decoy"), "$SRV.{verb} sees another tenant's service: {names:?}");
        names.sort();
        names.dedup();
        report.push(format!("{verb}: {names:?}"));
    }
    let reply = nc
        .send_request(format!("$SRV.PING.{name}.{id}"), async_nats::Request::new().timeout(Some(Duration::from_secs(5))))
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    expect!(v["id"].as_str() == Some(id.as_str()), "targeted ping answered {v}");
    Ok(report.join("; "))
}

// ---- platform (admin certificate) ----

async fn s_platform_connect(st: S) -> R {
    let nc = st.admin().await?;
    Ok(format!("admin connected, server {}", nc.server_info().version))
}

async fn s_platform_sub_wildcard(st: S) -> R {
    let admin = st.admin().await?;
    let edge = st.edge().await?;
    let mut sub = admin.subscribe("*.events.>").await?;
    sync_with_server(&admin, format!("{}.compat.{}.sync", st.env.tenant, st.env.run)).await?;
    edge.publish(format!("events.compat.{}", st.env.run), "wild".into()).await?;
    edge.flush().await?;
    let want = format!("{}.events.compat.{}", st.env.tenant, st.env.run);
    let mut others = vec![];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match timeout(deadline.saturating_duration_since(Instant::now()), sub.next()).await {
            Ok(Some(m)) if m.subject.as_str() == want => {
                expect!(m.payload.as_ref() == b"wild", "data {:?}", m.payload);
                return Ok(format!("admin received {}", m.subject));
            }
            Ok(Some(m)) => others.push(m.subject.to_string()),
            _ => return fail(format!("no message on {want} within 5 s (others seen: {:?})", &others[..others.len().min(5)])),
        }
    }
}

async fn s_platform_publish_into_tenant(st: S) -> R {
    let admin = st.admin().await?;
    let edge = st.edge().await?;
    let subject = format!("jobs.{}", st.env.run);
    let mut sub = edge.subscribe(subject.clone()).await?;
    sync_with_server(&edge, st.subj("sync")).await?;
    admin.publish(format!("{}.{subject}", st.env.tenant), "job".into()).await?;
    admin.flush().await?;
    let m = within(5, "edge subscription", sub.next()).await?.ok_or(Out::Fail("subscription ended".into()))?;
    expect!(m.subject.as_str() == subject && m.payload.as_ref() == b"job", "edge received {} {:?}", m.subject, m.payload);
    Ok(format!("edge received {}", m.subject))
}

async fn s_platform_request_into_tenant(st: S) -> R {
    let admin = st.admin().await?;
    let edge = st.edge().await?;
    let subject = format!("svc.{}", st.env.run);
    let sub = edge.subscribe(subject.clone()).await?;
    serve(edge.clone(), sub, "served:");
    sync_with_server(&edge, st.subj("sync")).await?;
    let reply = admin
        .send_request(format!("{}.{subject}", st.env.tenant), async_nats::Request::new().payload("q".into()).timeout(Some(Duration::from_secs(5))))
        .await?;
    expect!(reply.payload.as_ref() == b"served:q", "reply {:?}", reply.payload);
    Ok("tenant service answered the admin".into())
}

async fn s_platform_js_consume_ack(st: S) -> R {
    let admin = st.admin().await?;
    let edge_js = st.js().await?;
    let ack = edge_js.publish(format!("events.compat.{}", st.env.run), "for-admin".into()).await?.await?;
    let js = jetstream::with_prefix(admin, &st.admin_prefix());
    let stream = js.get_stream(&st.env.stream).await?;
    let durable = format!("plat-{}", st.env.run);
    let filter = format!("{}.events.compat.{}", st.env.tenant, st.env.run);
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::Last,
            ..pull_config(&durable, &filter)
        })
        .await?;
    let res = async {
        let msgs = fetch(&consumer, 1, 5).await?;
        let m = msgs.first().ok_or(Out::Fail("nothing fetched".into()))?;
        expect!(m.payload.as_ref() == b"for-admin", "data {:?}", m.payload);
        let info = m.info()?;
        expect!(
            info.stream == st.env.stream && info.stream_sequence == ack.sequence,
            "metadata stream {} seq {}, published seq {}",
            info.stream,
            info.stream_sequence,
            ack.sequence
        );
        let detail = format!("admin consumed {} (stream {} seq {}), ack confirmed", m.subject, info.stream, info.stream_sequence);
        m.double_ack().await?;
        let ci = stream.consumer_info(&durable).await?;
        expect!(ci.num_ack_pending == 0, "ack pending {} after the ack", ci.num_ack_pending);
        Ok(detail)
    }
    .await;
    stream.delete_consumer(&durable).await?;
    res
}

async fn s_platform_kv_write(st: S) -> R {
    let admin = st.admin().await?;
    let js = jetstream::with_prefix(admin, &st.admin_prefix());
    let kv = js.get_key_value(&st.env.kv).await?;
    let key = format!("{}.platform", st.env.run);
    let rev = kv.put(&key, "from-admin".into()).await?;
    let v = kv_edge(&st).await?.get(&key).await?;
    expect!(v.as_deref() == Some(&b"from-admin"[..]), "edge read {v:?}");
    Ok(format!("admin put rev {rev}, edge read it"))
}

type Scenario = fn(S) -> Pin<Box<dyn Future<Output = R> + Send>>;

macro_rules! scenarios {
    ($($id:literal => $f:ident),* $(,)?) => {
        vec![$(($id, (|st| Box::pin($f(st))) as Scenario)),*]
    };
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let all = scenarios![
        "connect" => s_connect, "pubsub" => s_pubsub, "queue" => s_queue,
        "request_reply" => s_request_reply, "no_responders" => s_no_responders, "headers" => s_headers,
        "echo_false" => s_echo_false, "drain" => s_drain, "flush_rtt" => s_flush_rtt,
        "max_payload" => s_max_payload, "reconnect" => s_reconnect,
        "js_publish_ack" => s_js_publish_ack, "js_msg_id_dedupe" => s_js_msg_id_dedupe,
        "js_stream_info" => s_js_stream_info, "js_stream_names_list" => s_js_stream_names_list,
        "js_pull_fetch" => s_js_pull_fetch, "js_consume" => s_js_consume, "js_ordered" => s_js_ordered,
        "js_push_deliver" => s_js_push_deliver, "js_ack_nak_term_wpi" => s_js_ack_nak_term_wpi,
        "js_consumer_info_list" => s_js_consumer_info_list, "js_msg_get_by_subject" => s_js_msg_get_by_subject,
        "kv_put_get" => s_kv_put_get, "kv_watch" => s_kv_watch, "kv_history" => s_kv_history, "kv_keys" => s_kv_keys,
        "obj_put_get" => s_obj_put_get, "obj_list" => s_obj_list,
        "service_call" => s_service_call, "service_discovery" => s_service_discovery,
        "platform_connect" => s_platform_connect, "platform_sub_wildcard" => s_platform_sub_wildcard,
        "platform_publish_into_tenant" => s_platform_publish_into_tenant,
        "platform_request_into_tenant" => s_platform_request_into_tenant,
        "platform_js_consume_ack" => s_platform_js_consume_ack, "platform_kv_write" => s_platform_kv_write,
    ];
    let mut wanted: Vec<String> = std::env::var("NTG_SCENARIOS").unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(String::from).collect();
    if wanted.is_empty() && std::env::var("NTG_VARIANT").as_deref() == Ok("chain") {
        wanted = ["connect", "pubsub", "request_reply", "platform_connect"].map(String::from).to_vec();
    }
    let st: S = Arc::new(State { env: Env::load(), edge: Mutex::new(None), admin: Mutex::new(None), service: Mutex::new(None) });
    for (id, f) in all {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == id) {
            continue;
        }
        let left = PROGRAM_BUDGET.saturating_sub(started.elapsed());
        if left < Duration::from_secs(1) {
            emit(serde_json::json!({"scenario": id, "result": "fail", "detail": "not run: the program's time budget is spent"}));
            continue;
        }
        let bound = if id == "reconnect" { Duration::from_secs(40) } else { SCENARIO_TIMEOUT }.min(left);
        // each scenario runs as its own task, so a panic inside the library is a failed cell
        let task = tokio::spawn(f(st.clone()));
        let (result, detail) = match timeout(bound, task).await {
            Ok(Ok(Ok(detail))) => ("pass", detail),
            Ok(Ok(Err(Out::Fail(d)))) => ("fail", d),
            Ok(Ok(Err(Out::NotApplicable(d)))) => ("n/a", d),
            Ok(Err(join)) => ("fail", format!("panicked: {join}")),
            Err(_) => ("fail", format!("scenario did not finish within {} s", bound.as_secs())),
        };
        emit(serde_json::json!({"scenario": id, "result": result, "detail": detail}));
    }
    if let Some((service, _)) = st.service.lock().await.take() {
        let _ = service.stop().await;
    }
    for slot in [&st.edge, &st.admin] {
        if let Some(Ok(c)) = slot.lock().await.take() {
            let _ = timeout(Duration::from_secs(2), c.drain()).await;
        }
    }
}
