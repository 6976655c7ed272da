package obs_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/corebank/corebank/obs"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsHandlerServesRegistry(t *testing.T) {
	reg := obs.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: obs.Namespace, Name: "test_things_total", Help: "Things.",
	})
	reg.MustRegister(c)
	c.Add(3)

	srv := httptest.NewServer(obs.MetricsHandler(reg))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	for _, want := range []string{
		"corebank_test_things_total 3",
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics output lacks %q", want)
		}
	}
}

func TestNewRegistryIsFresh(t *testing.T) {
	// Two registries must not share state: registering the same metric in
	// both succeeds, which it would not in a global registry.
	for range 2 {
		reg := obs.NewRegistry()
		if err := reg.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "corebank_once_total", Help: "x"})); err != nil {
			t.Fatalf("register in new registry: %v", err)
		}
	}
}
