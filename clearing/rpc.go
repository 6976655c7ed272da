package clearing

import (
	"context"

	"github.com/corebank/corebank/rpc"
)

// Name is the clearing service's name on the RPC router.
const Name = "clearing"

// Method names, as they appear on the wire: POST /rpc/clearing/{method}.
const (
	MethodIngest      = "ingest"
	MethodGetFile     = "get_file"
	MethodListRecords = "list_records"
)

// FileRequest names one file by id.
type FileRequest struct {
	ID string `json:"id"`
}

// Register serves s's methods on r under the service name "clearing".
func Register(r *rpc.Router, s Service) {
	rpc.Handle(r, Name, MethodIngest, s.Ingest)
	rpc.Handle(r, Name, MethodGetFile, func(ctx context.Context, req FileRequest) (*File, error) { return s.GetFile(ctx, req.ID) })
	rpc.Handle(r, Name, MethodListRecords, s.ListRecords)
}

// Client is the clearing service as seen through an RPC Service: in
// process or over HTTP, callers cannot tell. An IngestRequest carries full
// card numbers in the file: use it only over a protected transport.
type Client struct {
	RPC rpc.Service
}

var _ Service = (*Client)(nil)

// Ingest implements Service.
func (c *Client) Ingest(ctx context.Context, req IngestRequest) (*Report, error) {
	return rpc.Call[Report](ctx, c.RPC, Name, MethodIngest, req)
}

// GetFile implements Service.
func (c *Client) GetFile(ctx context.Context, id string) (*File, error) {
	return rpc.Call[File](ctx, c.RPC, Name, MethodGetFile, FileRequest{ID: id})
}

// ListRecords implements Service.
func (c *Client) ListRecords(ctx context.Context, req ListRecordsRequest) (*RecordPage, error) {
	return rpc.Call[RecordPage](ctx, c.RPC, Name, MethodListRecords, req)
}
