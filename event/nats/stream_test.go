package nats_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corebank/corebank/event/nats"
)

// cluster3 starts a three-node JetStream cluster in this process and
// returns its client URLs, once it has a meta leader.
func cluster3(t *testing.T) string {
	t.Helper()
	ports := make([]int, 3)
	var routes []string
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	var servers []*server.Server
	var urls []string
	for i := range ports {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), SyncAlways: true, NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "corebank", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatal("a cluster node is not ready")
		}
		urls = append(urls, s.ClientURL())
	}
	waitFor(t, 30*time.Second, "a JetStream meta leader", func() bool {
		return slices.ContainsFunc(servers, (*server.Server).JetStreamIsLeader)
	})
	return strings.Join(urls, ",")
}

// A service starting with the defaults (one replica, the default duplicate
// window) against a stream an operator set up keeps what the operator set:
// three replicas, a longer window, their own subjects and limits. What a
// stream lacks (a subject, replicas, window) is added; a new one is created
// as asked.
func TestEnsureStreamKeepsAnOperatorsStream(t *testing.T) {
	url := cluster3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	operators := jetstream.StreamConfig{
		Name: nats.DefaultStream, Subjects: append(nats.DefaultSubjects(), "ops.>"),
		Storage: jetstream.FileStorage, Replicas: 3, Duplicates: 10 * time.Minute, MaxMsgs: 5_000_000,
	}
	// The meta leader may still be settling in: try for a while.
	for {
		if _, err = js.CreateStream(ctx, operators); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the operator's stream: %v", err)
	}
	c, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	config := func(name string) jetstream.StreamConfig {
		t.Helper()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config
	}

	if err := c.EnsureStream(ctx, nats.DefaultStream, nats.DefaultSubjects(), 1); err != nil {
		t.Fatal(err)
	}
	got := config(nats.DefaultStream)
	if got.Replicas != 3 || got.Duplicates != 10*time.Minute || got.MaxMsgs != 5_000_000 || !slices.Contains(got.Subjects, "ops.>") {
		t.Errorf("after EnsureStream with the defaults: replicas %d, duplicates %v, max msgs %d, subjects %v; want the operator's 3, 10m, 5000000 and ops.> kept",
			got.Replicas, got.Duplicates, got.MaxMsgs, got.Subjects)
	}

	// A stream short of what is asked is raised to it.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SHORT", Subjects: []string{"short.a"}, Replicas: 1, Duplicates: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureStream(ctx, "SHORT", []string{"short.a", "short.b"}, 3); err != nil {
		t.Fatal(err)
	}
	got = config("SHORT")
	if got.Replicas != 3 || got.Duplicates != nats.DuplicateWindow || !slices.Equal(got.Subjects, []string{"short.a", "short.b"}) {
		t.Errorf("raised stream: replicas %d, duplicates %v, subjects %v; want 3, %v, [short.a short.b]", got.Replicas, got.Duplicates, got.Subjects, nats.DuplicateWindow)
	}

	// Subjects an operator wrote otherwise (ov.*.* for ov.>) are kept,
	// not added to (the server refuses overlapping subjects), and the
	// window stays within what the stream keeps.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OVERLAP", Subjects: []string{"ov.*.*", "ow.*.*"}, MaxAge: time.Minute, Duplicates: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureStream(ctx, "OVERLAP", []string{"ov.>", "ow.>", "ox.>"}, 1); err != nil {
		t.Fatalf("EnsureStream on a stream whose subjects overlap ours: %v", err)
	}
	got = config("OVERLAP")
	if !slices.Equal(got.Subjects, []string{"ov.*.*", "ow.*.*", "ox.>"}) || got.Duplicates != time.Minute || got.MaxAge != time.Minute {
		t.Errorf("overlapping stream: subjects %v, duplicates %v, max age %v; want ov.*.* ow.*.* ox.>, 1m, 1m", got.Subjects, got.Duplicates, got.MaxAge)
	}

	// A new stream is created as asked.
	if err := c.EnsureStream(ctx, "FRESH", []string{"fresh.>"}, 3); err != nil {
		t.Fatal(err)
	}
	got = config("FRESH")
	if got.Replicas != 3 || got.Duplicates != nats.DuplicateWindow || got.Storage != jetstream.FileStorage || !slices.Equal(got.Subjects, []string{"fresh.>"}) {
		t.Errorf("new stream: %+v", got)
	}
}
