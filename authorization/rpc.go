package authorization

import (
	"context"

	"github.com/corebank/corebank/rpc"
)

// Name is the authorization service's name on the RPC router.
const Name = "authorization"

// Method names, as they appear on the wire: POST /rpc/authorization/{method}.
const (
	MethodAuthorize     = "authorize"
	MethodIncrement     = "increment"
	MethodAdvise        = "advise"
	MethodFinancial     = "financial"
	MethodReverse       = "reverse"
	MethodQueueReversal = "queue_reversal"
	MethodGet           = "get"
	MethodByNetworkID   = "by_network_id"
	MethodByReference   = "by_reference"
)

// IDRequest names one decision by id.
type IDRequest struct {
	ID string `json:"id"`
}

// Register serves s's methods on r under the service name "authorization".
func Register(r *rpc.Router, s Service) {
	rpc.Handle(r, Name, MethodAuthorize, s.Authorize)
	rpc.Handle(r, Name, MethodIncrement, s.Increment)
	rpc.Handle(r, Name, MethodAdvise, s.Advise)
	rpc.Handle(r, Name, MethodFinancial, s.Financial)
	rpc.Handle(r, Name, MethodReverse, s.Reverse)
	rpc.Handle(r, Name, MethodQueueReversal, func(ctx context.Context, req ReversalRequest) (*struct{}, error) {
		return &struct{}{}, s.QueueReversal(ctx, req)
	})
	rpc.Handle(r, Name, MethodGet, func(ctx context.Context, req IDRequest) (*Decision, error) { return s.Get(ctx, req.ID) })
	rpc.Handle(r, Name, MethodByNetworkID, s.ByNetworkID)
	rpc.Handle(r, Name, MethodByReference, s.ByReference)
}

// Client is the authorization service as seen through an RPC Service: in
// process or over HTTP, callers cannot tell. Requests carry the full card
// number and CVC in their JSON; use it only over a protected transport.
type Client struct {
	RPC rpc.Service
}

var _ Service = (*Client)(nil)

func call[Resp any](ctx context.Context, c *Client, method string, req any) (*Resp, error) {
	return rpc.Call[Resp](ctx, c.RPC, Name, method, req)
}

// Authorize implements Service.
func (c *Client) Authorize(ctx context.Context, req Request) (*Decision, error) {
	return call[Decision](ctx, c, MethodAuthorize, req)
}

// Increment implements Service.
func (c *Client) Increment(ctx context.Context, req Request) (*Decision, error) {
	return call[Decision](ctx, c, MethodIncrement, req)
}

// Advise implements Service.
func (c *Client) Advise(ctx context.Context, req Request) (*Decision, error) {
	return call[Decision](ctx, c, MethodAdvise, req)
}

// Financial implements Service.
func (c *Client) Financial(ctx context.Context, req Request) (*Decision, error) {
	return call[Decision](ctx, c, MethodFinancial, req)
}

// Reverse implements Service.
func (c *Client) Reverse(ctx context.Context, req ReversalRequest) (*Decision, error) {
	return call[Decision](ctx, c, MethodReverse, req)
}

// QueueReversal implements Service.
func (c *Client) QueueReversal(ctx context.Context, req ReversalRequest) error {
	_, err := call[struct{}](ctx, c, MethodQueueReversal, req)
	return err
}

// Get implements Service.
func (c *Client) Get(ctx context.Context, id string) (*Decision, error) {
	return call[Decision](ctx, c, MethodGet, IDRequest{ID: id})
}

// ByNetworkID implements Service.
func (c *Client) ByNetworkID(ctx context.Context, n NetworkID) (*Decision, error) {
	return call[Decision](ctx, c, MethodByNetworkID, n)
}

// ByReference implements Service.
func (c *Client) ByReference(ctx context.Context, q ReferenceQuery) (*Decision, error) {
	return call[Decision](ctx, c, MethodByReference, q)
}
