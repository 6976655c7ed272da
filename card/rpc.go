package card

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/corebank/corebank/rpc"
)

// Name is the card service's name on the RPC router.
const Name = "card"

// Method names, as they appear on the wire: POST /rpc/card/{method}. The
// write methods' names are also what their idempotency keys are recorded
// under.
const (
	MethodIssue            = "issue"
	MethodGet              = "get"
	MethodList             = "list"
	MethodLookup           = "lookup"
	MethodVerifyCVC        = "verify_cvc"
	MethodCountFailedCheck = "count_failed_check"
	MethodReveal           = "reveal"
	MethodFreeze           = "freeze"
	MethodUnfreeze         = "unfreeze"
	MethodBlock            = "block"
	MethodClose            = "close"
	MethodSetControls      = "set_controls"
)

// IDRequest names one card by id.
type IDRequest struct {
	ID string `json:"id"`
}

// ListRequest asks for a customer's cards.
type ListRequest struct {
	CustomerID string `json:"customer_id"`
}

// ListResponse is a customer's cards.
type ListResponse struct {
	Cards []Card `json:"cards"`
}

// LookupRequest carries a full card number to Lookup. fmt and log/slog
// print it masked; JSON, for the wire, carries it whole.
type LookupRequest struct {
	PAN string `json:"pan"`
}

// Format prints r with its number masked, whatever the verb.
func (r LookupRequest) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "{PAN:%s}", Mask(r.PAN)) }

// LogValue logs r with its number masked.
func (r LookupRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("pan", Mask(r.PAN)))
}

// VerifyCVCRequest carries a CVC to check against a card. fmt and log/slog
// leave the CVC out.
type VerifyCVCRequest struct {
	CardID string `json:"card_id"`
	CVC    string `json:"cvc"`
}

// Format prints r without its CVC, whatever the verb.
func (r VerifyCVCRequest) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "{CardID:%s CVC:***}", r.CardID)
}

// LogValue logs r without its CVC.
func (r VerifyCVCRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("card_id", r.CardID), slog.String("cvc", "***"))
}

// CVCResult is VerifyCVC's answer.
type CVCResult struct {
	Match bool `json:"match"`
}

// Register serves s's methods on r under the service name "card".
func Register(r *rpc.Router, s Service) {
	rpc.Handle(r, Name, MethodIssue, s.Issue)
	rpc.Handle(r, Name, MethodGet, func(ctx context.Context, req IDRequest) (*Card, error) { return s.Get(ctx, req.ID) })
	rpc.Handle(r, Name, MethodList, func(ctx context.Context, req ListRequest) (*ListResponse, error) {
		cs, err := s.List(ctx, req.CustomerID)
		if err != nil {
			return nil, err
		}
		return &ListResponse{Cards: cs}, nil
	})
	rpc.Handle(r, Name, MethodLookup, func(ctx context.Context, req LookupRequest) (*Card, error) { return s.Lookup(ctx, req.PAN) })
	rpc.Handle(r, Name, MethodVerifyCVC, func(ctx context.Context, req VerifyCVCRequest) (*CVCResult, error) {
		ok, err := s.VerifyCVC(ctx, req.CardID, req.CVC)
		if err != nil {
			return nil, err
		}
		return &CVCResult{Match: ok}, nil
	})
	rpc.Handle(r, Name, MethodCountFailedCheck, func(ctx context.Context, req IDRequest) (*struct{}, error) {
		if err := s.CountFailedCheck(ctx, req.ID); err != nil {
			return nil, err
		}
		return &struct{}{}, nil
	})
	rpc.Handle(r, Name, MethodReveal, s.Reveal)
	rpc.Handle(r, Name, MethodFreeze, s.Freeze)
	rpc.Handle(r, Name, MethodUnfreeze, s.Unfreeze)
	rpc.Handle(r, Name, MethodBlock, s.Block)
	rpc.Handle(r, Name, MethodClose, s.Close)
	rpc.Handle(r, Name, MethodSetControls, s.SetControls)
}

// Client is the card service as seen through an RPC Service: in process or
// over HTTP, callers cannot tell.
type Client struct {
	RPC rpc.Service
}

var _ Service = (*Client)(nil)

func call[Resp any](ctx context.Context, c *Client, method string, req any) (*Resp, error) {
	return rpc.Call[Resp](ctx, c.RPC, Name, method, req)
}

// Issue implements Service.
func (c *Client) Issue(ctx context.Context, req IssueRequest) (*Card, error) {
	return call[Card](ctx, c, MethodIssue, req)
}

// Get implements Service.
func (c *Client) Get(ctx context.Context, id string) (*Card, error) {
	return call[Card](ctx, c, MethodGet, IDRequest{ID: id})
}

// List implements Service.
func (c *Client) List(ctx context.Context, customerID string) ([]Card, error) {
	r, err := call[ListResponse](ctx, c, MethodList, ListRequest{CustomerID: customerID})
	if err != nil {
		return nil, err
	}
	return r.Cards, nil
}

// Lookup implements Service.
func (c *Client) Lookup(ctx context.Context, pan string) (*Card, error) {
	return call[Card](ctx, c, MethodLookup, LookupRequest{PAN: pan})
}

// VerifyCVC implements Service.
func (c *Client) VerifyCVC(ctx context.Context, cardID, cvc string) (bool, error) {
	r, err := call[CVCResult](ctx, c, MethodVerifyCVC, VerifyCVCRequest{CardID: cardID, CVC: cvc})
	if err != nil {
		return false, err
	}
	return r.Match, nil
}

// CountFailedCheck implements Service.
func (c *Client) CountFailedCheck(ctx context.Context, cardID string) error {
	_, err := call[struct{}](ctx, c, MethodCountFailedCheck, IDRequest{ID: cardID})
	return err
}

// Reveal implements Service.
func (c *Client) Reveal(ctx context.Context, req RevealRequest) (*Details, error) {
	return call[Details](ctx, c, MethodReveal, req)
}

// Freeze implements Service.
func (c *Client) Freeze(ctx context.Context, req StateRequest) (*Card, error) {
	return call[Card](ctx, c, MethodFreeze, req)
}

// Unfreeze implements Service.
func (c *Client) Unfreeze(ctx context.Context, req StateRequest) (*Card, error) {
	return call[Card](ctx, c, MethodUnfreeze, req)
}

// Block implements Service.
func (c *Client) Block(ctx context.Context, req BlockRequest) (*Card, error) {
	return call[Card](ctx, c, MethodBlock, req)
}

// Close implements Service.
func (c *Client) Close(ctx context.Context, req StateRequest) (*Card, error) {
	return call[Card](ctx, c, MethodClose, req)
}

// SetControls implements Service.
func (c *Client) SetControls(ctx context.Context, req SetControlsRequest) (*Card, error) {
	return call[Card](ctx, c, MethodSetControls, req)
}
