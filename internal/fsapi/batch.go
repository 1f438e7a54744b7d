package fsapi

import (
	"context"
	"fmt"
	"net/url"
)

// Batcher runs fn so that the database writes fn makes are one
// transaction: applied together when fn returns nil, none of them
// otherwise. (*store.Store).Batch is one.
type Batcher func(ctx context.Context, fn func(ctx context.Context) error) error

// MaxBatch bounds the reports RespondBatch applies in one transaction,
// so that one batch never holds a database connection for long.
const MaxBatch = 64

// SetBatcher makes RespondBatch apply its reports in one transaction of
// b. Call it while assembling the app, before the registry serves.
func (r *Registry) SetBatcher(b Batcher) { r.batch = b }

// RespondBatch takes several login and disconnect reports, in order, and
// says for each whether it failed (ErrFailed, as RespondErr) rather than
// was answered; the answers themselves are not kept (the embedded hub,
// like the Lua hooks, ignores them). With a Batcher the reports are
// applied in one transaction, by the same handlers that answer them one
// at a time. If a report in it fails, none is applied and they are taken
// again one by one, so that one report that cannot be applied (a
// constraint, a handler's bug) fails alone rather than with every report
// batched with it, again at each retry; if the transaction itself cannot
// begin or commit, or the context ends, every one fails. Without a
// Batcher, with one form, with more than MaxBatch or with a form that is
// not a report, they are answered one by one.
func (r *Registry) RespondBatch(ctx context.Context, forms []url.Values) []error {
	errs := make([]error, len(forms))
	one := func() []error {
		for i, f := range forms {
			_, errs[i] = r.RespondErr(ctx, f)
		}
		return errs
	}
	if r.batch == nil || len(forms) < 2 || len(forms) > MaxBatch || !allReports(forms) {
		return one()
	}
	inside := false // a report failed, rather than the transaction
	err := r.batch(ctx, func(ctx context.Context) error {
		for i, f := range forms {
			if _, _, res := r.respond(ctx, f); res == failed {
				inside = true
				return fmt.Errorf("report %d of %d: %w", i+1, len(forms), ErrFailed)
			}
		}
		return nil
	})
	if err == nil {
		return errs
	}
	if ctx.Err() != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("%w (batch of %d: %v)", ErrFailed, len(forms), err)
		}
		return errs
	}
	if inside {
		r.logger.WarnContext(ctx, "fsapi: a report failed in a batch; taking them one by one", "reports", len(forms), "err", err)
		return one()
	}
	r.logger.ErrorContext(ctx, "fsapi: batch of reports failed; none applied", "reports", len(forms), "err", err)
	for i := range errs {
		errs[i] = fmt.Errorf("%w (batch of %d: %v)", ErrFailed, len(forms), err)
	}
	return errs
}

func allReports(forms []url.Values) bool {
	for _, f := range forms {
		if !isReport(f) {
			return false
		}
	}
	return true
}
