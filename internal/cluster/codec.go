package cluster

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"strings"
)

// Subjects, under the root Options.Prefix ("channels" by default):
//
//	ROOT.ev.TOKEN         broadcasts to the event channel TOKEN names (its
//	                      part before the first dot), from every hub that
//	                      has a member broadcasting there, to every hub
//	                      with a local subscriber
//	ROOT.user.TOKEN       direct messages, punts, budget notes and
//	                      requests for budget levels for the user TOKEN
//	                      names, to the hubs where it has connections
//	ROOT.nodes            heartbeats, membership changes (one, or several
//	                      numbered on in one message), the budget levels
//	                      of members who left, busy and free notes,
//	                      removals and goodbyes of every hub, to every hub
//	ROOT.node.ID.sync     requests for hub ID's whole membership, and for
//	                      its members back (from a hub that took it for
//	                      dead)
//	ROOT.inbox.ID         answers to hub ID's requests (budget levels too)
//
// A TOKEN is a name made safe for a subject token: "u" and the name when
// it is short and has only letters, digits, '-' and '_' (client ids, UUID
// channels), otherwise "x" and its unpadded base64url, or "h" and the hex
// SHA-256 of a very long name. The three forms cannot collide.
func token(name string) string {
	if len(name) > 0 && len(name) <= 128 && safe(name) {
		return "u" + name
	}
	if len(name) <= 192 {
		return "x" + base64.RawURLEncoding.EncodeToString([]byte(name))
	}
	sum := sha256.Sum256([]byte(name))
	return "h" + hex.EncodeToString(sum[:])
}

func safe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// mainChannel is the part of an event channel before its first dot: a
// broadcast to "a.b" reaches the subscribers of "a" too, so both travel on
// a's subject.
func mainChannel(channel string) string {
	main, _, _ := strings.Cut(channel, ".")
	return main
}

// Wire versions. Every message starts with the version of its layout,
// then its kind, then its fields:
//
//	version  kind  fields…
//
// Within a version, changes are additive only: a new kind (which an
// older node of that version ignores) or new fields at the end (which an
// older node does not read). Anything an older node must not miss bumps
// the version. A node reads the versions from wireMin to wireMax and
// announces them in every heartbeat; it speaks the newest version every
// live peer reads, and every peer that left lately (the oldest it reads
// while it knows no peer, and for its first expiry: see table.speakLocked),
// so during a rolling upgrade the new processes speak the old version
// until the last old process is gone. The release before versions
// existed is no such peer: it and this one ignore each other. A message in a version a node does not read
// is dropped, counted (Stats.Unreadable) and logged once per version.
// Releases before versions existed sent the kind first: a letter, which
// no version byte is (versions stay below 0x20), so it is told apart and
// reported as version 0.
const (
	wireMin = 1
	wireMax = 1
)

// Message kinds: the second byte of every message.
const (
	kindEvent     = 'e' // sender, channel, params
	kindMessage   = 'm' // sender, from, homes, target, body
	kindPunt      = 'p' // node, uid, sessid, stamp
	kindSpent     = 's' // uid, broadcast flag, bytes
	kindBusy      = 'B' // node, uid, busy flag, homes
	kindHeartbeat = 'h' // node, seq, clock, wireMin, wireMax
	kindDelta     = 'd' // node, seq, clock, member
	kindDeltas    = 'D' // node, seq of the first, clock, count, members (numbered on)
	kindBye       = 'b' // node
	kindSync      = 'q' // node asking
	kindSnapshot  = 'S' // node, seq, part, last, count, members
	kindRevive    = 'r' // node that took the addressee for dead, whether it reported its members' disconnects
	kindReplay    = 'R' // node, part, last, count, (member, count, (channel, params)…)…
	kindAskLevels = 'l' // node asking, nonce, uid
	kindLevels    = 'L' // node, nonce (0: members who left), count, (uid, known, broadcast tokens, message tokens)…
	kindRemove    = 'k' // node, uid: close uid's connections and refuse its logins for a while (hub.Hub.Remove)
	kindUnremove  = 'u' // node, uid: end the refusal of uid's logins (hub.Hub.Unremove)
)

// Features a node announces at the end of its heartbeats (a field older
// nodes of wire version 1 do not read), as bits.
const (
	// featureLevels: the node answers kindAskLevels, and sends the
	// levels of its members who leave.
	featureLevels = 1 << iota
)

// features is what this release announces.
const features = featureLevels

// enc builds a message: a version byte and a kind byte, then fields as
// uvarint-prefixed strings and uvarints.
type enc struct{ b []byte }

func newEnc(version, kind byte, size int) *enc {
	e := &enc{b: make([]byte, 0, size+16)}
	e.b = append(e.b, version, kind)
	return e
}

// start begins a message in e's buffer, reusing it.
func (e *enc) start(version, kind byte) { e.b = append(e.b[:0], version, kind) }

func (e *enc) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *enc) bytes(p []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(len(p)))
	e.b = append(e.b, p...)
}

func (e *enc) num(n uint64) { e.b = binary.AppendUvarint(e.b, n) }

func (e *enc) flag(b bool) {
	if b {
		e.num(1)
	} else {
		e.num(0)
	}
}

// tokens writes a bucket's level in thousandths of a token, rounded
// down, zigzag-encoded (it may be below zero).
func (e *enc) tokens(f float64) {
	if math.IsNaN(f) {
		f = 0
	}
	v := int64(math.Floor(max(min(f, maxTokens), -maxTokens) * 1000))
	e.num(uint64(v<<1) ^ uint64(v>>63))
}

// maxTokens bounds a level on the wire, either way.
const maxTokens = 1 << 40

// list writes a list of strings; nil (any) and empty differ.
func (e *enc) list(l []string) {
	if l == nil {
		e.num(0)
		return
	}
	e.num(uint64(len(l)) + 1)
	for _, s := range l {
		e.str(s)
	}
}

// envelope reads a message's version and kind. ok is false when the
// message is too short or its version is not within [lo, hi]; version is
// then what it carried, 0 for a message of a release before versions.
func envelope(data []byte, lo, hi byte) (version, kind byte, d dec, ok bool) {
	if len(data) < 2 {
		return 0, 0, dec{}, false
	}
	version = data[0]
	if version >= 0x20 {
		return 0, 0, dec{}, false // a kind letter: unversioned
	}
	if version < lo || version > hi {
		return version, 0, dec{}, false
	}
	return version, data[1], dec{b: data[2:]}, true
}

var errMalformed = errors.New("cluster: malformed message")

// dec reads what enc wrote; the first error sticks.
type dec struct {
	b   []byte
	err error
}

func (d *dec) num() uint64 {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errMalformed
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *dec) bytes() []byte {
	n := d.num()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errMalformed
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) str() string { return string(d.bytes()) }

// skip reads past a string (or bytes) without allocating.
func (d *dec) skip() { _ = d.bytes() }

func (d *dec) flag() bool { return d.num() == 1 }

// tokens reads what enc.tokens wrote.
func (d *dec) tokens() float64 {
	u := d.num()
	return float64(int64(u>>1)^-int64(u&1)) / 1000
}

// more reads a number a later release may have added at the end: 0 when
// the message ends first.
func (d *dec) more() uint64 {
	if d.err != nil || len(d.b) == 0 {
		return 0
	}
	return d.num()
}

func (d *dec) list() []string {
	n := d.num()
	if d.err != nil || n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.b)) { // each item takes a byte at least
		d.err = errMalformed
		return nil
	}
	// Read past the items first: the list is made for the items really
	// there, never for the count the message claims.
	probe := *d
	for i := uint64(0); i < n && probe.err == nil; i++ {
		probe.skip()
	}
	if probe.err != nil {
		d.err = probe.err
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}
