package ledger

import (
	"context"
	"time"

	"github.com/corebank/corebank/rpc"
)

// Name is the ledger's service name on the RPC router.
const Name = "ledger"

// Method names, as they appear on the wire: POST /rpc/ledger/{method}.
const (
	MethodCreateAccount = "create_account"
	MethodCloseAccount  = "close_account"
	MethodGetAccount    = "get_account"
	MethodTransfer      = "transfer"
	MethodPlaceHold     = "place_hold"
	MethodIncrementHold = "increment_hold"
	MethodPostHold      = "post_hold"
	MethodVoidHold      = "void_hold"
	MethodGetHold       = "get_hold"
	MethodExpireHolds   = "expire_holds"
	MethodBalance       = "balance"
	MethodHistory       = "history"
	MethodGetTransfer   = "get_transfer"
)

// IDRequest names one object by id.
type IDRequest struct {
	ID string `json:"id"`
}

// BalanceRequest asks for an account's balance, now or as of a past time.
type BalanceRequest struct {
	AccountID string    `json:"account_id"`
	AsOf      time.Time `json:"as_of,omitzero"`
}

// ExpireHoldsRequest asks to release holds due at AsOf.
type ExpireHoldsRequest struct {
	AsOf  time.Time `json:"as_of"`
	Limit int       `json:"limit"`
}

// ExpireHoldsResponse lists the holds released.
type ExpireHoldsResponse struct {
	Holds []Hold `json:"holds"`
}

// Register serves s's methods on r under the service name "ledger".
func Register(r *rpc.Router, s Service) {
	rpc.Handle(r, Name, MethodCreateAccount, s.CreateAccount)
	rpc.Handle(r, Name, MethodCloseAccount, s.CloseAccount)
	rpc.Handle(r, Name, MethodGetAccount, func(ctx context.Context, req IDRequest) (*Account, error) { return s.GetAccount(ctx, req.ID) })
	rpc.Handle(r, Name, MethodTransfer, s.Transfer)
	rpc.Handle(r, Name, MethodPlaceHold, s.PlaceHold)
	rpc.Handle(r, Name, MethodIncrementHold, s.IncrementHold)
	rpc.Handle(r, Name, MethodPostHold, s.PostHold)
	rpc.Handle(r, Name, MethodVoidHold, s.VoidHold)
	rpc.Handle(r, Name, MethodGetHold, func(ctx context.Context, req IDRequest) (*Hold, error) { return s.GetHold(ctx, req.ID) })
	rpc.Handle(r, Name, MethodExpireHolds, func(ctx context.Context, req ExpireHoldsRequest) (*ExpireHoldsResponse, error) {
		hs, err := s.ExpireHolds(ctx, req.AsOf, req.Limit)
		if err != nil {
			return nil, err
		}
		return &ExpireHoldsResponse{Holds: hs}, nil
	})
	rpc.Handle(r, Name, MethodBalance, func(ctx context.Context, req BalanceRequest) (*Balance, error) {
		return s.Balance(ctx, req.AccountID, req.AsOf)
	})
	rpc.Handle(r, Name, MethodHistory, s.History)
	rpc.Handle(r, Name, MethodGetTransfer, func(ctx context.Context, req IDRequest) (*Transfer, error) { return s.GetTransfer(ctx, req.ID) })
}

// Client is the ledger as seen through an RPC Service: in process or over
// HTTP, callers cannot tell.
type Client struct {
	RPC rpc.Service
}

var _ Service = (*Client)(nil)

func call[Resp any](ctx context.Context, c *Client, method string, req any) (*Resp, error) {
	return rpc.Call[Resp](ctx, c.RPC, Name, method, req)
}

// CreateAccount implements Service.
func (c *Client) CreateAccount(ctx context.Context, req CreateAccountRequest) (*Account, error) {
	return call[Account](ctx, c, MethodCreateAccount, req)
}

// CloseAccount implements Service.
func (c *Client) CloseAccount(ctx context.Context, req CloseAccountRequest) (*Account, error) {
	return call[Account](ctx, c, MethodCloseAccount, req)
}

// GetAccount implements Service.
func (c *Client) GetAccount(ctx context.Context, id string) (*Account, error) {
	return call[Account](ctx, c, MethodGetAccount, IDRequest{ID: id})
}

// Transfer implements Service.
func (c *Client) Transfer(ctx context.Context, req TransferRequest) (*Transfer, error) {
	return call[Transfer](ctx, c, MethodTransfer, req)
}

// PlaceHold implements Service.
func (c *Client) PlaceHold(ctx context.Context, req PlaceHoldRequest) (*Hold, error) {
	return call[Hold](ctx, c, MethodPlaceHold, req)
}

// IncrementHold implements Service.
func (c *Client) IncrementHold(ctx context.Context, req IncrementHoldRequest) (*Hold, error) {
	return call[Hold](ctx, c, MethodIncrementHold, req)
}

// PostHold implements Service.
func (c *Client) PostHold(ctx context.Context, req PostHoldRequest) (*Hold, error) {
	return call[Hold](ctx, c, MethodPostHold, req)
}

// VoidHold implements Service.
func (c *Client) VoidHold(ctx context.Context, req VoidHoldRequest) (*Hold, error) {
	return call[Hold](ctx, c, MethodVoidHold, req)
}

// GetHold implements Service.
func (c *Client) GetHold(ctx context.Context, id string) (*Hold, error) {
	return call[Hold](ctx, c, MethodGetHold, IDRequest{ID: id})
}

// ExpireHolds implements Service.
func (c *Client) ExpireHolds(ctx context.Context, asOf time.Time, limit int) ([]Hold, error) {
	r, err := call[ExpireHoldsResponse](ctx, c, MethodExpireHolds, ExpireHoldsRequest{AsOf: asOf, Limit: limit})
	if err != nil {
		return nil, err
	}
	return r.Holds, nil
}

// Balance implements Service.
func (c *Client) Balance(ctx context.Context, accountID string, asOf time.Time) (*Balance, error) {
	return call[Balance](ctx, c, MethodBalance, BalanceRequest{AccountID: accountID, AsOf: asOf})
}

// History implements Service.
func (c *Client) History(ctx context.Context, req HistoryRequest) (*HistoryPage, error) {
	return call[HistoryPage](ctx, c, MethodHistory, req)
}

// GetTransfer implements Service.
func (c *Client) GetTransfer(ctx context.Context, id string) (*Transfer, error) {
	return call[Transfer](ctx, c, MethodGetTransfer, IDRequest{ID: id})
}
