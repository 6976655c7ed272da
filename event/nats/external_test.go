package nats_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/event/nats"
	"github.com/corebank/corebank/internal/syncbuf"
)

// probeDir holds the configuration written to probe the server binary.
var probeDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if probeDir != "" {
		os.RemoveAll(probeDir)
	}
	os.Exit(code)
}

// serverBinary finds a nats-server that can fsync every write: $NATS_SERVER,
// else nats-server on PATH or in /usr/sbin. A server older than 2.10 does
// not know sync_interval (Debian 12 ships 2.9.10); then the version go.mod
// pins is built from the module cache, once per version into the user's
// cache directory, and used instead. Without any binary the test is
// skipped, or fails under CI.
var serverBinary = sync.OnceValues(func() (string, error) {
	bin := os.Getenv("NATS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("nats-server"); err != nil {
			bin = "/usr/sbin/nats-server"
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("no nats-server binary (set NATS_SERVER or install it): %w", err)
	}
	dir, err := os.MkdirTemp("", "corebank-nats-")
	if err != nil {
		return "", err
	}
	probeDir = dir
	conf := writeConfig(dir, filepath.Join(dir, "probe"), 4222)
	out, err := exec.Command(bin, "-t", "-c", conf).CombinedOutput()
	if err == nil {
		return bin, nil
	}
	if !strings.Contains(string(out), "sync_interval") {
		return "", fmt.Errorf("%s -t -c %s: %v: %s", bin, conf, err, out)
	}
	return buildServer(dir)
})

// buildServer builds the nats-server that go.mod pins and returns its path.
func buildServer(tmp string) (string, error) {
	const module = "github.com/nats-io/nats-server/v2"
	v, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	version := strings.TrimSpace(string(v))
	out := filepath.Join(tmp, "nats-server")
	if cache, err := os.UserCacheDir(); err == nil && version != "" {
		out = filepath.Join(cache, "corebank", "nats-server-"+version)
		if _, err := os.Stat(out); err == nil {
			return out, nil
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return "", err
		}
	}
	built := fmt.Sprintf("%s.%d.tmp", out, os.Getpid()) // renamed when complete
	if msg, err := exec.Command("go", "build", "-o", built, module).CombinedOutput(); err != nil {
		return "", fmt.Errorf("the installed nats-server cannot fsync every write, and building %s failed: %v: %s", module, err, msg)
	}
	if err := os.Rename(built, out); err != nil {
		return "", err
	}
	return out, nil
}

// writeConfig writes a server configuration with JetStream in storeDir
// fsyncing every write, and returns its path.
func writeConfig(dir, storeDir string, port int) string {
	path := filepath.Join(dir, fmt.Sprintf("nats-%d.conf", port))
	conf := fmt.Sprintf("listen: \"127.0.0.1:%d\"\njetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", port, storeDir)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		panic(err)
	}
	return path
}

// external is a nats-server process.
type external struct {
	bin, conf, url string
	cmd            *exec.Cmd
	exited         chan struct{}
	log            syncbuf.Buffer
}

// startExternal starts a nats-server process on a free port with its store
// in a temporary directory; it is killed when the test ends.
func startExternal(t *testing.T) *external {
	t.Helper()
	bin, err := serverBinary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Logf("nats-server binary: %s", bin)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	s := &external{bin: bin, conf: writeConfig(dir, filepath.Join(dir, "store"), port), url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	s.start(t)
	t.Cleanup(func() { s.kill(t) })
	return s
}

// start runs the server and waits until it accepts connections.
func (s *external) start(t *testing.T) {
	t.Helper()
	s.log.Reset()
	s.cmd = exec.Command(s.bin, "-c", s.conf)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	// Ready means a NATS handshake completes, not merely that a TCP dial
	// does: dialing a port of the ephemeral range before the server listens
	// can connect the socket to itself, and a server still starting may
	// reset a connection it accepted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := nats.Connect(s.url)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("nats-server exited: %s", s.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not listening after 10s: %s", s.log.String())
		}
	}
}

// kill sends SIGKILL: no shutdown, no flush.
func (s *external) kill(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Error(err)
	}
	<-s.exited
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	c, err := nats.Connect(url, quick)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestExternal(t *testing.T) {
	t.Run("outbox to consumer, once each, in order per key", func(t *testing.T) {
		t.Parallel()
		s := startExternal(t)
		c := connect(t, s.url)
		ensureStream(t, c)
		endToEnd(t, c, openSQLite(t, "ledger"))
	})

	t.Run("the broker drops a second publish of an id", func(t *testing.T) {
		t.Parallel()
		s := startExternal(t)
		c := connect(t, s.url)
		ensureStream(t, c)
		duplicates(t, c)
	})

	t.Run("acknowledged events survive kill -9", func(t *testing.T) {
		t.Parallel()
		s := startExternal(t)
		c, err := nats.Connect(s.url, quick)
		if err != nil {
			t.Fatal(err)
		}
		ensureStream(t, c)
		db := openSQLite(t, "ledger")
		p := newProducer(db)
		p.mustCommitRandom(t, 300, []string{"a", "b", "c"})
		if err := (&event.Relay{DB: db, Publisher: c}).Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := outboxRows(t, db); n != 0 {
			t.Fatalf("outbox holds %d rows after the acknowledged flush", n)
		}
		s.kill(t)
		c.Close()

		s.start(t)
		c = connect(t, s.url)
		f := newFeed(t)
		subscribeFeed(t, c, f)
		waitFor(t, 10*time.Second, "all 300 acknowledged events", func() bool { return f.appliedRows(t) == 300 })
		f.checkApplied(t, p.next)
	})
}
