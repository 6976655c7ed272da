// Command corebank is the one binary of corebank: it runs the demo bank,
// single services, the card-network simulator, benchmarks and migrations.
//
//	corebank demo            every service in one process (embedded shape)
//	corebank bench ledger    measure the ledger's durable write throughput
//
// Every flag can also be set through the environment: --postgres-url is
// COREBANK_POSTGRES_URL. Flags win over the environment.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"demo", "run every service in one process on SQLite and embedded NATS", runDemo},
		{"serve", "run one service over HTTP (scale-out shape): serve --service ledger", runServe},
		{"simulate", "drive a gateway as the card network and write a clearing file", runSimulate},
		{"clearing", "settle a clearing file on a running corebank: clearing ingest --file F", runClearing},
		{"bench", "measure throughput and latency (bench ledger, bench auth)", runBench},
	}
}

func main() {
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(os.Stderr, "corebank:", err)
		}
		os.Exit(1)
	}
}

// signalContext is cancelled by Ctrl-C (SIGINT) or SIGTERM: the signal to
// drain and stop.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return fmt.Errorf("no command given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: corebank <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'corebank <command> -h' for a command's flags. Every flag may also be set as COREBANK_<FLAG> in the environment.")
}

// parse parses args into fs, then sets each flag not given on the command
// line from its COREBANK_* environment variable, if set: flags win over the
// environment. The flags named in cmdLineOnly are never taken from the
// environment: a benchmark's store or target, which in a bank's
// environment name the bank's own books.
func parse(fs *flag.FlagSet, args []string, cmdLineOnly ...string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		// The flag package stops at the first word that is not a flag:
		// every flag after it would be ignored ("--log-json false
		// --store postgres" would run on SQLite).
		return fmt.Errorf("unexpected argument %q: the flags after it would be ignored (a bool flag is set with --flag=false)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil || slices.Contains(cmdLineOnly, f.Name) {
			return
		}
		env := "COREBANK_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}
