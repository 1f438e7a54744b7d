// Package verto holds the wire types of FreeSWITCH's Verto protocol as
// mod_verto speaks it: JSON-RPC 2.0 frames and batches, the error codes and
// the exact error messages, and builders for the replies and requests a
// server sends. It knows nothing about connections or sessions; the hub
// (package hub) gives the messages their behaviour.
//
// Parsing follows mod_verto's cJSON reading, not the JSON-RPC
// specification: member names are matched case-insensitively, a member of
// the wrong JSON type counts as absent, and a frame that is not JSON at all
// is answered differently from a well-formed object without "jsonrpc".
package verto

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Version is the only JSON-RPC version mod_verto accepts.
const Version = "2.0"

// Error codes mod_verto uses.
const (
	CodeInvalid        = -32600 // frame not JSON, or jsonrpc missing / not "2.0"
	CodeAuthRequired   = -32000 // a request before login
	CodeAuthFailed     = -32001 // login refused, session in use
	CodeSessionError   = -32002 // carried inside results and error objects of verto.* methods
	CodeMethodNotFound = -32601 // unknown or forbidden method
)

// Error and result messages, byte for byte as mod_verto sends them.
const (
	MsgInvalidRequest   = "Invalid Request"
	MsgInvalidMessage   = "Invalid message"
	MsgAuthRequired     = "Authentication Required"
	MsgMissingParams    = "Missing params"
	MsgMissingPasswd    = "Missing passwd"
	MsgLoginIncorrect   = "Login Incorrect"
	MsgAuthFailure      = "Authentication Failure"
	MsgSessionInUse     = "Session in use"
	MsgInvalidMethod    = "Invalid Method, Missing Method or Permission Denied"
	MsgLoggedIn         = "logged in"
	MsgNoEventChannel   = "eventChannel not specified."
	MsgPermissionDenied = "Permission Denied."
	MsgSent             = "SENT"
	MsgInvalidInfo      = "INVALID MESSAGE to and body params required"
	MsgParamsMissing    = "Params data missing"
	MsgPong             = "PONG"
)

// Errors of the embedded hub's limits, which mod_verto does not have. They
// use codes of their own so a client can tell a budget from a refusal.
const (
	CodeRateLimited    = -32010 // a member's broadcast or message budget is spent
	CodeTooLarge       = -32011 // a batch, event or message over its size bound
	CodeUnreachable    = -32012 // a direct message that cannot reach its target's process now (a cluster's NATS link down)
	CodeUnavailable    = -32013 // a login the server cannot check now (its database unreachable): try again
	MsgRateLimited     = "Rate limit exceeded"
	MsgBatchTooLarge   = "Batch too large"
	MsgEventTooLarge   = "Event too large"
	MsgMessageTooLarge = "Message too large"
	MsgTooManyConns    = "Too many connections"
	MsgChannelFull     = "Channel is full"
	MsgLimitUnknown    = "Channel busy, try again shortly"
	MsgOtherUser       = "Already logged in as another user"
	MsgRecipientBusy   = "Recipient is busy"
	MsgUnreachable     = "Recipient unreachable, try again shortly"
	MsgUnavailable     = "Server error, try again shortly"
)

// Methods the server sends to clients.
const (
	MethodClientReady = "verto.clientReady"
	MethodEvent       = "verto.event"
	MethodInfo        = "verto.info"
	MethodPunt        = "verto.punt"
)

// ErrNotJSON is returned by ParseFrame for a frame that is not JSON; the
// answer is an error CodeInvalid / MsgInvalidRequest with a null id.
var ErrNotJSON = errors.New("verto: frame is not JSON")

// Frame is one received WebSocket message: a single JSON value, or a batch
// (a JSON array) whose items are each handled as a message.
type Frame struct {
	Batch bool
	Items []json.RawMessage

	single *Message // a single object, decoded while parsing the frame
}

// Message returns item i read as a message (ParseMessage), without decoding
// a single-object frame twice.
func (f Frame) Message(i int) Message {
	if i == 0 && f.single != nil {
		return *f.single
	}
	return ParseMessage(f.Items[i])
}

// ParseFrame splits a received frame into the values to handle. Like cJSON,
// it reads the first JSON value and ignores anything after it.
func ParseFrame(data []byte) (Frame, error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		// The common case, decoded in one pass; anything odd (trailing
		// data, bad syntax) takes the general path below.
		var w wireMessage
		if err := json.Unmarshal(t, &w); err == nil {
			m := messageOf(&w)
			return Frame{Items: []json.RawMessage{t}, single: &m}, nil
		}
	}
	v := firstValue(data)
	if v == nil {
		return Frame{}, ErrNotJSON
	}
	if v[0] != '[' {
		return Frame{Items: []json.RawMessage{v}}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return Frame{}, ErrNotJSON
	}
	return Frame{Batch: true, Items: items}, nil
}

// firstValue returns the first complete JSON value of data, trimmed, or
// nil when data does not start with one.
func firstValue(data []byte) json.RawMessage {
	t := bytes.TrimSpace(data)
	if len(t) == 0 {
		return nil
	}
	if json.Valid(t) {
		return json.RawMessage(t)
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil || len(v) == 0 {
		return nil
	}
	return v
}

// Message is one JSON-RPC value of a frame, read the way mod_verto reads it.
type Message struct {
	// Valid reports whether the value is an object whose jsonrpc is the
	// string "2.0". Invalid messages get CodeInvalid / MsgInvalidMessage.
	Valid bool
	// ID is the id member verbatim, nil when absent (replies then carry
	// "id": null).
	ID json.RawMessage
	// Method is the method member if it is a string.
	Method    string
	HasMethod bool
	// Params is the params member verbatim, nil when absent.
	Params json.RawMessage
	// IsReply reports a "result" member: a reply from the client, which
	// mod_verto ignores.
	IsReply bool
}

type wireMessage struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
}

// ParseMessage reads one item of a frame. It never fails: anything that is
// not an object comes back with Valid false.
func ParseMessage(raw json.RawMessage) Message {
	var m Message
	if len(raw) == 0 || raw[0] != '{' {
		return m
	}
	var w wireMessage
	if err := json.Unmarshal(raw, &w); err != nil {
		return m
	}
	return messageOf(&w)
}

func messageOf(w *wireMessage) Message {
	var m Message
	m.ID = w.ID
	m.Params = w.Params
	m.IsReply = w.Result != nil
	if s, ok := stringOf(w.Method); ok {
		m.Method, m.HasMethod = s, true
	}
	v, ok := stringOf(w.JSONRPC)
	m.Valid = ok && v == Version
	return m
}

// stringOf decodes raw if it is a JSON string.
func stringOf(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// Params is a decoded params object. Lookups match member names the way
// cJSON does: exactly first, then ignoring case.
type Params map[string]json.RawMessage

// ParseParams decodes raw when it is a JSON object; ok is false otherwise
// (absent, null, array, scalar).
func ParseParams(raw json.RawMessage) (p Params, ok bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, false
	}
	if p == nil {
		p = Params{}
	}
	return p, true
}

// Get returns the member named key.
func (p Params) Get(key string) (json.RawMessage, bool) {
	if v, ok := p[key]; ok {
		return v, true
	}
	for k, v := range p {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// String returns the member named key if it is a JSON string.
func (p Params) String(key string) (string, bool) {
	v, ok := p.Get(key)
	if !ok {
		return "", false
	}
	return stringOf(v)
}

// True reports whether the member named key is the JSON literal true.
func (p Params) True(key string) bool {
	v, ok := p.Get(key)
	return ok && string(v) == "true"
}

// Set sets member key to v, replacing a member of exactly that name. A
// member whose name differs only in case stays, as cJSON would keep both
// and a JSON parser takes the last of duplicate names.
func (p Params) Set(key string, v json.RawMessage) { p[key] = v }

// Marshal encodes the params object with sorted member names.
func (p Params) Marshal() []byte {
	if p == nil {
		return []byte("{}")
	}
	return marshal(map[string]json.RawMessage(p))
}

// Quote encodes s as a JSON string without HTML escaping.
func Quote(s string) json.RawMessage {
	return AppendQuote(nil, s)
}

// AppendQuote appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func AppendQuote(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				const hex = "0123456789abcdef"
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// marshal encodes v without HTML escaping and without a trailing newline.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only values built by this package reach here; they always encode.
		return []byte("null")
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// idOrNull is the id a reply carries: the request's id, or null.
func idOrNull(id json.RawMessage) json.RawMessage {
	if len(id) == 0 {
		return json.RawMessage("null")
	}
	return id
}

// appendReplyHead appends the start of a reply to id, up to the value of
// its member ("result" or "error"): {"jsonrpc":"2.0","id":id,"member":
func appendReplyHead(b []byte, id json.RawMessage, member string) []byte {
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, idOrNull(id)...)
	b = append(b, `,"`...)
	b = append(b, member...)
	return append(b, `":`...)
}

// ErrorReply builds {"jsonrpc":"2.0","id":id,"error":{"code":…,"message":…}}.
func ErrorReply(id json.RawMessage, code int, message string) []byte {
	b := appendReplyHead(make([]byte, 0, 96+len(message)), id, "error")
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = AppendQuote(b, message)
	return append(b, "}}"...)
}

// ErrorObjectReply builds a reply whose error member is the given object,
// as mod_verto sends when a verto.* method fails with its own response.
func ErrorObjectReply(id json.RawMessage, errObj []byte) []byte {
	return memberReply(id, "error", errObj)
}

// ResultReply builds a reply whose result member is the given JSON value.
func ResultReply(id json.RawMessage, result []byte) []byte {
	return memberReply(id, "result", result)
}

// memberReply builds a reply whose member is the given JSON value.
func memberReply(id json.RawMessage, member string, value []byte) []byte {
	b := appendReplyHead(make([]byte, 0, 48+len(value)), id, member)
	b = append(b, value...)
	return append(b, '}')
}

// Request builds a server request {"jsonrpc":"2.0","id":id,"method":…,"params":…}.
func Request(id uint64, method string, params []byte) []byte {
	b := make([]byte, 0, 64+len(method)+len(params))
	return AppendRequest(b, id, method, params)
}

// AppendRequest appends a server request to dst.
func AppendRequest(dst []byte, id uint64, method string, params []byte) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"method":`...)
	dst = AppendQuote(dst, method)
	dst = append(dst, `,"params":`...)
	if len(params) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, params...)
	}
	return append(dst, '}')
}

// Object builds a JSON object from alternating names and values, in order.
// Values are raw JSON. It is a small helper for fixed results.
func Object(kv ...any) []byte {
	b := []byte{'{'}
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendQuote(b, kv[i].(string))
		b = append(b, ':')
		switch v := kv[i+1].(type) {
		case json.RawMessage:
			b = append(b, v...)
		case []byte:
			b = append(b, v...)
		case string:
			b = AppendQuote(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case []string:
			b = AppendStrings(b, v)
		default:
			b = append(b, marshal(v)...)
		}
	}
	return append(b, '}')
}

// AppendStrings appends a JSON array of strings; a nil slice becomes [].
func AppendStrings(dst []byte, list []string) []byte {
	dst = append(dst, '[')
	for i, s := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendQuote(dst, s)
	}
	return append(dst, ']')
}

// WithMember returns the JSON value result with member key set to val the
// way mod_verto adds "sessid" to every result: objects get the member
// (replacing one of the same name), arrays get val appended, other values
// are returned unchanged.
func WithMember(result []byte, key string, val json.RawMessage) []byte {
	r := bytes.TrimSpace(result)
	if len(r) == 0 {
		return Object(key, val)
	}
	switch r[0] {
	case '{':
		if !bytes.Contains(r, []byte(key)) && r[len(r)-1] == '}' {
			// No member of that name: append without decoding. (A name
			// spelt with escapes would give a duplicate member; JSON
			// parsers take the last, which is the one set here.)
			out := make([]byte, 0, len(r)+len(key)+len(val)+4)
			out = append(out, r[:len(r)-1]...)
			if len(bytes.TrimSpace(r[1:len(r)-1])) > 0 {
				out = append(out, ',')
			}
			out = AppendQuote(out, key)
			out = append(out, ':')
			out = append(out, val...)
			return append(out, '}')
		}
		p, ok := ParseParams(r)
		if !ok {
			return r
		}
		p.Set(key, val)
		return p.Marshal()
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(r, &items); err != nil {
			return r
		}
		items = append(items, val)
		return marshal(items)
	}
	return r
}
