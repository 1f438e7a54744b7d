package hub

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// dirGateway is an in-memory directory that answers like the Channels
// /fsapi directory handler (same document shape as the recording), for
// tests that need many users. Reports are counted.
type dirGateway struct {
	mu      sync.Mutex
	users   map[string]dirEntry
	reports []url.Values
}

type dirEntry struct {
	pass     string
	methods  string // jsonrpc-allowed-methods; "" leaves the param out
	channels string // jsonrpc-allowed-event-channels; "" leaves the param out
}

const browserMethods = "echo,verto.subscribe,verto.unsubscribe,verto.broadcast,verto.info"

func newDirGateway() *dirGateway { return &dirGateway{users: map[string]dirEntry{}} }

// add registers a user allowed the browser methods on one channel.
func (g *dirGateway) add(id, pass, channel string) {
	g.set(id, dirEntry{pass: pass, methods: browserMethods, channels: channel})
}

func (g *dirGateway) set(id string, e dirEntry) {
	g.mu.Lock()
	g.users[id] = e
	g.mu.Unlock()
}

const notFoundDoc = `<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<document type="freeswitch/xml">
  <section name="result">
    <result status="not found"/>
  </section>
</document>
`

func xmlAttr(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), `"`, "&#34;")
}

func (g *dirGateway) Respond(_ context.Context, form url.Values) []byte {
	if form.Get("section") != "directory" {
		g.mu.Lock()
		g.reports = append(g.reports, form)
		g.mu.Unlock()
		return []byte("ok")
	}
	g.mu.Lock()
	e, ok := g.users[form.Get("user")]
	g.mu.Unlock()
	if !ok || form.Get("action") != "jsonrpc-authenticate" {
		return []byte(notFoundDoc)
	}
	var params strings.Builder
	fmt.Fprintf(&params, "\n          <param name=\"password\" value=\"%s\"/>", xmlAttr(e.pass))
	if e.methods != "" {
		fmt.Fprintf(&params, "\n          <param name=\"jsonrpc-allowed-methods\" value=\"%s\"/>", xmlAttr(e.methods))
	}
	if e.channels != "" {
		fmt.Fprintf(&params, "\n          <param name=\"jsonrpc-allowed-event-channels\" value=\"%s\"/>", xmlAttr(e.channels))
	}
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<document type="freeswitch/xml">
  <section name="directory">
    <domain name="%s">
      <user id="%s">
        <params>%s
        </params>
      </user>
    </domain>
  </section>
</document>
`, xmlAttr(form.Get("domain")), xmlAttr(form.Get("user")), params.String()))
}

// reportList returns the reports received so far.
func (g *dirGateway) reportList() []url.Values {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.reports)
}

func (g *dirGateway) reportCount(action string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, r := range g.reports {
		if r.Get("action") == action {
			n++
		}
	}
	return n
}
