package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/rpc"
)

// runClearing operates the clearing service of a running corebank (the
// demo) over its HTTP RPC, as the back office (caller "operator"; with
// --tls-*, a certificate naming it).
func runClearing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "ingest" {
		return fmt.Errorf("clearing: which? (ingest)")
	}
	fs := flag.NewFlagSet("clearing ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		file    = fs.String("file", "", "the clearing file (format: docs/clearing.md), e.g. what corebank simulate --clearing-out wrote")
		url     = fs.String("url", "http://127.0.0.1:8080", "the running corebank's HTTP address")
		timeout = fs.Duration("timeout", 30*time.Minute, "how long the file may take to be applied (the service stops there too; running the command again completes it)")
		tc      config
	)
	tc.tlsFlags(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("clearing ingest: --file is required")
	}
	content, err := os.ReadFile(*file)
	if err != nil {
		return fmt.Errorf("clearing ingest: %w", err)
	}
	_, clientTLS, err := tc.tlsConfigs()
	if err != nil {
		return fmt.Errorf("clearing ingest: %w", err)
	}
	if err := checkClient(clientTLS, "the back office", callerOperator, map[string]string{"url": *url}); err != nil {
		return fmt.Errorf("clearing ingest: %w", err)
	}
	ctx, cancel := context.WithTimeout(rpc.WithCaller(ctx, callerOperator), *timeout)
	defer cancel()
	c := &clearing.Client{RPC: rpc.NewHTTPClient(*url, rpc.HTTPClient(clientTLS))}
	report, err := c.Ingest(ctx, clearing.IngestRequest{FileName: filepath.Base(*file), Content: content})
	if err != nil {
		return fmt.Errorf("clearing ingest: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}
