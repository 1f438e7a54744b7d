package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/hub/hubtest"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// BenchmarkFloors measures the hub beside its floors in one run:
// scripts/bench-hub runs it ROUNDS times, alternating which of each pair
// goes first, and prints each ratio.
//
//   - broadcast/N/{hub,minimal}: a broadcast to N subscribers until the
//     last has it (p50-ms), through the hub with its default limits and
//     through minimalHub, a Verto hub over the same WebSocket library that
//     checks nothing. Subscribers come from addresses of their own
//     (127.10.x.y), as browsers do: the per-address limits stay at their
//     defaults. The sender's request and broadcast budgets are lifted (it
//     sends back to back, far past a member's 2 a second): the benchmark
//     would measure those budgets otherwise.
//   - login/STORE/{hub,floor}: logins/s of 16 clients at once, each from an
//     address of its own: connect, log in, wait for verto.clientReady,
//     disconnect. The hub's chain is the real one (fsapi registry,
//     directory handlers, store), and its figure includes writing the
//     login and disconnect reports it queued; the floor is minimalHub
//     plus one credential lookup (Store.ClientByID) and one login write
//     (Store.ClientLoggedIn) on the same database, and floor+disconnect
//     that plus the disconnect write (Store.ClientDisconnected).
//
// With HUB_FLOOR_FIRST=1 each pair runs its floor first (the script
// alternates it from round to round).
func BenchmarkFloors(b *testing.B) {
	for _, n := range []int{500, 1500} {
		b.Run(fmt.Sprintf("broadcast/%d", n), func(b *testing.B) {
			pair(b, func() {
				b.Run("hub", func(b *testing.B) {
					gw := newDirGateway()
					for i := range n + 1 {
						gw.add(fmt.Sprintf("u%d", i), "pw", "room")
					}
					th := startHub(b, gw, func(o *Options) {
						o.RequestRate, o.RequestBurst = 1e9, 1<<30
						o.BroadcastBudget = unlimited
					})
					benchFanOut(b, th.url, n)
				})
			}, func() {
				b.Run("minimal", func(b *testing.B) {
					benchFanOut(b, startMinimal(b, nil, nil), n)
				})
			})
		})
	}
	const users = 256
	for _, be := range storetest.Stores(b) {
		cred := loginClients(b, be.Store, users)
		b.Run("login/"+be.Name, func(b *testing.B) {
			pair(b, func() {
				b.Run("hub", func(b *testing.B) {
					// Report workers as the server gives them (internal/cli).
					th := startHub(b, directoryGateway(b, be.Store), func(o *Options) {
						o.ReportWorkers = ReportWorkersFor(be.Store.PoolStats().MaxOpenConnections)
					})
					var batches, reports, biggest atomic.Int64
					var markers sync.Map
					sent := func(forms []url.Values) {
						n := len(forms)
						batches.Add(1)
						reports.Add(int64(n))
						for m := biggest.Load(); int64(n) > m && !biggest.CompareAndSwap(m, int64(n)); m = biggest.Load() {
						}
						for _, f := range forms {
							markers.Delete(f.Get("login"))
						}
					}
					th.h.reports.sent.Store(&sent)
					benchLoginAt(b, th.url, cred, true, func() { drainReports(b, th.h, &markers) })
					if n := batches.Load(); n > 0 {
						b.ReportMetric(float64(reports.Load())/float64(n), "reports/batch")
						b.ReportMetric(float64(biggest.Load()), "max-batch")
					}
				})
			}, func() {
				b.Run("floor", func(b *testing.B) {
					benchLoginAt(b, startMinimal(b, storeCheck(be.Store), nil), cred, true, nil)
				})
				// The hub also records each disconnect (a second write per
				// login of this benchmark, whose clients disconnect at
				// once): this floor does too.
				b.Run("floor+disconnect", func(b *testing.B) {
					benchLoginAt(b, startMinimal(b, storeCheck(be.Store), storeDisconnect(be.Store)), cred, true, nil)
				})
			})
		})
	}
}

// pair runs hub and floor, the floor first with HUB_FLOOR_FIRST=1.
func pair(_ *testing.B, hub, floor func()) {
	if os.Getenv("HUB_FLOOR_FIRST") == "1" {
		floor()
		hub()
		return
	}
	hub()
	floor()
}

// benchFanOut is benchBroadcast against the hub at url, its n
// subscribers each from an address of its own.
func benchFanOut(b *testing.B, url string, n int) {
	fanOut(b, url, n, func(i int) (*hubtest.Raw, error) { return hubtest.DialRawFrom(url, hubtest.SpreadIP(i)) })
}

// drainReports waits until h has sent every report queued so far (a
// marker behind them in each worker's queue), which sent (the reporter's
// hook) deletes from markers: the hub writes its login and disconnect
// reports off the logins' path, and a run that ended with thousands
// queued would count logins whose writes are still to come.
func drainReports(b *testing.B, h *Hub, markers *sync.Map) {
	left := map[int]bool{}
	for w := range h.reports.queues {
		left[w] = true
	}
	for i := 0; len(left) > 0; i++ {
		id := "marker" + strconv.Itoa(i)
		if w := h.reports.worker(id); left[w] {
			delete(left, w)
			markers.Store(id+"@"+h.opts.Domain, true)
			h.disconnectReport(id+"@"+h.opts.Domain, "192.0.2.1:1")
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		n := 0
		markers.Range(func(any, any) bool { n++; return true })
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("reports still queued after a minute")
		}
		time.Sleep(time.Millisecond)
	}
}

// storeCheck is the floor's login check: one credential lookup and one
// login write.
func storeCheck(st *store.Store) func(ctx context.Context, login, passwd, addr string) bool {
	return func(ctx context.Context, login, passwd, addr string) bool {
		c, err := st.ClientByID(ctx, login)
		if err != nil || c.Password != passwd {
			return false
		}
		return st.ClientLoggedIn(ctx, login, addr, time.Now()) == nil
	}
}

// storeDisconnect is the floor's disconnect write.
func storeDisconnect(st *store.Store) func(login, addr string) {
	return func(login, addr string) { _, _ = st.ClientDisconnected(context.Background(), login, addr) }
}

// minimalHub is the floor of the hub's benchmarks: Verto over the same
// WebSocket library, doing only what a client sees — login (with check,
// when set, else none), clientReady, subscribe, local broadcast with each
// subscriber's id and eventSerno — with a goroutine and a queue per
// connection and one lock for the subscriptions. No budgets, no limits,
// no reports.
type minimalHub struct {
	check  func(ctx context.Context, login, passwd, addr string) bool
	closed func(login, addr string) // nil: nothing recorded
	mu     sync.Mutex
	subs   map[string][]*minimalSub
	nextID atomic.Uint64
}

type minimalSub struct {
	out   chan []byte
	serno uint64 // under the hub's lock
}

func startMinimal(b *testing.B, check func(ctx context.Context, login, passwd, addr string) bool, closed func(login, addr string)) string {
	m := &minimalHub{check: check, closed: closed, subs: map[string][]*minimalSub{}}
	srv := httptest.NewServer(m)
	b.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/verto"
}

func (m *minimalHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(DefaultMaxFrameBytes)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := make(chan []byte, 1024)
	go func() {
		for {
			select {
			case p := <-out:
				if ws.Write(ctx, websocket.MessageText, p) != nil {
					cancel()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	me := &minimalSub{out: out}
	var channels []string
	defer func() {
		m.mu.Lock()
		for _, ch := range channels {
			m.subs[ch] = slices.DeleteFunc(slices.Clone(m.subs[ch]), func(s *minimalSub) bool { return s == me })
		}
		m.mu.Unlock()
		_ = ws.CloseNow()
	}()
	var user, sessid string
	loggedIn := false
	defer func() {
		if loggedIn && m.closed != nil {
			m.closed(user, r.RemoteAddr)
		}
	}()
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var req struct {
			ID     json.RawMessage            `json:"id"`
			Method string                     `json:"method"`
			Params map[string]json.RawMessage `json:"params"`
		}
		if json.Unmarshal(data, &req) != nil {
			return
		}
		str := func(k string) string {
			var s string
			_ = json.Unmarshal(req.Params[k], &s)
			return s
		}
		reply := func(result string) {
			out <- []byte(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":` + result + `}`)
		}
		switch req.Method {
		case "login":
			user, sessid = str("login"), str("sessid")
			if m.check != nil && !m.check(ctx, user, str("passwd"), r.RemoteAddr) {
				out <- []byte(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"error":{"code":-32001,"message":"Login Incorrect"}}`)
				continue
			}
			loggedIn = true
			reply(`{"message":"logged in","sessid":` + strconv.Quote(sessid) + `}`)
			out <- []byte(`{"jsonrpc":"2.0","id":` + strconv.FormatUint(m.nextID.Add(1), 10) +
				`,"method":"verto.clientReady","params":{"reattached_sessions":[]}}`)
		case "verto.subscribe":
			ch := str("eventChannel")
			m.mu.Lock()
			m.subs[ch] = append(slices.Clip(m.subs[ch]), me)
			m.mu.Unlock()
			channels = append(channels, ch)
			reply(`{"subscribedChannels":[` + strconv.Quote(ch) + `],"sessid":` + strconv.Quote(sessid) + `}`)
		case "verto.broadcast":
			ch := str("eventChannel")
			req.Params["userid"], _ = json.Marshal(user)
			req.Params["sessid"], _ = json.Marshal(sessid)
			params, _ := json.Marshal(req.Params)
			params = params[:len(params)-1] // open: eventSerno and subscribedChannel follow
			tail := []byte(`,"subscribedChannel":` + strconv.Quote(ch) + `}}`)
			m.mu.Lock()
			for _, s := range m.subs[ch] {
				var f bytes.Buffer
				f.Grow(len(params) + 96)
				f.WriteString(`{"jsonrpc":"2.0","id":`)
				f.WriteString(strconv.FormatUint(m.nextID.Add(1), 10))
				f.WriteString(`,"method":"verto.event","params":`)
				f.Write(params)
				f.WriteString(`,"eventSerno":`)
				f.WriteString(strconv.FormatUint(s.serno, 10))
				f.Write(tail)
				s.serno++
				select {
				case s.out <- f.Bytes():
				default: // a reader that is behind misses it
				}
			}
			m.mu.Unlock()
			reply(`{}`)
		default:
			reply(`{}`)
		}
	}
}
