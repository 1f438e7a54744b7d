package hub

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"channels/internal/forwarded"
	"channels/internal/metrics"
	"channels/internal/verto"
)

// method is one JSON-RPC method. It returns the response object and
// whether the call succeeded: on success the response becomes the result
// (with "sessid" added), otherwise it becomes the error member as is — or,
// when nil, the error -32602 "Permission Denied", as in mod_verto.
type method func(c *conn, req *request) (resp []byte, ok bool)

// request is one request being handled.
type request struct {
	msg    verto.Message
	params verto.Params // decoded params when they are an object
	isObj  bool
}

// methodTable lists every method the hub implements, in one place. The
// mod_verto methods it lacks (calls and FreeSWITCH APIs: verto.invite,
// verto.attach, verto.bye, verto.answer, verto.modify, jsapi, fsapi) get
// -32601 like unknown ones.
func methodTable() map[string]method {
	return map[string]method{
		"login":             (*conn).login,
		"echo":              (*conn).echo,
		"verto.ping":        (*conn).ping,
		"verto.subscribe":   (*conn).subscribe,
		"verto.unsubscribe": (*conn).unsubscribe,
		"verto.broadcast":   (*conn).broadcast,
		"verto.info":        (*conn).info,
	}
}

// handleFrame answers one received frame: one reply for a single message,
// an array of replies for a batch, then runs the actions the requests
// left for after their replies (deliveries, reports, closing).
func (c *conn) handleFrame(data []byte) {
	// Bytes before anything else: parsing is what a flood of large frames
	// costs, whether or not it comes from a login.
	if !c.h.traffic.allowBytes(c.addrKey, len(data), time.Now()) {
		c.h.log.Warn("verto: byte rate exceeded", "client", c.addrKey, "addr", c.addr)
		c.h.opts.Metrics.BudgetRefused(metrics.BudgetRequestRate)
		c.stop(websocket.StatusPolicyViolation)
		return
	}
	f, err := verto.ParseFrame(data)
	if err != nil {
		if !c.allow(1) {
			c.overLimit()
			return
		}
		c.enqueue(verto.ErrorReply(nil, verto.CodeInvalid, verto.MsgInvalidRequest))
		return
	}
	if !c.allow(max(len(f.Items), 1)) {
		c.overLimit()
		return
	}
	if f.Batch && len(f.Items) > c.h.opts.MaxBatch {
		c.enqueue(verto.ErrorReply(nil, verto.CodeTooLarge, verto.MsgBatchTooLarge))
		return
	}
	if f.Batch {
		var b bytes.Buffer
		b.WriteByte('[')
		n := 0
		for i := range f.Items {
			if r := c.handleMessage(f.Message(i)); r != nil {
				if n > 0 {
					b.WriteByte(',')
				}
				b.Write(r)
				n++
			}
		}
		b.WriteByte(']')
		c.enqueue(b.Bytes())
	} else if r := c.handleMessage(f.Message(0)); r != nil {
		c.enqueue(r)
	}
	after := c.after
	c.after = nil
	for _, fn := range after {
		fn()
	}
	if c.authed && !c.ready { // mod_verto's attach_calls, once, after the frame
		c.ready = true
		c.enqueue(verto.Request(c.h.nextID(), verto.MethodClientReady, []byte(`{"reattached_sessions":[]}`)))
	}
}

func (c *conn) overLimit() {
	c.h.log.Warn("verto: request rate exceeded", "client", forwarded.LimitKey(c.addr), "addr", c.addr)
	c.h.opts.Metrics.BudgetRefused(metrics.BudgetRequestRate)
	c.stop(websocket.StatusPolicyViolation)
}

// handleMessage is mod_verto's process_jrpc: it returns the reply, or nil
// for a reply from the client.
func (c *conn) handleMessage(m verto.Message) []byte {
	if !m.Valid {
		return verto.ErrorReply(m.ID, verto.CodeInvalid, verto.MsgInvalidMessage)
	}
	if m.IsReply {
		return nil
	}
	c.h.opts.Metrics.Request(m.Method)
	req := &request{msg: m}
	req.params, req.isObj = verto.ParseParams(m.Params)

	if !c.authed || m.Method == "login" {
		if code, msg, ok := c.authenticate(req); !ok {
			return verto.ErrorReply(m.ID, code, msg)
		}
	}
	var fn method
	if m.HasMethod && c.perms.methods.allows(m.Method) {
		fn = c.h.methods[m.Method]
	}
	if fn == nil {
		return verto.ErrorReply(m.ID, verto.CodeMethodNotFound, verto.MsgInvalidMethod)
	}
	resp, ok := fn(c, req)
	if !ok {
		if resp == nil {
			return verto.ErrorReply(m.ID, -32602, "Permission Denied")
		}
		return verto.ErrorObjectReply(m.ID, resp)
	}
	if echo, has := req.params.Get("echoParams"); has && req.isObj {
		if s, isStr := stringValue(echo); string(echo) == "true" || (isStr && isTrue(s)) {
			resp = verto.WithMember(resp, "requestParams", m.Params)
		} else {
			resp = verto.WithMember(resp, "requestParams", echo)
		}
	}
	return verto.ResultReply(m.ID, verto.WithMember(resp, "sessid", verto.Quote(c.sessid)))
}

func stringValue(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// isTrue is FreeSWITCH's switch_true.
func isTrue(s string) bool {
	switch strings.ToLower(s) {
	case "yes", "on", "true", "t", "enabled", "enable", "active", "allow":
		return true
	}
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
		n = n*10 + int(r-'0')
		if n > 0 {
			return true
		}
	}
	return false
}

// authenticate is mod_verto's check_auth followed by binding the session:
// it runs for every request before login, and for every login.
func (c *conn) authenticate(req *request) (code int, msg string, ok bool) {
	h := c.h
	if req.msg.Params == nil {
		h.opts.Metrics.LoginFailed(metrics.LoginMissingParams)
		return verto.CodeAuthFailed, verto.MsgMissingParams, false
	}
	login, _ := req.params.String("login")
	if login == "" {
		return verto.CodeAuthRequired, verto.MsgAuthRequired, false
	}
	passwd, _ := req.params.String("passwd")
	if passwd == "" {
		h.loginReport(login, "", false, c.addr)
		h.opts.Metrics.LoginFailed(metrics.LoginMissingPassword)
		return verto.CodeAuthFailed, verto.MsgMissingPasswd, false
	}
	user, found, err := h.lookup(c.ctx, login, c.stopping.Load)
	if err != nil {
		// Not a "no": the directory could not be asked (its database
		// down). The browser reconnects with its backoff (outage.go).
		h.log.Warn("verto: login not checked: gateway failing", "user", login, "addr", c.addr, "err", err)
		h.opts.Metrics.LoginFailed(metrics.LoginUnavailable)
		return verto.CodeUnavailable, verto.MsgUnavailable, false
	}
	if !found {
		h.loginReport(login, "", false, c.addr)
		h.opts.Metrics.LoginFailed(metrics.LoginUnknownUser)
		return verto.CodeAuthFailed, verto.MsgLoginIncorrect, false
	}
	if !user.passwordOK(login, h.opts.Domain, passwd) {
		h.loginReport(login, "", false, c.addr)
		h.opts.Metrics.LoginFailed(metrics.LoginBadPassword)
		return verto.CodeAuthFailed, verto.MsgAuthFailure, false
	}
	uid := login + "@" + h.opts.Domain
	perms := permissionsOf(user)
	l := loginOf(uid, c.addr, perms)

	if c.authed { // a second login on this socket keeps its session
		if uid != c.uid {
			// mod_verto lets a socket change user; the hub does not, so that
			// the session, the limits and the reports stay those of one user.
			h.opts.Metrics.LoginFailed(metrics.LoginOtherUser)
			return verto.CodeAuthFailed, verto.MsgOtherUser, false
		}
		h.reg.relogin(c, l)
		if h.opts.Fabric != nil {
			h.fabricReady(c.ctx)
		}
		c.perms = perms
		h.opts.Metrics.Login()
		return 0, "", true
	}

	l.sessid, _ = req.params.String("sessid")
	chosen := l.sessid != "" // a sessid the client chose may be attached on another hub
	if l.sessid == "" {
		l.sessid = uuid.NewString()
	}
	// A refused login changes nothing: no session taken over, nobody told.
	maxUsers, res := h.admit(c.ctx, &l)
	var prev *conn
	if res == attached {
		res, prev = h.reg.attach(c, l, h.opts.MaxConnsPerClient, maxUsers)
		if res != attached && l.placed {
			h.opts.Fabric.Release(uid)
		}
	}
	switch res {
	case tooManyConns:
		c.after = append(c.after, func() { c.stop(websocket.StatusPolicyViolation) })
		h.opts.Metrics.LoginFailed(metrics.LoginTooManyConnections)
		return verto.CodeAuthFailed, verto.MsgTooManyConns, false
	case channelFull:
		h.log.Info("verto: channel full", "user", login, "max", h.opts.MaxClientsPerChannel)
		c.after = append(c.after, func() { c.stop(websocket.StatusPolicyViolation) })
		h.opts.Metrics.LoginFailed(metrics.LoginChannelFull)
		return verto.CodeAuthFailed, verto.MsgChannelFull, false
	case limitUnknown:
		h.log.Info("verto: clients per channel cannot be counted now", "user", login)
		c.after = append(c.after, func() { c.stop(websocket.StatusTryAgainLater) })
		h.opts.Metrics.LoginFailed(metrics.LoginLimitUnknown)
		return verto.CodeAuthFailed, verto.MsgLimitUnknown, false
	case userRemoved:
		// Refused as the directory refuses it (it will, once its answers
		// catch up), and closed with the code that tells the page why.
		h.log.Info("verto: login of a removed member refused", "user", login, "addr", c.addr)
		c.after = append(c.after, func() { c.stopWith(StatusRemoved, ReasonRemoved) })
		h.opts.Metrics.LoginFailed(loginRemoved)
		return verto.CodeAuthFailed, verto.MsgLoginIncorrect, false
	}
	if prev != nil {
		prev.enqueue(verto.Request(h.nextID(), verto.MethodPunt, nil))
		prev.stop(websocket.StatusNormalClosure)
	}
	if h.opts.Fabric != nil {
		// The reply means every message sent after it arrives, from any
		// hub: the interest it implies must be in effect first. Only then
		// is a takeover told to the others, so that of two logins of one
		// session on two hubs at once, one hears the other's (fabric.go).
		h.fabricReady(c.ctx)
		if chosen {
			h.opts.Fabric.Punt(uid, l.sessid, l.at)
		}
	}
	c.authed = true
	c.id, c.uid, c.sessid, c.perms = login, uid, l.sessid, perms
	h.opts.Metrics.Login()
	return 0, "", true
}

// loginOf is what the registry keeps of a login.
func loginOf(uid, addr string, p permissions) login {
	l := login{uid: uid, addr: addr}
	if p.channels != nil {
		l.homes = make([]string, 0, len(p.channels))
		for ch := range p.channels {
			l.homes = append(l.homes, ch)
		}
	}
	return l
}

func (c *conn) login(req *request) ([]byte, bool) {
	login, _ := req.params.String("login")
	sessid, _ := req.params.String("sessid")
	c.after = append(c.after, func() { c.h.loginReport(login, sessid, true, c.addr) })
	return verto.Object("message", verto.MsgLoggedIn), true
}

func (c *conn) echo(req *request) ([]byte, bool) {
	if req.msg.Params != nil {
		return req.msg.Params, true
	}
	return paramsMissing(), false
}

func paramsMissing() []byte {
	return verto.Object("message", verto.MsgParamsMissing, "code", verto.CodeSessionError)
}

func (c *conn) ping(*request) ([]byte, bool) {
	return verto.Object("message", verto.MsgPong), true
}

// eventChannels lists the eventChannel param: a string, or the strings of
// an array.
func eventChannels(req *request) []string {
	raw, ok := req.params.Get("eventChannel")
	if !ok {
		return nil
	}
	if s, ok := stringValue(raw); ok {
		return []string{s}
	}
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil
	}
	var out []string
	for _, it := range items {
		if s, ok := stringValue(it); ok {
			out = append(out, s)
		}
	}
	return out
}

func (c *conn) subscribe(req *request) ([]byte, bool) {
	var subs, errs, exist []string
	for _, ch := range eventChannels(req) {
		if !c.perms.channelAllowed(ch) {
			errs = append(errs, ch)
			continue
		}
		if subs == nil {
			subs = []string{}
		}
		switch c.h.reg.subscribe(c, ch, c.h.opts.MaxSubscriptions) {
		case subscribed:
			subs = append(subs, ch)
		case alreadySubscribed:
			exist = append(exist, ch)
		case tooManySubs:
			errs = append(errs, ch) // refused like a channel the user may not join
		}
	}
	if len(subs) > 0 && c.h.opts.Fabric != nil {
		// The reply means every event sent after it arrives, from any hub.
		c.h.fabricReady(c.ctx)
	}
	resp := listObject("subscribedChannels", subs, "unauthorizedChannels", errs, "alreadySubscribedChannels", exist)
	return resp, subs != nil
}

func (c *conn) unsubscribe(req *request) ([]byte, bool) {
	var subs, errs []string
	for _, ch := range eventChannels(req) {
		if c.h.reg.unsubscribe(c, ch) {
			subs = append(subs, ch)
		} else {
			errs = append(errs, ch)
		}
	}
	resp := listObject("unsubscribedChannels", subs, "notSubscribedChannels", errs)
	return resp, !(errs != nil && subs == nil)
}

// listObject builds an object of the named lists that are not nil.
func listObject(kv ...any) []byte {
	var args []any
	for i := 0; i+1 < len(kv); i += 2 {
		if l := kv[i+1].([]string); l != nil {
			args = append(args, kv[i], l)
		}
	}
	return verto.Object(args...)
}

func (c *conn) broadcast(req *request) ([]byte, bool) {
	channel, ok := req.params.String("eventChannel")
	if !ok {
		return verto.Object("message", verto.MsgNoEventChannel, "code", verto.CodeSessionError), true
	}
	if !c.perms.channelAllowed(channel) {
		return verto.Object("message", verto.MsgPermissionDenied, "code", verto.CodeSessionError), true
	}
	if n := len(req.msg.Params); n > c.h.opts.MaxEventBytes {
		return verto.Object("message", verto.MsgEventTooLarge, "code", verto.CodeTooLarge), false
	} else if !c.h.budgets.allowBroadcast(c.uid, n, time.Now()) {
		c.h.opts.Metrics.BudgetRefused(metrics.BudgetBroadcast)
		return verto.Object("message", verto.MsgRateLimited, "code", verto.CodeRateLimited), false
	}
	p := req.params
	p.Set("userid", verto.Quote(c.uid))
	p.Set("sessid", verto.Quote(c.sessid))
	if c.perms.display != "" {
		p.Set("fromDisplay", verto.Quote(c.perms.display))
	}
	if p.True("localBroadcast") {
		c.h.opts.Metrics.Broadcast()
		// Without localBroadcast mod_verto hands the event to FreeSWITCH's
		// event-channel bus, where (as recorded) no Verto subscriber gets it.
		c.after = append(c.after, func() { c.h.fanOut(channel, p) })
	}
	return []byte("{}"), true
}

// fanOut is mod_verto's write_event for a local broadcast: every
// subscriber of channel, then — for "a.b" — every subscriber of "a", gets a
// verto.event with its subscription's eventSerno and subscribedChannel.
func (h *Hub) fanOut(channel string, p verto.Params) {
	delete(p, "eventSerno")
	delete(p, "subscribedChannel")
	full := p.Marshal()
	if h.opts.Fabric != nil {
		// Out first, so that the other hubs' fan-outs overlap this one's.
		sender, _ := p.String("userid")
		h.opts.Fabric.Broadcast(sender, channel, full)
	}
	h.deliverEvent(channel, full[:len(full)-1]) // open object: members follow
}

// deliverEvent is fanOut's delivery to the local subscribers, common being
// the event's params as an object still open for the members each
// subscription adds. It keeps nothing of common (a fabric's buffer).
func (h *Hub) deliverEvent(channel string, common []byte) {
	var body []byte // built once there is a subscriber, shared by all
	h.writeEvent(channel, common, &body)
	if main, _, ok := strings.Cut(channel, "."); ok {
		h.writeEvent(main, common, &body)
	}
}

// writeEvent queues the event for every subscriber of channel: one frame
// shared by all of them (frame.go), each queue entry adding only the id and
// eventSerno of its copy; the writers complete the frames as they go out.
func (h *Hub) writeEvent(channel string, common []byte, body *[]byte) {
	var ev *shared
	h.reg.eachSub(channel, func(s *sub) {
		if ev == nil {
			if *body == nil {
				b := make([]byte, 0, len(common)+48)
				b = append(b, `,"method":"verto.event","params":`...)
				b = append(b, common...)
				if len(common) > 1 {
					b = append(b, ',')
				}
				*body = append(b, `"eventSerno":`...)
			}
			tail := make([]byte, 0, len(s.channel)+25)
			tail = append(tail, `,"subscribedChannel":`...)
			tail = verto.AppendQuote(tail, s.channel)
			ev = h.queued.share(*body, append(tail, "}}"...), true)
		}
		s.c.deliver(outFrame{sh: ev, id: h.nextID(), serno: s.serno.Add(1) - 1})
	})
	if ev != nil {
		h.queued.unshare(ev)
	}
}

func appendUint(b []byte, n uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// info is mod_verto's verto.info for direct messages: msg {to, body} fires
// a MESSAGE event, which the Channels relay script turns into the chat API
// call verto|<from_user>|<to>@<domain>|<body>.
func (c *conn) info(req *request) ([]byte, bool) {
	if req.msg.Params == nil {
		return paramsMissing(), false
	}
	rawMsg, ok := req.params.Get("msg")
	if !ok {
		return []byte("{}"), true
	}
	msg, _ := verto.ParseParams(rawMsg)
	to, _ := msg.String("to")
	body, _ := msg.String("body")
	if i := strings.IndexByte(to, '+'); i >= 0 {
		to = to[i+1:] // "proto+to": the MESSAGE event carries the part after +
	}
	if to == "" || body == "" {
		return verto.Object("message", verto.MsgInvalidInfo), false
	}
	inDialog := false
	if v, ok := msg.Get("inDialog"); ok {
		s, isStr := stringValue(v)
		inDialog = string(v) == "true" || (isStr && isTrue(s))
	}
	if inDialog { // in-dialog messages go to the call, never to the relay
		return verto.Object("message", verto.MsgSent), true
	}
	if len(body) > c.h.opts.MaxMessageBytes {
		return verto.Object("message", verto.MsgMessageTooLarge, "code", verto.CodeTooLarge), false
	}
	// Read as the relay reads it once, for both the busy check and the relay.
	from, target, text, relayable := c.h.relayArgs(c.id, to, body)
	homes := c.perms.channels
	if relayable && c.h.recipientBusy(homes, target) {
		c.h.opts.Metrics.BudgetRefused(metrics.BudgetRecipientBusy)
		return verto.Object("message", verto.MsgRecipientBusy, "code", verto.CodeRateLimited), false
	}
	if relayable && c.h.unreachable(homes, target) {
		return verto.Object("message", verto.MsgUnreachable, "code", verto.CodeUnreachable), false
	}
	if !c.h.budgets.allowMessage(c.uid, len(body), time.Now()) {
		c.h.opts.Metrics.BudgetRefused(metrics.BudgetMessage)
		return verto.Object("message", verto.MsgRateLimited, "code", verto.CodeRateLimited), false
	}
	if relayable { // SENT either way, as the relay script answers nothing
		c.h.opts.Metrics.Relayed()
		c.after = append(c.after, func() { c.h.relay(from, homes, target, text) })
	}
	return verto.Object("message", verto.MsgSent), true
}

// relayArgs is the relay's reading of a direct message: the chat API's
// "verto|from|to@domain|body" split on '|' (so a body "a|b" arrives as
// "a").
func (h *Hub) relayArgs(fromUser, to, body string) (from, target, text string, ok bool) {
	if !strings.Contains(to, "@") {
		to += "@" + h.opts.Domain
	}
	// Only the first four fields count; the fifth holds the rest unsplit.
	args := strings.SplitN("verto|"+fromUser+"|"+to+"|"+body, "|", 5)
	if len(args) < 4 || args[1] == "" || args[2] == "" || args[3] == "" {
		return "", "", "", false
	}
	return args[1], args[2], args[3], true
}

// recipientBusy reports whether a connection of target (id@domain) that a
// sender allowed fromHomes may reach has a quarter of its queue's frames
// or bytes waiting — half of what others may fill: the sender is refused
// rather than the message dropped later, however many members send to it
// at once.
func (h *Hub) recipientBusy(fromHomes permSet, target string) bool {
	busy := false
	h.reg.eachUserConn(target, func(t *conn, homes []string) {
		if sharesChannel(fromHomes, homes) && h.backlogged(t) {
			busy = true
		}
	})
	if !busy && h.opts.Fabric != nil {
		// A connection of the target on another hub that said so lately.
		if homes, remote := h.opts.Fabric.Busy(target); remote && sharesChannel(fromHomes, homes) {
			busy = true
		}
	}
	return busy
}

// backlogged reports whether t has a quarter of its queue's frames or
// bytes waiting: direct messages to it are refused.
func (h *Hub) backlogged(t *conn) bool {
	frames, bytes := t.out.backlog()
	return frames > h.opts.QueueSize/4 || bytes > h.opts.QueueBytes/4
}

// relay delivers a direct message as the chat API and mod_verto's
// chat_send do, once relayArgs has read it: one verto.info request — one
// id — to every connection logged in as target (id@domain) that shares an
// event channel with the sender (mod_verto relays to anyone; the hub
// keeps messages inside a channel).
func (h *Hub) relay(from string, fromHomes permSet, target, body string) {
	h.relayLocal(from, fromHomes, target, body)
	if h.opts.Fabric != nil {
		// Whatever this hub knows of the target elsewhere: a connection of
		// it on another hub may be newer than the news of it, and its
		// login's reply promised it every message sent after it.
		h.relayRemote(from, fromHomes, target, body)
	}
}

// relayLocal is relay to the target's connections on this hub.
func (h *Hub) relayLocal(from string, fromHomes permSet, target, body string) {
	var to [4]*conn
	recipients := to[:0]
	h.reg.eachUserConn(target, func(t *conn, homes []string) {
		if sharesChannel(fromHomes, homes) {
			recipients = append(recipients, t)
		}
	})
	if len(recipients) > 0 {
		// Built only for a recipient here (a target on another hub costs
		// this one nothing), in one allocation, outside the registry lock.
		f := make([]byte, 0, len(body)+len(from)+len(target)+128)
		f = append(f, `{"jsonrpc":"2.0","id":`...)
		f = appendUint(f, h.nextID())
		f = append(f, `,"method":`...)
		f = verto.AppendQuote(f, verto.MethodInfo)
		f = append(f, `,"params":{"msg":{"body":`...)
		f = verto.AppendQuote(f, body)
		f = append(f, `,"from":`...)
		f = verto.AppendQuote(f, from)
		f = append(f, `,"to":`...)
		f = verto.AppendQuote(f, target)
		f = append(f, "}}}"...)
		msg := h.queued.share(f, nil, false)
		for _, t := range recipients {
			t.deliver(outFrame{sh: msg})
		}
		h.queued.unshare(msg)
	}
}

// sharesChannel reports whether a sender allowed the channels in from may
// reach a connection allowed those in to (nil: any channel).
func sharesChannel(from permSet, to []string) bool {
	if from == nil || to == nil {
		return true
	}
	for _, ch := range to {
		if from.allows(ch) {
			return true
		}
	}
	return false
}
