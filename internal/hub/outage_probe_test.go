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

// hangingGateway holds every request, lookups and reports alike, until
// its context ends (a database behind a black-holed network).
type hangingGateway struct{}

func (hangingGateway) Respond(ctx context.Context, f url.Values) []byte {
	b, _ := hangingGateway{}.RespondErr(ctx, f)
	return b
}

func (hangingGateway) RespondErr(ctx context.Context, f url.Values) ([]byte, error) {
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

// TestShutdownAbandonsHangingReports: reports queued for a gateway that
// hangs (a database behind a black-holed network) do not hold the
// shutdown past its context: the one under way is cancelled, the rest
// dropped and counted.
func TestShutdownAbandonsHangingReports(t *testing.T) {
	h := New(Options{Gateway: hangingGateway{}, Domain: "example.com", GatewayTimeout: 4 * time.Second, ReportWorkers: 2})
	serveHub(t, h, nil)
	for i := range 40 { // 20 per worker, 4 s each: 80 s to make them all
		h.disconnectReport("u"+strconv.Itoa(i)+"@example.com", "192.0.2.1:1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	returned := make(chan error, 1)
	go func() { returned <- h.Shutdown(ctx) }()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown still running 5 s after its 1 s context")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Shutdown took %v with a 1 s context", took.Round(time.Millisecond))
	}
	if n := h.reports.dropped.Load(); n < 30 {
		t.Errorf("%d reports dropped; want most of the 40 queued", n)
	}
}
