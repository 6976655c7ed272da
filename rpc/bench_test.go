package rpc_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/rpc"
)

// benchRouter serves a handler that does no work and allocates nothing,
// so what is measured is the RPC layer alone.
func benchRouter() (rpc.Service, *greetReq) {
	r := rpc.NewRouter()
	result := &greetResp{Greeting: "hi"}
	rpc.Handle(r, "bench", "echo", func(ctx context.Context, req greetReq) (*greetResp, error) {
		return result, nil
	})
	return r.Service(), &greetReq{Name: "x"}
}

func TestInProcessCallDoesNotAllocate(t *testing.T) {
	s, req := benchRouter()
	ctx := rpc.WithCaller(context.Background(), "bench")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := rpc.Call[greetResp](ctx, s, "bench", "echo", req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("in-process Call allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkInProcessCall(b *testing.B) {
	s, req := benchRouter()
	ctx := rpc.WithCaller(context.Background(), "bench")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rpc.Call[greetResp](ctx, s, "bench", "echo", req); err != nil {
			b.Fatal(err)
		}
	}
}
