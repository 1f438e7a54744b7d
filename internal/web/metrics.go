package web

import (
	"context"

	"channels/internal/metrics"
)

// signInFailed logs and counts a sign-in refused for its name or
// password. The log line is for fail2ban (docs/OPERATIONS.md): WARN, a
// fixed message, the client's rate-limiting key (its address, or its /64)
// and the name typed — never the password.
func (s *Server) signInFailed(ctx context.Context, client, name string, unknownUser bool) {
	reason := metrics.SignInWrongPassword
	if unknownUser {
		reason = metrics.SignInUnknownUser
	}
	s.log.WarnContext(ctx, "sign-in failed", "client", client, "name", name, "reason", reason)
	s.metrics.SignInFailed(reason)
}

// signInLimited logs and counts a sign-in a limit refused (one of the
// metrics' LimitSignIn* names). Its line is for fail2ban too, but for the
// per-name limit, which strangers can spend for anyone's name from their
// own addresses: its owner then meets it, and a ban must not follow, so
// its line has a message of its own that the filter in
// docs/OPERATIONS.md leaves out.
func (s *Server) signInLimited(ctx context.Context, client, name, limit string) {
	msg := "sign-in rate limited"
	if limit == metrics.LimitSignInName {
		msg = "sign-in name rate limited"
	}
	s.log.WarnContext(ctx, msg, "client", client, "name", name, "limit", limit)
	s.metrics.RateLimited(limit)
}
