package cardnet

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Framing: each message on the wire is preceded by its length in bytes, a
// 2-byte big-endian binary header, so a message is at most 65535 bytes.
const (
	headerLen = 2
	maxFrame  = 1<<16 - 1
)

// DefaultMaxMessageSize is the largest message the Server accepts unless
// configured otherwise. Real 1987 messages are a few hundred bytes; a header
// announcing more is taken for garbage.
const DefaultMaxMessageSize = 8192

// errFrameTooLarge reports a length header above the configured maximum.
type errFrameTooLarge struct{ n, max int }

func (e errFrameTooLarge) Error() string {
	return fmt.Sprintf("length header announces %d bytes, more than the %d accepted", e.n, e.max)
}

// readFrame reads one frame from r and returns its body, in buf when it is
// large enough. A zero-length frame returns an empty body.
func readFrame(r io.Reader, buf []byte, limit int) ([]byte, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(h[:]))
	if n > limit {
		return nil, errFrameTooLarge{n, limit}
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// frame returns body preceded by its length header.
func frame(body []byte) ([]byte, error) {
	if len(body) > maxFrame {
		return nil, fmt.Errorf("message of %d bytes does not fit a 2-byte length header", len(body))
	}
	out := make([]byte, headerLen+len(body))
	binary.BigEndian.PutUint16(out, uint16(len(body)))
	copy(out[headerLen:], body)
	return out, nil
}
