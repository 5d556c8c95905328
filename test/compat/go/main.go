// The compatibility scenarios with the Go client, nats.go: core, the jetstream package (KV, object
// store, jetstream.NewWithAPIPrefix for the platform), and micro, used as they are used against
// nats-server. Contract: test/compat/README.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

var allScenarios = []string{
	"connect", "pubsub", "queue", "request_reply", "no_responders", "headers", "echo_false", "drain",
	"flush_rtt", "max_payload", "reconnect", "js_publish_ack", "js_msg_id_dedupe", "js_stream_info",
	"js_stream_names_list", "js_pull_fetch", "js_consume", "js_ordered", "js_push_deliver",
	"js_ack_nak_term_wpi", "js_consumer_info_list", "js_msg_get_by_subject", "kv_put_get", "kv_watch",
	"kv_history", "kv_keys", "obj_put_get", "obj_list", "service_call", "service_discovery",
	"platform_connect", "platform_sub_wildcard", "platform_publish_into_tenant",
	"platform_request_into_tenant", "platform_js_consume_ack", "platform_kv_write",
}

type compatEnv struct {
	url, ca, edgeCert, edgeKey, adminCert, adminKey string
	tenant, stream, kv, obj, run                    string
	maxPayload                                      int64
	scenarios                                       map[string]bool
}

var env compatEnv

func required(name string) string {
	v := os.Getenv(name)
	if v == "" {
		fmt.Fprintf(os.Stderr, "%s is not set (the compatibility harness sets it)\n", name)
		os.Exit(2)
	}
	return v
}

func loadEnv() {
	mp, err := strconv.ParseInt(required("NTG_MAX_PAYLOAD"), 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "NTG_MAX_PAYLOAD: %v\n", err)
		os.Exit(2)
	}
	env = compatEnv{
		url: required("NTG_URL"), ca: required("NTG_CA"), edgeCert: required("NTG_EDGE_CERT"), edgeKey: required("NTG_EDGE_KEY"),
		adminCert: required("NTG_ADMIN_CERT"), adminKey: required("NTG_ADMIN_KEY"), tenant: required("NTG_TENANT"),
		stream: required("NTG_STREAM"), kv: required("NTG_KV"), obj: required("NTG_OBJ"), run: required("NTG_RUN"), maxPayload: mp,
	}
	if list := strings.TrimSpace(os.Getenv("NTG_SCENARIOS")); list != "" {
		env.scenarios = map[string]bool{}
		for _, s := range strings.Split(list, ",") {
			env.scenarios[strings.TrimSpace(s)] = true
		}
	}
}

// ---- scenario runner ----

// notApplicable: the library cannot express the scenario; the cell says n/a and why.
type notApplicable struct{ reason string }

func (n notApplicable) Error() string { return n.reason }

type scenario struct {
	mu       sync.Mutex
	step     string
	notes    []string
	cleanups []func()
	passNote string
}

func (s *scenario) Step(what string) {
	s.mu.Lock()
	s.step = what
	s.mu.Unlock()
}

func (s *scenario) Note(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.notes, text) {
		s.notes = append(s.notes, text)
	}
}

func (s *scenario) Defer(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

func (s *scenario) current() (string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.step, slices.Clone(s.notes)
}

func fail(format string, args ...any) error { return fmt.Errorf(format, args...) }

func check(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

// ctx5 is the bound of one library call.
func ctx5() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

func emit(id, result, detail string) {
	line, _ := json.Marshal(map[string]string{"scenario": id, "result": result, "detail": detail})
	fmt.Println(string(line))
}

var stdin = bufio.NewReader(os.Stdin)

// requestGatewayRestart: the reconnect hand-shake with the harness.
func requestGatewayRestart() {
	fmt.Println(`{"control":"restart-gateway"}`)
	_, _ = stdin.ReadString('\n')
}

func runOne(id string, body func(*scenario) error) {
	s := &scenario{step: "start"}
	started := time.Now()
	limit := 10 * time.Second
	if id == "reconnect" {
		limit = 25 * time.Second
	}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
			}
		}()
		done <- body(s)
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		step, _ := s.current()
		err = fmt.Errorf("timed out after %s at step: %s", limit, step)
	}
	step, notes := s.current()
	var na notApplicable
	switch {
	case err == nil:
		emit(id, "pass", s.passNote)
	case errors.As(err, &na):
		emit(id, "n/a", na.reason)
	default:
		detail := err.Error()
		if !strings.Contains(detail, "at step:") {
			detail += " (step: " + step + ")"
		}
		if len(notes) > 0 {
			detail += "; seen: " + strings.Join(notes, "; ")
		}
		emit(id, "fail", detail)
	}
	s.mu.Lock()
	cleanups := s.cleanups
	s.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		fin := make(chan struct{})
		go func() { cleanups[i](); close(fin) }()
		select {
		case <-fin:
		case <-time.After(2 * time.Second):
		}
	}
	fmt.Fprintf(os.Stderr, "[%s] %s in %s\n", time.Now().Format(time.RFC3339Nano), id, time.Since(started).Round(time.Millisecond))
}

// ---- connections ----

func open(s *scenario, who string, opts ...nats.Option) (*nats.Conn, error) {
	s.Step("connect (" + who + ")")
	cert, key := env.edgeCert, env.edgeKey
	if who == "admin" {
		cert, key = env.adminCert, env.adminKey
	}
	base := []nats.Option{
		nats.ClientCert(cert, key),
		nats.RootCAs(env.ca),
		nats.Name("compat-go-" + who),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { s.Note(who + " async error: " + err.Error()) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.Note(who + " disconnected: " + err.Error())
			}
		}),
	}
	nc, err := nats.Connect(env.url, append(base, opts...)...)
	if err != nil {
		return nil, err
	}
	s.Defer(nc.Close)
	return nc, nil
}

func edge(s *scenario, opts ...nats.Option) (*nats.Conn, error) { return open(s, "edge", opts...) }
func admin(s *scenario) (*nats.Conn, error)                     { return open(s, "admin") }

func edgeJS(s *scenario) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := edge(s)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	return nc, js, err
}

// until polls cond every 20 ms for up to d.
func until(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func noPrefix(what string, v any) error {
	b, _ := json.Marshal(v)
	text := string(b)
	if strings.Contains(text, env.tenant+".") {
		if len(text) > 300 {
			text = text[:300]
		}
		return fail("%s shows the tenant prefix %q: %s", what, env.tenant+".", text)
	}
	return nil
}

func jsPublishN(s *scenario, js jetstream.JetStream, subject string, n int) error {
	s.Step("JetStream publish to " + subject)
	for i := 0; i < n; i++ {
		ctx, cancel := ctx5()
		_, err := js.Publish(ctx, subject, []byte(fmt.Sprintf("m%d", i)))
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func expected3(subject string) []string {
	return []string{subject + ":m0", subject + ":m1", subject + ":m2"}
}

func addConsumer(s *scenario, js jetstream.JetStream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	s.Step("add consumer " + cfg.Durable)
	ctx, cancel := ctx5()
	defer cancel()
	c, err := js.CreateOrUpdateConsumer(ctx, env.stream, cfg)
	if err != nil {
		return nil, err
	}
	s.Defer(func() {
		ctx, cancel := ctx5()
		defer cancel()
		_ = js.DeleteConsumer(ctx, env.stream, cfg.Durable)
	})
	return c, nil
}

func fetch(c jetstream.Consumer, n int) ([]jetstream.Msg, error) {
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, batch.Error()
}

func bindKV(s *scenario, js jetstream.JetStream) (jetstream.KeyValue, error) {
	s.Step("bind KV " + env.kv)
	ctx, cancel := ctx5()
	defer cancel()
	return js.KeyValue(ctx, env.kv)
}

// ---- scenarios ----

var scenarios = map[string]func(*scenario) error{
	"connect": func(s *scenario) error {
		started := time.Now()
		nc, err := edge(s)
		if err != nil {
			return err
		}
		if err := promptConnect(time.Since(started)); err != nil {
			return err
		}
		s.Step("flush")
		return nc.Flush()
	},

	"pubsub": func(s *scenario) error {
		nc, err := edge(s)
		if err != nil {
			return err
		}
		subject := "compat." + env.run + ".pubsub"
		sub, err := nc.SubscribeSync(subject)
		if err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		s.Step("publish 3, receive 3")
		for i := 0; i < 3; i++ {
			if err := nc.Publish(subject, []byte(fmt.Sprintf("m%d", i))); err != nil {
				return err
			}
		}
		var seen []string
		for i := 0; i < 3; i++ {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				return fail("message %d: %v (received %v)", i, err, seen)
			}
			seen = append(seen, m.Subject+":"+string(m.Data))
		}
		return check(reflect.DeepEqual(seen, expected3(subject)), "received %v", seen)
	},

	"queue": func(s *scenario) error {
		a, err := edge(s)
		if err != nil {
			return err
		}
		b, err := edge(s)
		if err != nil {
			return err
		}
		subject := "compat." + env.run + ".queue"
		var mu sync.Mutex
		var seen []string
		handler := func(m *nats.Msg) { mu.Lock(); seen = append(seen, string(m.Data)); mu.Unlock() }
		if _, err := a.QueueSubscribe(subject, "workers", handler); err != nil {
			return err
		}
		if _, err := b.QueueSubscribe(subject, "workers", handler); err != nil {
			return err
		}
		if err := a.Flush(); err != nil {
			return err
		}
		if err := b.Flush(); err != nil {
			return err
		}
		s.Step("publish 20 to the queue group")
		for i := 0; i < 20; i++ {
			_ = a.Publish(subject, []byte(fmt.Sprintf("m%d", i)))
		}
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
		if err := until(5*time.Second, "20 messages across the group", func() bool { return count() >= 20 }); err != nil {
			return fail("%v (received %d)", err, count())
		}
		_ = a.Flush()
		_ = b.Flush()
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		distinct := map[string]bool{}
		for _, v := range seen {
			distinct[v] = true
		}
		return check(len(seen) == 20 && len(distinct) == 20, "group received %d messages (%d distinct), expected each of 20 once", len(seen), len(distinct))
	},

	"request_reply": func(s *scenario) error {
		responder, err := edge(s)
		if err != nil {
			return err
		}
		requester, err := edge(s)
		if err != nil {
			return err
		}
		subject := "compat." + env.run + ".rr"
		if _, err := responder.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte("re:" + string(m.Data))) }); err != nil {
			return err
		}
		if err := responder.Flush(); err != nil {
			return err
		}
		s.Step("request")
		reply, err := requester.Request(subject, []byte("ping"), 5*time.Second)
		if err != nil {
			return err
		}
		return check(string(reply.Data) == "re:ping", "reply %q", reply.Data)
	},

	"no_responders": func(s *scenario) error {
		nc, err := edge(s)
		if err != nil {
			return err
		}
		s.Step("request to a subject nobody serves")
		started := time.Now()
		_, err = nc.Request("compat."+env.run+".nobody", []byte("x"), 5*time.Second)
		elapsed := time.Since(started)
		if err == nil {
			return fail("got a reply from nobody")
		}
		if !errors.Is(err, nats.ErrNoResponders) {
			return fail("expected nats.ErrNoResponders, got %q after %s", err, elapsed.Round(time.Millisecond))
		}
		return check(elapsed < 2500*time.Millisecond, "no-responders error only after %s", elapsed)
	},

	"headers": func(s *scenario) error {
		nc, err := edge(s)
		if err != nil {
			return err
		}
		subject := "compat." + env.run + ".headers"
		sub, err := nc.SubscribeSync(subject)
		if err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		msg := nats.NewMsg(subject)
		msg.Data = []byte("with headers")
		msg.Header.Set("X-Compat", env.run)
		msg.Header.Add("X-Multi", "a")
		msg.Header.Add("X-Multi", "b")
		s.Step("publish with headers")
		if err := nc.PublishMsg(msg); err != nil {
			return err
		}
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			return err
		}
		if err := check(m.Header.Get("X-Compat") == env.run, "X-Compat %q", m.Header.Get("X-Compat")); err != nil {
			return err
		}
		return check(reflect.DeepEqual(m.Header.Values("X-Multi"), []string{"a", "b"}), "X-Multi %v", m.Header.Values("X-Multi"))
	},

	"echo_false": func(s *scenario) error {
		quiet, err := edge(s, nats.NoEcho())
		if err != nil {
			return err
		}
		other, err := edge(s)
		if err != nil {
			return err
		}
		subject := "compat." + env.run + ".echo"
		var mu sync.Mutex
		var seen []string
		if _, err := quiet.Subscribe(subject, func(m *nats.Msg) { mu.Lock(); seen = append(seen, string(m.Data)); mu.Unlock() }); err != nil {
			return err
		}
		if err := quiet.Flush(); err != nil {
			return err
		}
		s.Step("publish from the NoEcho connection, then from another")
		_ = quiet.Publish(subject, []byte("self"))
		if err := quiet.Flush(); err != nil {
			return err
		}
		_ = other.Publish(subject, []byte("other"))
		has := func(v string) bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(seen, v) }
		if err := until(5*time.Second, "the other connection's message", func() bool { return has("other") }); err != nil {
			return err
		}
		return check(!has("self"), "NoEcho connection received its own message")
	},

	"drain": func(s *scenario) error {
		closed := make(chan struct{})
		nc, err := edge(s, nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
		if err != nil {
			return err
		}
		pub, err := edge(s)
		if err != nil {
			return err
		}
		subject := "compat." + env.run + ".drain"
		var mu sync.Mutex
		received := 0
		if _, err := nc.Subscribe(subject, func(*nats.Msg) { mu.Lock(); received++; mu.Unlock() }); err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		s.Step("publish 50")
		for i := 0; i < 50; i++ {
			_ = pub.Publish(subject, []byte(fmt.Sprintf("m%d", i)))
		}
		if err := pub.Flush(); err != nil {
			return err
		}
		s.Step("drain")
		if err := nc.Drain(); err != nil {
			return err
		}
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			return fail("connection not closed 5 s after Drain")
		}
		if nc.LastError() != nil {
			return fail("closed with %v", nc.LastError())
		}
		mu.Lock()
		defer mu.Unlock()
		return check(received == 50, "received %d of 50 before the drain completed", received)
	},

	"flush_rtt": func(s *scenario) error {
		nc, err := edge(s)
		if err != nil {
			return err
		}
		s.Step("flush")
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			return err
		}
		s.Step("rtt")
		rtt, err := nc.RTT()
		if err != nil {
			return err
		}
		return check(rtt > 0, "rtt %s", rtt)
	},

	"max_payload": func(s *scenario) error {
		nc, err := edge(s)
		if err != nil {
			return err
		}
		atConnect := nc.MaxPayload()
		if err := nc.Flush(); err != nil {
			return err
		}
		if err := check(nc.MaxPayload() == env.maxPayload, "client sees max_payload %d, expected %d", nc.MaxPayload(), env.maxPayload); err != nil {
			return err
		}
		s.Step(fmt.Sprintf("publish %d bytes", env.maxPayload+1))
		err = nc.Publish("compat."+env.run+".big", make([]byte, env.maxPayload+1))
		if !errors.Is(err, nats.ErrMaxPayload) {
			return fail("publishing max_payload+1 bytes: expected nats.ErrMaxPayload, got %v", err)
		}
		if atConnect != env.maxPayload {
			// The tenant's limit comes in the INFO that follows the first PONG, which Connect does not wait for.
			s.passNote = fmt.Sprintf("learned after the first round trip (%d when Connect returned); refused by the library: %v", atConnect, err)
		} else {
			s.passNote = fmt.Sprintf("refused by the library: %v", err)
		}
		return nil
	},

	"reconnect": func(s *scenario) error {
		reconnected := make(chan struct{}, 1)
		closed := make(chan struct{})
		nc, err := edge(s, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.ReconnectHandler(func(*nats.Conn) {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
		if err != nil {
			return err
		}
		subject := "compat." + env.run + ".reconnect"
		var mu sync.Mutex
		var seen []string
		if _, err := nc.Subscribe(subject, func(m *nats.Msg) { mu.Lock(); seen = append(seen, string(m.Data)); mu.Unlock() }); err != nil {
			return err
		}
		has := func(v string) bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(seen, v) }
		_ = nc.Publish(subject, []byte("before"))
		if err := until(5*time.Second, "a message before the restart", func() bool { return has("before") }); err != nil {
			return err
		}
		s.Step("waiting for the harness to restart the gateway")
		requestGatewayRestart()
		s.Step("waiting for the client to reconnect by itself")
		select {
		case <-reconnected:
		case <-closed:
			return fail("the connection closed for good instead of reconnecting (last error: %v)", nc.LastError())
		case <-time.After(15 * time.Second):
			return fail("no reconnect within 15 s of the gateway's restart (status %v, last error: %v)", nc.Status(), nc.LastError())
		}
		s.Step("publish after the reconnect")
		_ = nc.Publish(subject, []byte("after"))
		return until(5*time.Second, "the message after the reconnect on the same subscription", func() bool { return has("after") })
	},

	"js_publish_ack": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		s.Step("JetStream publish")
		ctx, cancel := ctx5()
		defer cancel()
		ack, err := js.Publish(ctx, "events.compat."+env.run+".ack", []byte("x"))
		if err != nil {
			return err
		}
		return check(ack.Stream == env.stream && ack.Sequence > 0, "ack %+v", ack)
	},

	"js_msg_id_dedupe": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		subject := "events.compat." + env.run + ".dedupe"
		ctx, cancel := ctx5()
		defer cancel()
		s.Step("first publish with Nats-Msg-Id")
		first, err := js.Publish(ctx, subject, []byte("once"), jetstream.WithMsgID("dedupe-"+env.run))
		if err != nil {
			return err
		}
		s.Step("second publish with the same Nats-Msg-Id")
		second, err := js.Publish(ctx, subject, []byte("once"), jetstream.WithMsgID("dedupe-"+env.run))
		if err != nil {
			return err
		}
		if err := check(!first.Duplicate, "first publish reported duplicate: %+v", first); err != nil {
			return err
		}
		return check(second.Duplicate && second.Sequence == first.Sequence, "second publish: %+v", second)
	},

	"js_stream_info": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		s.Step("stream info")
		stream, err := js.Stream(ctx, env.stream)
		if err != nil {
			return err
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		if err := check(reflect.DeepEqual(info.Config.Subjects, []string{env.stream + ".>"}), "subjects %v", info.Config.Subjects); err != nil {
			return err
		}
		return noPrefix("stream info", info)
	},

	"js_stream_names_list": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		s.Step("stream names")
		lister := js.StreamNames(ctx)
		var names []string
		for n := range lister.Name() {
			names = append(names, n)
		}
		if lister.Err() != nil {
			return lister.Err()
		}
		if err := check(slices.Contains(names, env.stream), "names %v", names); err != nil {
			return err
		}
		s.Step("stream list")
		infos := js.ListStreams(ctx)
		var list []*jetstream.StreamInfo
		for si := range infos.Info() {
			list = append(list, si)
		}
		if infos.Err() != nil {
			return infos.Err()
		}
		i := slices.IndexFunc(list, func(si *jetstream.StreamInfo) bool { return si.Config.Name == env.stream })
		if i < 0 || !reflect.DeepEqual(list[i].Config.Subjects, []string{env.stream + ".>"}) {
			return fail("list has no %s on %s.>", env.stream, env.stream)
		}
		if err := noPrefix("stream list", list); err != nil {
			return err
		}
		s.Step("stream name by subject")
		found, err := js.StreamNameBySubject(ctx, "events.compat."+env.run+".x")
		if err != nil {
			return err
		}
		return check(found == env.stream, "stream by subject: %q", found)
	},

	"js_pull_fetch": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		subject := "events.compat." + env.run + ".fetch"
		if err := jsPublishN(s, js, subject, 3); err != nil {
			return err
		}
		c, err := addConsumer(s, js, jetstream.ConsumerConfig{Durable: "compat-" + env.run + "-fetch", FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			return err
		}
		s.Step("fetch 3")
		msgs, err := fetch(c, 3)
		if err != nil {
			return err
		}
		var seen []string
		for _, m := range msgs {
			seen = append(seen, m.Subject()+":"+string(m.Data()))
			_ = m.Ack()
		}
		return check(reflect.DeepEqual(seen, expected3(subject)), "fetched %v", seen)
	},

	"js_consume": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		subject := "events.compat." + env.run + ".consume"
		if err := jsPublishN(s, js, subject, 3); err != nil {
			return err
		}
		c, err := addConsumer(s, js, jetstream.ConsumerConfig{Durable: "compat-" + env.run + "-consume", FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			return err
		}
		s.Step("consume 3")
		var mu sync.Mutex
		var seen []string
		cc, err := c.Consume(func(m jetstream.Msg) {
			mu.Lock()
			seen = append(seen, m.Subject()+":"+string(m.Data()))
			mu.Unlock()
			_ = m.Ack()
		}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { s.Note("consume error: " + err.Error()) }))
		if err != nil {
			return err
		}
		defer cc.Stop()
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
		if err := until(5*time.Second, "3 messages", func() bool { return count() >= 3 }); err != nil {
			return fail("%v (got %d)", err, count())
		}
		mu.Lock()
		defer mu.Unlock()
		return check(reflect.DeepEqual(seen, expected3(subject)), "consumed %v", seen)
	},

	"js_ordered": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		subject := "events.compat." + env.run + ".ordered"
		if err := jsPublishN(s, js, subject, 3); err != nil {
			return err
		}
		s.Step("ordered consumer")
		ctx, cancel := ctx5()
		defer cancel()
		c, err := js.OrderedConsumer(ctx, env.stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
		if err != nil {
			return err
		}
		s.Step("fetch 3 from the ordered consumer")
		msgs, err := fetch(c, 3)
		if err != nil {
			return err
		}
		var seen []string
		var last uint64
		for _, m := range msgs {
			md, err := m.Metadata()
			if err != nil {
				return fail("metadata: %v", err)
			}
			if md.Sequence.Stream <= last {
				return fail("stream sequences not increasing: %d after %d", md.Sequence.Stream, last)
			}
			last = md.Sequence.Stream
			seen = append(seen, m.Subject()+":"+string(m.Data()))
		}
		return check(reflect.DeepEqual(seen, expected3(subject)), "ordered consumer yielded %v", seen)
	},

	"js_push_deliver": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		subject := "events.compat." + env.run + ".push"
		if err := jsPublishN(s, js, subject, 3); err != nil {
			return err
		}
		name := "compat-" + env.run + "-push"
		deliver := "compat." + env.run + ".push-deliver"
		s.Step("add push consumer with a deliver subject")
		ctx, cancel := ctx5()
		defer cancel()
		pc, err := js.CreateOrUpdatePushConsumer(ctx, env.stream, jetstream.ConsumerConfig{Durable: name, DeliverSubject: deliver, FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			return err
		}
		s.Defer(func() {
			ctx, cancel := ctx5()
			defer cancel()
			_ = js.DeleteConsumer(ctx, env.stream, name)
		})
		if got := pc.CachedInfo().Config.DeliverSubject; got != deliver {
			return fail("consumer's deliver_subject %q", got)
		}
		s.Step("consume the push consumer")
		var mu sync.Mutex
		var seen []string
		cc, err := pc.Consume(func(m jetstream.Msg) {
			mu.Lock()
			seen = append(seen, m.Subject()+":"+string(m.Data()))
			mu.Unlock()
			_ = m.Ack()
		})
		if err != nil {
			return err
		}
		defer cc.Stop()
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
		if err := until(5*time.Second, "3 messages on the deliver subject", func() bool { return count() >= 3 }); err != nil {
			return fail("%v (got %d)", err, count())
		}
		mu.Lock()
		defer mu.Unlock()
		return check(reflect.DeepEqual(seen, expected3(subject)), "delivered %v", seen)
	},

	"js_ack_nak_term_wpi": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		subject := "events.compat." + env.run + ".acks"
		if err := jsPublishN(s, js, subject, 3); err != nil {
			return err
		}
		c, err := addConsumer(s, js, jetstream.ConsumerConfig{Durable: "compat-" + env.run + "-acks", FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second})
		if err != nil {
			return err
		}
		s.Step("fetch 3")
		first, err := fetch(c, 3)
		if err != nil {
			return err
		}
		if len(first) != 3 {
			return fail("fetched %d of 3", len(first))
		}
		s.Step("in progress, then nak the first")
		if err := first[0].InProgress(); err != nil {
			return err
		}
		if err := first[0].Nak(); err != nil {
			return err
		}
		s.Step("term the second")
		if err := first[1].Term(); err != nil {
			return err
		}
		s.Step("ack the third (double ack)")
		ctx, cancel := ctx5()
		defer cancel()
		if err := first[2].DoubleAck(ctx); err != nil {
			return fail("double ack: %v", err)
		}
		s.Step("fetch the nak'd message again")
		again, err := fetch(c, 1)
		if err != nil {
			return err
		}
		if len(again) != 1 {
			return fail("no redelivery after nak")
		}
		md, err := again[0].Metadata()
		if err != nil {
			return fail("metadata: %v", err)
		}
		if string(again[0].Data()) != "m0" || md.NumDelivered != 2 {
			return fail("redelivered %q with NumDelivered %d", again[0].Data(), md.NumDelivered)
		}
		if err := again[0].DoubleAck(ctx); err != nil {
			return fail("double ack of the redelivery: %v", err)
		}
		s.Step("consumer info: nothing pending")
		var info *jetstream.ConsumerInfo
		for i := 0; i < 20; i++ {
			if info, err = c.Info(ctx); err != nil {
				return err
			}
			if info.NumAckPending == 0 && info.NumPending == 0 {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return fail("consumer still has ack_pending %d, pending %d", info.NumAckPending, info.NumPending)
	},

	"js_consumer_info_list": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		name := "compat-" + env.run + "-info"
		filter := "events.compat." + env.run + ".info"
		c, err := addConsumer(s, js, jetstream.ConsumerConfig{Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		s.Step("consumer info")
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if err := check(info.Name == name && info.Stream == env.stream && info.Config.FilterSubject == filter, "info: name %q stream %q filter %q", info.Name, info.Stream, info.Config.FilterSubject); err != nil {
			return err
		}
		if err := noPrefix("consumer info", info); err != nil {
			return err
		}
		s.Step("consumer list")
		stream, err := js.Stream(ctx, env.stream)
		if err != nil {
			return err
		}
		lister := stream.ListConsumers(ctx)
		var list []*jetstream.ConsumerInfo
		for ci := range lister.Info() {
			list = append(list, ci)
		}
		if lister.Err() != nil {
			return lister.Err()
		}
		i := slices.IndexFunc(list, func(ci *jetstream.ConsumerInfo) bool { return ci.Name == name })
		if i < 0 || list[i].Config.FilterSubject != filter {
			return fail("list has no %s with filter %s", name, filter)
		}
		return noPrefix("consumer list", list)
	},

	"js_msg_get_by_subject": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		subject := "events.compat." + env.run + ".get"
		ctx, cancel := ctx5()
		defer cancel()
		s.Step("publish two")
		if _, err := js.Publish(ctx, subject, []byte("v1")); err != nil {
			return err
		}
		ack, err := js.Publish(ctx, subject, []byte("v2"))
		if err != nil {
			return err
		}
		s.Step("get the last message by subject")
		stream, err := js.Stream(ctx, env.stream)
		if err != nil {
			return err
		}
		m, err := stream.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return err
		}
		return check(m.Subject == subject && string(m.Data) == "v2" && m.Sequence == ack.Sequence, "got subject %q data %q seq %d", m.Subject, m.Data, m.Sequence)
	},

	"kv_put_get": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		kv, err := bindKV(s, js)
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		key := "put." + env.run
		s.Step("put")
		rev, err := kv.Put(ctx, key, []byte("v1"))
		if err != nil {
			return err
		}
		s.Step("get")
		e, err := kv.Get(ctx, key)
		if err != nil {
			return err
		}
		return check(e.Key() == key && string(e.Value()) == "v1" && e.Revision() == rev, "get: key %q value %q revision %d", e.Key(), e.Value(), e.Revision())
	},

	"kv_watch": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		kv, err := bindKV(s, js)
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		prefix := "watch." + env.run
		s.Step("watch")
		w, err := kv.Watch(ctx, prefix+".>")
		if err != nil {
			return err
		}
		defer func() { _ = w.Stop() }()
		var mu sync.Mutex
		var seen []string
		go func() {
			for e := range w.Updates() {
				if e == nil {
					continue
				}
				mu.Lock()
				seen = append(seen, fmt.Sprintf("%s=%s:%s", e.Key(), e.Value(), e.Operation()))
				mu.Unlock()
			}
		}()
		s.Step("put, put, delete")
		if _, err := kv.Put(ctx, prefix+".a", []byte("1")); err != nil {
			return err
		}
		if _, err := kv.Put(ctx, prefix+".b", []byte("2")); err != nil {
			return err
		}
		if err := kv.Delete(ctx, prefix+".a"); err != nil {
			return err
		}
		s.Step("watch sees the three changes")
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
		if err := until(5*time.Second, "3 watch updates", func() bool { return count() >= 3 }); err != nil {
			mu.Lock()
			defer mu.Unlock()
			return fail("%v (seen %v)", err, seen)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []string{prefix + ".a=1:KeyValuePutOp", prefix + ".b=2:KeyValuePutOp", prefix + ".a=:KeyValueDeleteOp"}
		return check(reflect.DeepEqual(seen, want), "watch saw %v", seen)
	},

	"kv_history": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		kv, err := bindKV(s, js)
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		key := "hist." + env.run
		s.Step("put three values")
		for _, v := range []string{"1", "2", "3"} {
			if _, err := kv.Put(ctx, key, []byte(v)); err != nil {
				return err
			}
		}
		s.Step("history")
		h, err := kv.History(ctx, key)
		if err != nil {
			return err
		}
		var values []string
		for _, e := range h {
			values = append(values, e.Key()+"="+string(e.Value()))
		}
		return check(reflect.DeepEqual(values, []string{key + "=1", key + "=2", key + "=3"}), "history %v", values)
	},

	"kv_keys": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		kv, err := bindKV(s, js)
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		base := "keys." + env.run
		s.Step("put two keys")
		for _, k := range []string{".a", ".b"} {
			if _, err := kv.Put(ctx, base+k, []byte("v")); err != nil {
				return err
			}
		}
		s.Step("keys filtered")
		lister, err := kv.ListKeysFiltered(ctx, base+".*")
		if err != nil {
			return err
		}
		var keys []string
		for k := range lister.Keys() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if err := check(reflect.DeepEqual(keys, []string{base + ".a", base + ".b"}), "keys %v", keys); err != nil {
			return err
		}
		s.Step("all keys")
		all, err := kv.ListKeys(ctx)
		if err != nil {
			return err
		}
		var every []string
		for k := range all.Keys() {
			every = append(every, k)
		}
		return check(slices.Contains(every, base+".a"), "unfiltered keys lack %s.a (%d keys)", base, len(every))
	},

	"obj_put_get": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		s.Step("open object store " + env.obj)
		store, err := js.ObjectStore(ctx, env.obj)
		if err != nil {
			return err
		}
		name := "blob-" + env.run
		data := make([]byte, 300*1024)
		_, _ = rand.Read(data)
		s.Step("put 300 KiB")
		info, err := store.PutBytes(ctx, name, data)
		if err != nil {
			return err
		}
		if err := check(info.Size == uint64(len(data)) && info.Chunks > 1, "put info size %d chunks %d", info.Size, info.Chunks); err != nil {
			return err
		}
		s.Step("get")
		back, err := store.GetBytes(ctx, name)
		if err != nil {
			return err
		}
		return check(bytes.Equal(back, data), "got %d bytes back, different from what was put", len(back))
	},

	"obj_list": func(s *scenario) error {
		_, js, err := edgeJS(s)
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		s.Step("open object store " + env.obj)
		store, err := js.ObjectStore(ctx, env.obj)
		if err != nil {
			return err
		}
		name := "list-" + env.run
		s.Step("put")
		if _, err := store.PutString(ctx, name, "listed"); err != nil {
			return err
		}
		s.Step("list")
		infos, err := store.List(ctx)
		if err != nil {
			return err
		}
		return check(slices.ContainsFunc(infos, func(i *jetstream.ObjectInfo) bool { return i.Name == name }), "list lacks %s (%d objects)", name, len(infos))
	},

	"service_call": func(s *scenario) error {
		nc, err := edge(s)
		if err != nil {
			return err
		}
		caller, err := edge(s)
		if err != nil {
			return err
		}
		s.Step("add service")
		svc, err := micro.AddService(nc, micro.Config{Name: "compat-" + env.run, Version: "1.0.0", Description: "compat suite"})
		if err != nil {
			return err
		}
		s.Defer(func() { _ = svc.Stop() })
		subject := "compat." + env.run + ".svc-echo"
		if err := svc.AddEndpoint("echo", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) }), micro.WithEndpointSubject(subject)); err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		s.Step("call the endpoint")
		reply, err := caller.Request(subject, []byte("hello"), 5*time.Second)
		if err != nil {
			return err
		}
		return check(string(reply.Data) == "hello", "reply %q", reply.Data)
	},

	"service_discovery": func(s *scenario) error {
		nc, err := edge(s)
		if err != nil {
			return err
		}
		observer, err := edge(s)
		if err != nil {
			return err
		}
		own := "compat-" + env.run + "-disc"
		s.Step("add service")
		svc, err := micro.AddService(nc, micro.Config{Name: own, Version: "1.0.0"})
		if err != nil {
			return err
		}
		s.Defer(func() { _ = svc.Stop() })
		if err := svc.AddEndpoint("echo", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) }), micro.WithEndpointSubject("compat."+env.run+".disc-echo")); err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		// micro has no discovery client: discovery is a request to $SRV.<VERB> gathering every answer
		// for a while (what `nats micro` does), decoded into micro's own response types.
		for _, verb := range []micro.Verb{micro.PingVerb, micro.InfoVerb, micro.StatsVerb} {
			subject, err := micro.ControlSubject(verb, "", "")
			if err != nil {
				return err
			}
			s.Step(subject)
			names, err := discover(observer, subject)
			if err != nil {
				return err
			}
			if !slices.Contains(names, own) {
				return fail("%s did not find the program's own service: %v", subject, names)
			}
			if slices.Contains(names, "globex-decoy") {
				return fail("%s found globex's service: %v", subject, names)
			}
		}
		subject, _ := micro.ControlSubject(micro.PingVerb, own, "")
		s.Step(subject)
		names, err := discover(observer, subject)
		if err != nil {
			return err
		}
		return check(len(names) == 1 && names[0] == own, "%s: %v", subject, names)
	},

	"platform_connect": func(s *scenario) error {
		started := time.Now()
		nc, err := admin(s)
		if err != nil {
			return err
		}
		if err := promptConnect(time.Since(started)); err != nil {
			return err
		}
		s.Step("flush")
		return nc.Flush()
	},

	"platform_sub_wildcard": func(s *scenario) error {
		a, err := admin(s)
		if err != nil {
			return err
		}
		e, err := edge(s)
		if err != nil {
			return err
		}
		expected := env.tenant + ".events.compat." + env.run
		got := make(chan string, 1)
		if _, err := a.Subscribe("*.events.>", func(m *nats.Msg) {
			if m.Subject == expected {
				select {
				case got <- string(m.Data):
				default:
				}
			}
		}); err != nil {
			return err
		}
		if err := a.Flush(); err != nil {
			return err
		}
		s.Step("edge publishes events.compat." + env.run)
		_ = e.Publish("events.compat."+env.run, []byte("from-edge"))
		select {
		case data := <-got:
			return check(data == "from-edge", "payload %q", data)
		case <-time.After(5 * time.Second):
			return fail("no %s at the admin's *.events.> subscription within 5 s", expected)
		}
	},

	"platform_publish_into_tenant": func(s *scenario) error {
		a, err := admin(s)
		if err != nil {
			return err
		}
		e, err := edge(s)
		if err != nil {
			return err
		}
		sub, err := e.SubscribeSync("jobs." + env.run)
		if err != nil {
			return err
		}
		if err := e.Flush(); err != nil {
			return err
		}
		s.Step("admin publishes " + env.tenant + ".jobs." + env.run)
		_ = a.Publish(env.tenant+".jobs."+env.run, []byte("job"))
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			return fail("jobs.%s at the edge: %v", env.run, err)
		}
		return check(m.Subject == "jobs."+env.run && string(m.Data) == "job", "edge received %s %q", m.Subject, m.Data)
	},

	"platform_request_into_tenant": func(s *scenario) error {
		a, err := admin(s)
		if err != nil {
			return err
		}
		e, err := edge(s)
		if err != nil {
			return err
		}
		if _, err := e.Subscribe("svc."+env.run, func(m *nats.Msg) { _ = m.Respond([]byte("edge:" + string(m.Data))) }); err != nil {
			return err
		}
		if err := e.Flush(); err != nil {
			return err
		}
		s.Step("admin requests " + env.tenant + ".svc." + env.run)
		reply, err := a.Request(env.tenant+".svc."+env.run, []byte("hi"), 5*time.Second)
		if err != nil {
			return err
		}
		return check(string(reply.Data) == "edge:hi", "reply %q", reply.Data)
	},

	"platform_js_consume_ack": func(s *scenario) error {
		_, ejs, err := edgeJS(s)
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		s.Step("edge JetStream publish")
		if _, err := ejs.Publish(ctx, "events.compat."+env.run, []byte("for-admin")); err != nil {
			return err
		}
		a, err := admin(s)
		if err != nil {
			return err
		}
		apiPrefix := "$JS." + env.tenant + ".API"
		s.Step("jetstream.NewWithAPIPrefix " + apiPrefix)
		js, err := jetstream.NewWithAPIPrefix(a, apiPrefix)
		if err != nil {
			return err
		}
		filter := env.tenant + ".events.compat." + env.run
		c, err := addConsumer(s, js, jetstream.ConsumerConfig{Durable: "compat-" + env.run + "-plat", FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			return err
		}
		s.Step("fetch")
		msgs, err := fetch(c, 1)
		if err != nil {
			return err
		}
		if len(msgs) != 1 {
			return fail("fetched nothing")
		}
		m := msgs[0]
		if m.Subject() != filter {
			return fail("subject %s", m.Subject())
		}
		s.Step("metadata (Msg.Metadata)")
		md, err := m.Metadata()
		if err != nil {
			return fail("metadata: %v (reply subject %s)", err, m.Reply())
		}
		if md.Stream != env.stream || md.Sequence.Stream == 0 {
			return fail("metadata stream %q sequence %d", md.Stream, md.Sequence.Stream)
		}
		s.Step("ack (double ack)")
		ackCtx, ackCancel := ctx5()
		defer ackCancel()
		return m.DoubleAck(ackCtx)
	},

	"platform_kv_write": func(s *scenario) error {
		a, err := admin(s)
		if err != nil {
			return err
		}
		apiPrefix := "$JS." + env.tenant + ".API"
		js, err := jetstream.NewWithAPIPrefix(a, apiPrefix)
		if err != nil {
			return err
		}
		ctx, cancel := ctx5()
		defer cancel()
		s.Step("admin binds KV " + env.kv + " with API prefix " + apiPrefix)
		akv, err := js.KeyValue(ctx, env.kv)
		if err != nil {
			return err
		}
		key := "plat." + env.run
		s.Step("admin put")
		if _, err := akv.Put(ctx, key, []byte("from-admin")); err != nil {
			return err
		}
		_, ejs, err := edgeJS(s)
		if err != nil {
			return err
		}
		ekv, err := bindKV(s, ejs)
		if err != nil {
			return err
		}
		s.Step("edge get")
		e, err := ekv.Get(ctx, key)
		if err != nil {
			return err
		}
		return check(string(e.Value()) == "from-admin", "edge read %q", e.Value())
	},
}

// promptConnect: Connect returns within a second on a local link; taking the client's whole
// connect timeout (nats.DefaultTimeout) means it waited for something the server never sent.
func promptConnect(took time.Duration) error {
	if took > time.Second {
		return fail("Connect took %s (nats.go waits up to its %s connect timeout for the INFO a 2.12+ server sends after the first PONG)", took.Round(time.Millisecond), nats.DefaultTimeout)
	}
	return nil
}

// discover sends one $SRV request and gathers the names of every service that answers within 1 s.
func discover(nc *nats.Conn, subject string) ([]string, error) {
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, err
	}
	var names []string
	deadline := time.Now().Add(time.Second)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if errors.Is(err, nats.ErrTimeout) {
			return names, nil
		}
		if err != nil {
			return names, err
		}
		var id micro.ServiceIdentity
		if err := json.Unmarshal(m.Data, &id); err != nil {
			return names, fmt.Errorf("%s answer is not a service identity: %q", subject, m.Data)
		}
		names = append(names, id.Name)
	}
}

func main() {
	loadEnv()
	var ordered []string
	for _, id := range allScenarios {
		if (env.scenarios == nil || env.scenarios[id]) && id != "reconnect" {
			ordered = append(ordered, id)
		}
	}
	// reconnect restarts the gateway under every connection: last.
	if env.scenarios == nil || env.scenarios["reconnect"] {
		ordered = append(ordered, "reconnect")
	}
	for _, id := range ordered {
		runOne(id, scenarios[id])
	}
	os.Exit(0)
}
