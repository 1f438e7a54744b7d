package hub

import (
	"bytes"
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// directoryForm is the form mod_xml_curl POSTs for mod_verto's directory
// lookup of user id in the hub's domain (switch_xml_locate_user_merged with
// action=jsonrpc-authenticate), including the event headers of the lookup.
func (h *Hub) directoryForm(id string, now time.Time) url.Values {
	d, host := h.opts.Domain, h.opts.Hostname
	utc := now.UTC()
	return url.Values{
		"hostname":               {host},
		"section":                {"directory"},
		"tag_name":               {"domain"},
		"key_name":               {"name"},
		"key_value":              {d},
		"Event-Name":             {"REQUEST_PARAMS"},
		"Core-UUID":              {h.coreUUID},
		"FreeSWITCH-Hostname":    {host},
		"FreeSWITCH-Switchname":  {host},
		"Event-Date-Local":       {now.Format("2006-01-02 15:04:05")},
		"Event-Date-GMT":         {utc.Format("Mon, 02 Jan 2006 15:04:05 GMT")},
		"Event-Date-Timestamp":   {strconv.FormatInt(now.UnixMicro(), 10)},
		"Event-Calling-File":     {"mod_verto.c"},
		"Event-Calling-Function": {"check_auth"},
		"Event-Sequence":         {strconv.FormatUint(h.eventSeq.Add(1), 10)},
		"action":                 {"jsonrpc-authenticate"},
		"key":                    {"id"},
		"user":                   {id},
		"domain":                 {d},
	}
}

// dirUser is a directory entry as mod_verto uses it.
type dirUser struct {
	params []xmlParam // merged: user, then group, then domain params
}

// param returns the first value of the named param (case-insensitive).
func (u *dirUser) param(name string) (string, bool) {
	for _, p := range u.params {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

// passwordOK checks passwd the way mod_verto's check_auth does: the first
// "password" param, overridden by "jsonrpc-password", or by "a1-hash"
// compared with md5(id:domain:passwd).
func (u *dirUser) passwordOK(id, domain, passwd string) bool {
	var use string
	var have, a1 bool
	for _, p := range u.params {
		switch {
		case !have && strings.EqualFold(p.Name, "password"):
			use, have = p.Value, true
		case strings.EqualFold(p.Name, "jsonrpc-password"):
			use, have, a1 = p.Value, true, false
		case strings.EqualFold(p.Name, "a1-hash"):
			use, have, a1 = p.Value, true, true
		}
	}
	if !have || use == "" {
		return false
	}
	given := passwd
	if a1 {
		sum := md5.Sum([]byte(id + ":" + domain + ":" + passwd))
		given = hex.EncodeToString(sum[:])
	}
	// Constant time: how long the comparison takes must not tell how much
	// of a guess was right.
	return subtle.ConstantTimeCompare([]byte(given), []byte(use)) == 1
}

type xmlParam struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type xmlUser struct {
	ID     string     `xml:"id,attr"`
	Params []xmlParam `xml:"params>param"`
}

type xmlGroup struct {
	Params []xmlParam `xml:"params>param"`
	Users  []xmlUser  `xml:"users>user"`
}

type xmlDomain struct {
	Name   string     `xml:"name,attr"`
	Params []xmlParam `xml:"params>param"`
	Users  []xmlUser  `xml:"user"`
	Groups []xmlGroup `xml:"groups>group"`
}

type xmlSection struct {
	Name    string      `xml:"name,attr"`
	Domains []xmlDomain `xml:"domain"`
}

type xmlDocument struct {
	XMLName  xml.Name     `xml:"document"`
	Sections []xmlSection `xml:"section"`
}

// parseDirectory reads a gateway answer the way FreeSWITCH reads the
// directory: the user whose id matches in the domain of the directory
// section, with group and domain params merged in where the user has none
// of that name. Anything else — the not-found document, an unparsable body,
// another domain or user — means not found.
func parseDirectory(doc []byte, domain, id string) (*dirUser, bool) {
	d, ok := directoryDocs.parse(doc)
	if !ok {
		return nil, false
	}
	return findUser(d, domain, id)
}

// findUser finds user id of domain in a decoded gateway answer.
func findUser(d *xmlDocument, domain, id string) (*dirUser, bool) {
	for _, s := range d.Sections {
		if !strings.EqualFold(s.Name, "directory") {
			continue
		}
		for _, dom := range s.Domains {
			if !strings.EqualFold(dom.Name, domain) {
				continue
			}
			for _, u := range dom.Users {
				if strings.EqualFold(u.ID, id) {
					return merged(u.Params, nil, dom.Params), true
				}
			}
			for _, g := range dom.Groups {
				for _, u := range g.Users {
					if strings.EqualFold(u.ID, id) {
						return merged(u.Params, g.Params, dom.Params), true
					}
				}
			}
		}
	}
	return nil, false
}

// decodeDirectory decodes a gateway answer with encoding/xml; false: it
// does not parse.
func decodeDirectory(doc []byte) (*xmlDocument, bool) {
	d := new(xmlDocument)
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := dec.Decode(d); err != nil {
		return nil, false
	}
	return d, true
}

// directoryDocs remembers the decoded gateway answers of recent logins:
// a user's answer is the same document from one login to the next, and
// decoding it with encoding/xml was about 6 % of a login's CPU. Decoded
// documents are never modified (merged copies what it returns).
var directoryDocs = docCache{docs: map[string]docEntry{}}

// Bounds of directoryDocs: a document larger than docCacheMaxBytes is
// decoded every time; past docCacheEntries documents, an arbitrary one is
// forgotten for each new one. At most 512 × 8 KiB of documents (the
// Channels directory's answer for one user is about 1 KiB).
const (
	docCacheEntries  = 512
	docCacheMaxBytes = 8 << 10
)

type docEntry struct {
	d  *xmlDocument // nil: the document does not parse
	ok bool
}

type docCache struct {
	mu   sync.Mutex
	docs map[string]docEntry
}

// parse returns doc decoded, from the cache when it holds doc.
func (c *docCache) parse(doc []byte) (*xmlDocument, bool) {
	if len(doc) > docCacheMaxBytes {
		return decodeDirectory(doc)
	}
	c.mu.Lock()
	e, hit := c.docs[string(doc)]
	c.mu.Unlock()
	if hit {
		return e.d, e.ok
	}
	d, ok := decodeDirectory(doc)
	c.mu.Lock()
	if len(c.docs) >= docCacheEntries {
		for k := range c.docs {
			delete(c.docs, k)
			break
		}
	}
	c.docs[string(doc)] = docEntry{d: d, ok: ok}
	c.mu.Unlock()
	return d, ok
}

func merged(user, group, domain []xmlParam) *dirUser {
	out := append([]xmlParam(nil), user...)
	has := func(name string) bool {
		for _, p := range out {
			if strings.EqualFold(p.Name, name) {
				return true
			}
		}
		return false
	}
	for _, list := range [][]xmlParam{group, domain} {
		for _, p := range list {
			if !has(p.Name) {
				out = append(out, p)
			}
		}
	}
	return &dirUser{params: out}
}

// permSet is mod_verto's permission list (jsonrpc-allowed-methods,
// jsonrpc-allowed-event-channels): nil allows everything (the value
// "__ANY__"); otherwise names compared ignoring case, where a name "a"
// also allows "a.b".
type permSet map[string]struct{}

// newPermSet parses a param value like mod_verto's set_perm: split on
// spaces if the value has one, else on commas.
func newPermSet(value string, present bool) permSet {
	if present && strings.EqualFold(value, "__ANY__") {
		return nil
	}
	s := permSet{}
	if value == "" {
		return s
	}
	sep := ","
	if strings.Contains(value, " ") {
		sep = " "
	}
	for _, name := range strings.Split(value, sep) {
		s[strings.ToLower(name)] = struct{}{}
	}
	return s
}

// allows reports whether name, or the part of it before the first dot, is
// in the set.
func (s permSet) allows(name string) bool {
	if s == nil {
		return true
	}
	l := strings.ToLower(name)
	if _, ok := s[l]; ok {
		return true
	}
	if i := strings.IndexByte(l, '.'); i >= 0 {
		_, ok := s[l[:i]]
		return ok
	}
	return false
}

// permissions are what a directory entry lets a connection do.
type permissions struct {
	methods  permSet
	channels permSet
	display  string // caller-id-name, added to broadcasts as fromDisplay
}

func permissionsOf(u *dirUser) permissions {
	nonEmpty := func(name string) (string, bool) {
		v, ok := u.param(name)
		return v, ok && v != ""
	}
	m, mok := nonEmpty("jsonrpc-allowed-methods")
	ch, cok := nonEmpty("jsonrpc-allowed-event-channels")
	p := permissions{methods: newPermSet(m, mok), channels: newPermSet(ch, cok)}
	if p.methods != nil {
		p.methods["login"] = struct{}{}
	}
	p.display, _ = u.param("caller-id-name")
	return p
}

// channelAllowed is mod_verto's event_channel_check_auth without the
// FreeSWITCH-side grants: FSevent channels are never allowed (the hub has
// no FreeSWITCH events), others by the allowed-event-channels list.
func (p permissions) channelAllowed(channel string) bool {
	if p.channels == nil {
		return !isFSEvent(channel)
	}
	if isFSEvent(channel) {
		return false
	}
	return p.channels.allows(channel)
}

func isFSEvent(channel string) bool {
	main, _, _ := strings.Cut(channel, ".")
	return strings.EqualFold(channel, "FSevent") || strings.EqualFold(main, "FSevent")
}

// lookup, which asks the gateway for a user, is in outage.go: it waits
// for a gateway that fails.
