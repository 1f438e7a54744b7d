package fsapi_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"channels/internal/directory"
	"channels/internal/fixtures"
	"channels/internal/fsapi"
	"channels/internal/store/storetest"
)

// boomHandler fails every login report of the login "boom" (its database
// down, say).
type boomHandler struct{}

func (boomHandler) Requires() []fsapi.Pair {
	return []fsapi.Pair{{Key: "action", Value: fsapi.ActionClientLogin}, {Key: "login", Value: "boom"}}
}

func (boomHandler) Process(context.Context, url.Values) (fsapi.Document, error) {
	return fsapi.Document{}, errors.New("boom")
}

// TestRespondBatch: reports given together are applied in order by the
// directory handlers in one transaction; when one of them fails, they are
// taken one by one and only it fails; when the transaction cannot
// commit, none is applied and every one fails.
func TestRespondBatch(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Store
			reg := fsapi.NewRegistry(nil)
			reg.SetBatcher(st.Batch)
			reg.Add(boomHandler{})
			if err := directory.Register(reg, directory.Options{Store: st, Domain: fixtures.Domain}); err != nil {
				t.Fatal(err)
			}
			_, ids := storetest.ClientIDs(t, st, 2)
			login := func(id, addr string) url.Values {
				return url.Values{"action": {fsapi.ActionClientLogin}, "login": {id}, "success": {"1"}, "address": {addr}}
			}
			logout := func(id, addr string) url.Values {
				return url.Values{"action": {fsapi.ActionClientDisconnect}, "login": {id + "@" + fixtures.Domain}, "address": {addr}}
			}
			connected := func(id string) bool {
				t.Helper()
				c, err := st.ClientByID(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				return !c.Connected.IsZero()
			}

			q := st.Queries()
			errs := reg.RespondBatch(ctx, []url.Values{
				login(ids[0], "192.0.2.1:1"), logout(ids[0], "192.0.2.1:1"), // in order: out
				login(ids[1], "192.0.2.1:2"),
				login("unknown", "192.0.2.1:3"), // not found: no failure
			})
			if n := st.Queries() - q; n != 0 { // all in the transaction (the channel's read too)
				t.Errorf("%d statements outside the batch's transaction", n)
			}
			for i, err := range errs {
				if err != nil {
					t.Errorf("report %d: %v", i, err)
				}
			}
			if connected(ids[0]) || !connected(ids[1]) {
				t.Errorf("after the batch: connected %v %v, want false true", connected(ids[0]), connected(ids[1]))
			}

			// One report that fails does not fail the others: the batch
			// is taken again one by one.
			errs = reg.RespondBatch(ctx, []url.Values{logout(ids[1], "192.0.2.1:2"), login("boom", ""), login(ids[0], "192.0.2.1:4")})
			if errs[0] != nil || !errors.Is(errs[1], fsapi.ErrFailed) || errs[2] != nil {
				t.Errorf("a batch with one failing report: %v, want nil, ErrFailed, nil", errs)
			}
			if !connected(ids[0]) || connected(ids[1]) {
				t.Errorf("after a batch with one failing report: connected %v %v, want true false", connected(ids[0]), connected(ids[1]))
			}

			// A transaction that cannot commit applies none, and fails
			// every one.
			failing := fsapi.NewRegistry(nil)
			failing.SetBatcher(func(ctx context.Context, fn func(context.Context) error) error {
				return st.Batch(ctx, func(ctx context.Context) error {
					if err := fn(ctx); err != nil {
						return err
					}
					return errors.New("commit refused") // rolled back, as a failed commit is
				})
			})
			if err := directory.Register(failing, directory.Options{Store: st, Domain: fixtures.Domain}); err != nil {
				t.Fatal(err)
			}
			errs = failing.RespondBatch(ctx, []url.Values{logout(ids[0], "192.0.2.1:4"), login(ids[1], "192.0.2.1:5")})
			for i, err := range errs {
				if !errors.Is(err, fsapi.ErrFailed) {
					t.Errorf("report %d of a batch that could not commit: %v, want ErrFailed", i, err)
				}
			}
			if !connected(ids[0]) || connected(ids[1]) {
				t.Errorf("after a batch that could not commit: connected %v %v, want true false (as before it)", connected(ids[0]), connected(ids[1]))
			}
		})
	}
}
