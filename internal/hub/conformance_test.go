package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/fixtures"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// Tolerances: the values of the recording that are random by nature, and
// how the replay accepts ours instead. Everything else must be equal.
const (
	// tolServerIDs: ids of requests the server sends (verto.clientReady,
	// verto.event, verto.info, verto.punt) come from a counter shared by all
	// connections; the replay checks their structure instead — the
	// recording's ids map one-to-one onto ours (so a message the recording
	// delivers with one id to two connections has one id here too) and each
	// connection sees them increase.
	tolServerIDs = "server request ids"
	// tolInventedSessid: the sessid the server makes up for a login without
	// one (step 32) must be a UUIDv4, used consistently afterwards.
	tolInventedSessid = "invented sessid"
	// tolCloseText: the recorder's close lines are Go error strings; only
	// who closed and the status code are compared.
	tolCloseText = "close text"
	// tolLookupHeaders: event headers of directory lookups that are random
	// or host-specific (Core-UUID, dates, sequence, the calling source line,
	// FreeSWITCH's IP addresses) are checked for shape, or may be absent.
	tolLookupHeaders = "lookup event headers"
	// tolReportAddress: report addresses are the client's ephemeral port.
	tolReportAddress = "report address"
)

// Deliberate differences: where the hub, on purpose, does not do what the
// recorded mod_verto did (docs/HUB.md, "Deliberate differences"). The
// replay rewrites the recording for each, named, and checks the hub's own
// behaviour there instead; everything around them is compared as recorded.
const (
	// diffRelayInChannel: a direct message from a client of another channel
	// (step 25, C → A) is not delivered; mod_verto relays to anyone.
	diffRelayInChannel = "relay within a channel"
	// diffSessionPerLogin: sessions are keyed by login and sessid, so
	// another user reusing A's sessid (step 30) logs in to a session of its
	// own instead of getting "Session in use"; mod_verto keys by sessid.
	diffSessionPerLogin = "sessions per login"
	// diffLastDisconnect: only a user's last live connection reports a
	// disconnect (A and A2 close while A3 is live; B2 while B is live);
	// mod_verto's hook reports every socket.
	diffLastDisconnect = "disconnect of the last connection"
)

const (
	recordedUserA  = "3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d"
	recordedUserB  = "5c4d3e2f-1a0b-4c9d-8e7f-6a5b4c3d2e1f"
	recordedSessA  = "a0000000-0000-4000-8000-00000000000a"
	readyIDForDiff = 1_000_030 // a recorded-side id for the clientReady step 30 now gets
)

// withDifferences rewrites the recorded frames for the deliberate
// differences.
func withDifferences(t *testing.T, frames []fixtures.Frame) []fixtures.Frame {
	t.Helper()
	var out []fixtures.Frame
	applied := map[string]bool{}
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f.Step, "25 ") && f.Conn == "A" && f.Dir == "recv":
			applied[diffRelayInChannel] = true
			continue // the cross-channel message never arrives
		case strings.HasPrefix(f.Step, "30 ") && f.Conn == "B2" && f.Dir == "recv":
			applied[diffSessionPerLogin] = true
			out = append(out,
				fixtures.Frame{Conn: "B2", Dir: "recv", Step: f.Step, JSON: json.RawMessage(
					`{"id":1,"jsonrpc":"2.0","result":{"message":"logged in","sessid":"` + recordedSessA + `"}}`)},
				fixtures.Frame{Conn: "B2", Dir: "recv", Step: f.Step, JSON: json.RawMessage(
					fmt.Sprintf(`{"id":%d,"jsonrpc":"2.0","method":"verto.clientReady","params":{"reattached_sessions":[]}}`, readyIDForDiff))})
			continue
		case f.Conn == "B2" && f.Dir == "close":
			f.Raw = "dropped by the replay (" + diffSessionPerLogin + ")" // B2 stays logged in
		}
		out = append(out, f)
	}
	for _, d := range []string{diffRelayInChannel, diffSessionPerLogin} {
		if !applied[d] {
			t.Fatalf("the recording no longer has the step %q rewrites", d)
		}
	}
	return out
}

// reportsWithDifferences rewrites the recorded reports: B2's login now
// succeeds and is reported, and the disconnects of connections that were
// not their user's last are not reported.
func reportsWithDifferences(t *testing.T, want []url.Values) []url.Values {
	t.Helper()
	drop := map[string]int{recordedUserA: 2, recordedUserB: 1} // A, A2; B2
	var out []url.Values
	var loginB url.Values
	for _, f := range want {
		if f.Get("action") == "verto_client_disconnect" {
			id, _, _ := strings.Cut(f.Get("login"), "@")
			if drop[id] > 0 {
				drop[id]--
				continue
			}
		}
		if f.Get("action") == "verto_client_login" && f.Get("login") == recordedUserB && f.Get("success") == "1" && loginB == nil {
			loginB = f
		}
		out = append(out, f)
	}
	if loginB == nil || drop[recordedUserA]+drop[recordedUserB] != 0 {
		t.Fatalf("the recorded reports no longer fit %q / %q", diffSessionPerLogin, diffLastDisconnect)
	}
	b2 := url.Values{}
	for k, v := range loginB {
		b2[k] = v
	}
	b2.Set("sessid", recordedSessA)
	return append(out, b2)
}

const recordedInventedSessid = "222c7466-57c5-444f-9248-0d945d1e8cd2"

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// replayState carries the tolerance mappings across the replay.
type replayState struct {
	idMap   map[string]string // recorded server id → ours
	idRev   map[string]string
	lastID  map[string]int64 // per connection, last server id seen
	sessMap map[string]string
}

// TestConformanceTranscript replays the recording against the hub with
// two kinds of gateway: the recorded /fsapi answers, and the real chain —
// the fsapi registry with the directory handlers over a real store (SQLite
// and PostgreSQL) seeded with the recorded clients and channels.
func TestConformanceTranscript(t *testing.T) {
	t.Run("recorded", func(t *testing.T) {
		gw := newRecordedGateway(t)
		replayTranscript(t, gw, gw.received)
	})
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			gw := &recordingGateway{next: realChain(t, b.Store)}
			replayTranscript(t, gw, gw.received)
		})
	}
}

// recordingGateway keeps the forms it passes on.
type recordingGateway struct {
	next  Gateway
	mu    sync.Mutex
	forms []url.Values
}

func (g *recordingGateway) Respond(ctx context.Context, form url.Values) []byte {
	g.mu.Lock()
	g.forms = append(g.forms, form)
	g.mu.Unlock()
	return g.next.Respond(ctx, form)
}

func (g *recordingGateway) received() []url.Values {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]url.Values(nil), g.forms...)
}

// realChain is the production gateway: an fsapi registry with the
// directory handlers, over st seeded with the recorded channels and clients.
func realChain(t *testing.T, st *store.Store) Gateway {
	t.Helper()
	ctx := context.Background()
	for _, id := range []string{fixtures.ChannelAB, fixtures.ChannelC} {
		if err := st.PutChannel(ctx, store.Channel{ID: id, Topic: "recorded", Public: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range fixtures.Users() {
		if err := st.PutClient(ctx, store.Client{ID: u.ID, Password: u.Password, ChannelID: u.Channel}); err != nil {
			t.Fatal(err)
		}
	}
	return directoryGateway(t, st)
}

func replayTranscript(t *testing.T, gw Gateway, received func() []url.Values) {
	th := startHub(t, gw, nil)
	events := withDifferences(t, fixtures.Transcript(t))

	st := &replayState{idMap: map[string]string{}, idRev: map[string]string{}, lastID: map[string]int64{}, sessMap: map[string]string{}}
	conns := map[string]*wsClient{}
	open := map[string]bool{}
	step := ""
	checkQuiet := func() {
		for name, c := range conns {
			if open[name] {
				c.quiet(30 * time.Millisecond)
			}
		}
	}
	for i, ev := range events {
		if ev.Step != "" && ev.Step != step {
			checkQuiet() // nothing the recording does not show arrived during the previous step
			step = ev.Step
		}
		where := fmt.Sprintf("event %d (%s, %s %s)", i, ev.Step, ev.Conn, ev.Dir)
		switch ev.Dir {
		case "open":
			conns[ev.Conn] = dial(t, th, ev.Conn, nil)
			open[ev.Conn] = true
		case "send":
			c := conns[ev.Conn]
			if ev.JSON != nil {
				c.send(ev.JSON)
			} else {
				c.send(ev.Raw)
			}
		case "recv":
			f, ok := conns[ev.Conn].next(5 * time.Second)
			if !ok {
				t.Fatalf("%s: expected %s, got nothing", where, ev.JSON)
			}
			if f.closed {
				t.Fatalf("%s: expected %s, connection closed (%v)", where, ev.JSON, f.status)
			}
			if err := st.compareFrame(ev.Conn, ev.JSON, f.data); err != nil {
				t.Fatalf("%s: %v\nwant %s\ngot  %s", where, err, ev.JSON, f.data)
			}
		case "close":
			c := conns[ev.Conn]
			if strings.Contains(ev.Raw, "websocket: close") { // closed by the server
				var want websocket.StatusCode
				if _, err := fmt.Sscanf(ev.Raw, "websocket: close %d", &want); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				f, ok := c.next(5 * time.Second)
				if !ok || !f.closed {
					t.Fatalf("%s: expected the server to close (%d) (%s), got %s", where, want, tolCloseText, f.data)
				}
				if f.status != want {
					t.Fatalf("%s: close status %v, want %v", where, f.status, want)
				}
			} else { // the recorder dropped its socket
				_ = c.ws.CloseNow()
			}
			open[ev.Conn] = false
		default:
			t.Fatalf("%s: unknown direction", where)
		}
	}
	checkQuiet()

	// Every connection closed: the reports must all be in, and every
	// request the recorded FreeSWITCH made to /fsapi for Verto must have been
	// made by the hub.
	want := reportsWithDifferences(t, recordedVertoRequests(t))
	deadline := time.Now().Add(5 * time.Second)
	for len(received()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	compareGatewayRequests(t, want, received())
}

// compareFrame compares one received frame with the recorded one.
func (st *replayState) compareFrame(conn string, want json.RawMessage, got []byte) error {
	w, err := decode(want)
	if err != nil {
		return err
	}
	g, err := decode(got)
	if err != nil {
		return fmt.Errorf("reply is not JSON: %v", err)
	}
	return st.compare(conn, "", w, g)
}

func (st *replayState) compare(conn, path string, want, got any) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want object, got %T", path, got)
		}
		if len(w) != len(g) {
			return fmt.Errorf("%s: members %v, want %v", path, keys(g), keys(w))
		}
		_, isRequest := w["method"]
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s: member %q missing", path, k)
			}
			if k == "id" && path == "" && isRequest {
				if err := st.serverID(conn, wv, gv); err != nil {
					return err
				}
				continue
			}
			if err := st.compare(conn, path+"."+k, wv, gv); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: want %d-item array, got %v", path, len(w), got)
		}
		for i := range w {
			if err := st.compare(conn, fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); err != nil {
				return err
			}
		}
		return nil
	case string:
		if w == recordedInventedSessid {
			gs, _ := got.(string)
			if !uuidV4.MatchString(gs) {
				return fmt.Errorf("%s: %q is not a UUIDv4 (%s)", path, gs, tolInventedSessid)
			}
			if prev, ok := st.sessMap[w]; ok && prev != gs {
				return fmt.Errorf("%s: invented sessid changed from %s to %s", path, prev, gs)
			}
			st.sessMap[w] = gs
			return nil
		}
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Errorf("%s: got %v, want %v", path, got, want)
	}
	return nil
}

// serverID applies tolServerIDs.
func (st *replayState) serverID(conn string, want, got any) error {
	wn, ok1 := want.(json.Number)
	gn, ok2 := got.(json.Number)
	if !ok1 || !ok2 {
		return fmt.Errorf("server request id: want a number, got %v", got)
	}
	g, err := gn.Int64()
	if err != nil || g <= 0 {
		return fmt.Errorf("server request id %v is not a positive integer", got)
	}
	if m, ok := st.idMap[wn.String()]; ok && m != gn.String() {
		return fmt.Errorf("recorded id %s was %s before, now %s (%s)", wn, m, gn, tolServerIDs)
	}
	if m, ok := st.idRev[gn.String()]; ok && m != wn.String() {
		return fmt.Errorf("id %s stands for recorded %s and %s (%s)", gn, m, wn, tolServerIDs)
	}
	st.idMap[wn.String()], st.idRev[gn.String()] = gn.String(), wn.String()
	if g <= st.lastID[conn] {
		return fmt.Errorf("server ids on %s do not increase: %d after %d", conn, g, st.lastID[conn])
	}
	st.lastID[conn] = g
	return nil
}

func keys(m map[string]any) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// recordedVertoRequests are the recorded /fsapi requests that Verto
// traffic caused (the configuration requests at FreeSWITCH start-up are not
// the hub's business).
func recordedVertoRequests(t *testing.T) []url.Values {
	var out []url.Values
	for _, r := range fixtures.CurlRequests(t) {
		if r.Form["section"] == "configuration" {
			continue
		}
		out = append(out, r.Values())
	}
	return out
}

// compareGatewayRequests compares directory lookups in order and reports
// as a multiset (disconnect reports of simultaneous closes may come in any
// order).
func compareGatewayRequests(t *testing.T, want, got []url.Values) {
	t.Helper()
	split := func(l []url.Values) (lookups []url.Values, reports []string) {
		for _, f := range l {
			if f.Get("section") == "directory" {
				lookups = append(lookups, f)
			} else {
				reports = append(reports, normalizeReport(t, f))
			}
		}
		sort.Strings(reports)
		return
	}
	wl, wr := split(want)
	gl, gr := split(got)
	if len(gl) != len(wl) {
		t.Fatalf("directory lookups: %d, recorded %d", len(gl), len(wl))
	}
	for i := range wl {
		if err := compareLookup(wl[i], gl[i]); err != nil {
			t.Errorf("lookup %d (user %s): %v", i, wl[i].Get("user"), err)
		}
	}
	if !reflect.DeepEqual(wr, gr) {
		t.Errorf("reports differ:\n got  %q\n want %q", gr, wr)
	}
}

// lookupVolatile are the lookup fields tolLookupHeaders covers.
var lookupVolatile = map[string]*regexp.Regexp{
	"Core-UUID":                 uuidV4,
	"Event-Date-Local":          regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`),
	"Event-Date-GMT":            regexp.MustCompile(`^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$`),
	"Event-Date-Timestamp":      regexp.MustCompile(`^\d{16}$`),
	"Event-Sequence":            regexp.MustCompile(`^\d+$`),
	"Event-Calling-Line-Number": nil, // may be absent
	"FreeSWITCH-IPv4":           nil,
	"FreeSWITCH-IPv6":           nil,
}

func compareLookup(want, got url.Values) error {
	for k, re := range lookupVolatile {
		g, has := got[k]
		if re != nil {
			if !has || !re.MatchString(g[0]) {
				return fmt.Errorf("%s %q has the wrong shape (%s)", k, got.Get(k), tolLookupHeaders)
			}
		}
	}
	strip := func(v url.Values) map[string]string {
		m := map[string]string{}
		for k := range v {
			if _, vol := lookupVolatile[k]; !vol {
				m[k] = v.Get(k)
			}
		}
		return m
	}
	w, g := strip(want), strip(got)
	if !reflect.DeepEqual(w, g) {
		return fmt.Errorf("form differs:\n got  %v\n want %v", g, w)
	}
	return nil
}

var loopbackAddr = regexp.MustCompile(`^127\.0\.0\.1:\d+$`)

// normalizeReport renders a report form with tolReportAddress applied.
func normalizeReport(t *testing.T, f url.Values) string {
	t.Helper()
	v := url.Values{}
	for k := range f {
		v.Set(k, f.Get(k))
	}
	if !loopbackAddr.MatchString(v.Get("address")) {
		t.Errorf("report address %q is not a loopback ip:port (%s)", v.Get("address"), tolReportAddress)
	}
	v.Set("address", "127.0.0.1:*")
	return v.Encode()
}
