package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"channels/internal/password"
	"channels/internal/store"
)

// Bounds on user names and passwords.
const (
	maxUserName    = 64
	minPasswordLen = 8
	maxPasswordLen = 1024
)

func userAddSetup(fs *flag.FlagSet) func(context.Context, call) error {
	admin := fs.Bool("admin", false, "the user administers every channel")
	return func(ctx context.Context, c call) error { return setUser(ctx, c, true, *admin) }
}

func userSetPassword(ctx context.Context, c call) error { return setUser(ctx, c, false, false) }

// setUser adds a user (add) or changes its password.
func setUser(ctx context.Context, c call, add, admin bool) error {
	if err := wantArgs(c.args, 1, "NAME"); err != nil {
		return err
	}
	name := c.args[0]
	if err := checkUserName(name); err != nil {
		return err
	}
	pw, err := readPassword(ctx, c.env, "Password for "+name)
	if err != nil {
		return err
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if add {
		if _, err := st.CreateUser(ctx, name, hash, admin); errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("user %q already exists (change its password with: channels user set-password %s)", name, name)
		} else if err != nil {
			return fmt.Errorf("add user %q: %w", name, err)
		}
		role := "user"
		if admin {
			role = "administrator"
		}
		fmt.Fprintf(c.env.Stdout, "Added %s %s.\n", role, name)
		return nil
	}
	if err := st.SetUserPassword(ctx, name, hash); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q", name)
	} else if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	fmt.Fprintf(c.env.Stdout, "Changed the password of %s.\n", name)
	return nil
}

func userList(ctx context.Context, c call, st *store.Store) error {
	users, err := st.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	return writeTable(c.env.Stdout, "NAME\tADMIN\tCREATED", users, func(u store.User) string {
		return fmt.Sprintf("%s\t%v\t%s", u.Name, u.Admin, listTime(u.Created))
	})
}

// checkUserName accepts names people can type into the sign-in form: at
// most 64 characters, no spaces or control characters.
func checkUserName(name string) error {
	switch {
	case name == "":
		return usagef("the user name must not be empty")
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxUserName:
		return usagef("the user name must be valid text of at most %d characters", maxUserName)
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return usagef("the user name must not contain spaces or control characters")
	}
	return nil
}
