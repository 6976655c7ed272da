package nats

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/corebank/corebank/internal/filelock"
	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures a NATS server run inside the corebank process.
type EmbeddedConfig struct {
	// Dir is the JetStream store directory. Required: events must outlive
	// the process.
	Dir string
	// Host is the interface the client port listens on when Port is set
	// ("127.0.0.1" if empty).
	Host string
	// Port is the client port: 0 opens none, so only ConnectEmbedded reaches
	// the server; -1 picks a free port; anything else is that port.
	Port int
	// Log receives the server's notices, warnings and errors. Nil discards.
	Log *slog.Logger
}

// Server is a NATS server with JetStream running in this process.
type Server struct {
	ns        *server.Server
	listening bool
	lock      *os.File // the store directory's lock, held while the server runs
}

// Embedded starts a NATS server with JetStream in this process, storing
// streams in cfg.Dir and fsyncing every write before acknowledging it.
// Call Shutdown to stop it.
func Embedded(cfg EmbeddedConfig) (*Server, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("nats: embedded server needs a store directory")
	}
	// Two servers on one store would overwrite each other's stream files
	// and lose acknowledged events.
	lock, err := filelock.Lock(filepath.Join(cfg.Dir, "corebank.lock"))
	if err != nil {
		return nil, fmt.Errorf("nats: embedded server: store %s is in use (another corebank process on the same --data?): %w", cfg.Dir, err)
	}
	ok := false
	defer func() {
		if !ok && lock != nil {
			lock.Close()
		}
	}()
	opts := &server.Options{
		ServerName: "corebank",
		JetStream:  true,
		StoreDir:   cfg.Dir,
		// Acknowledge a write only once it is on disk; see the package doc.
		SyncAlways: true,
		DontListen: cfg.Port == 0,
		Host:       cfg.Host,
		Port:       cfg.Port,
		NoSigs:     true,
		NoLog:      cfg.Log == nil,
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: embedded server: %w", err)
	}
	if cfg.Log != nil {
		ns.SetLogger(serverLog{cfg.Log}, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats: embedded server not ready after 30s")
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, fmt.Errorf("nats: embedded server started without JetStream (store %s)", cfg.Dir)
	}
	ok = true
	return &Server{ns: ns, listening: !opts.DontListen, lock: lock}, nil
}

// ClientURL returns the URL other processes connect to, or "" if the server
// opened no client port.
func (s *Server) ClientURL() string {
	if !s.listening {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until it has stopped. Streams stay in
// the store directory for the next start.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	if s.lock != nil {
		s.lock.Close() // the store is free for the next server
	}
}

// serverLog forwards the server's log to slog.
type serverLog struct{ l *slog.Logger }

func (s serverLog) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s serverLog) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLog) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLog) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLog) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLog) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
