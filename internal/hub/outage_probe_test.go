package hub

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"channels/internal/verto"
)

// hangingGateway answers anything but a directory lookup, and holds a
// lookup until its context ends (a database behind a black-holed network).
type hangingGateway struct{}

func (hangingGateway) Respond(ctx context.Context, f url.Values) []byte {
	b, _ := hangingGateway{}.RespondErr(ctx, f)
	return b
}

func (hangingGateway) RespondErr(ctx context.Context, f url.Values) ([]byte, error) {
	if f.Get("section") != "directory" {
		return []byte("ok"), nil
	}
	<-ctx.Done()
	return []byte(notFoundDoc), errors.New("lookup: " + ctx.Err().Error())
}

// TestKnownOutageProbeWithinWait: while the gateway is known to fail, a
// login whose turn it is to probe it waits no longer than LoginWait (not
// the whole GatewayTimeout), so the browser hears "try again" before its
// own login timeout gives up on the answer.
func TestKnownOutageProbeWithinWait(t *testing.T) {
	h := New(Options{Gateway: hangingGateway{}, Domain: "example.com", GatewayTimeout: 4 * time.Second, LoginWait: time.Second})
	th := serveHub(t, h, nil)
	h.outage.failed(time.Now().Add(-probeEvery)) // known down, its next probe due now
	c := dial(t, th, "x", nil)
	start := time.Now()
	c.send(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"x","passwd":"pw","sessid":"s"}}`)
	f, ok := c.next(10 * time.Second)
	took := time.Since(start)
	if !ok {
		t.Fatal("no answer to the login")
	}
	if want := strconv.Itoa(verto.CodeUnavailable); !strings.Contains(string(f.data), want) {
		t.Errorf("login answered %s, want the error %s", f.data, want)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("login answered after %v; want about LoginWait (1 s), not GatewayTimeout (4 s)", took.Round(time.Millisecond))
	}
}
