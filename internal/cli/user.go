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

// userCmd: user add [--admin] NAME | user set-password NAME | user list.
func userCmd(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		return usagef("usage: channels user add|set-password|list …")
	}
	sub, args := args[0], args[1:]
	var admin bool
	var extra func(*flag.FlagSet)
	if sub == "add" {
		extra = func(fs *flag.FlagSet) { fs.BoolVar(&admin, "admin", false, "the user administers every channel") }
	}
	cfg, pos, err := loadConfig("channels user "+sub, args, env, extra)
	if err != nil {
		return err
	}
	switch sub {
	case "add", "set-password":
		if err := wantArgs("user "+sub, pos, 1, "NAME"); err != nil {
			return err
		}
		name := pos[0]
		if err := checkUserName(name); err != nil {
			return err
		}
		pw, err := readPassword(env, "Password for "+name)
		if err != nil {
			return err
		}
		hash, err := password.Hash(pw)
		if err != nil {
			return err
		}
		st, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		if sub == "add" {
			if _, err := st.CreateUser(ctx, name, hash, admin); errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("user %q already exists (change its password with: channels user set-password %s)", name, name)
			} else if err != nil {
				return fmt.Errorf("add user %q: %w", name, err)
			}
			role := "user"
			if admin {
				role = "administrator"
			}
			fmt.Fprintf(env.Stdout, "Added %s %s.\n", role, name)
			return nil
		}
		if err := st.SetUserPassword(ctx, name, hash); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user %q", name)
		} else if err != nil {
			return fmt.Errorf("set password of %q: %w", name, err)
		}
		fmt.Fprintf(env.Stdout, "Changed the password of %s.\n", name)
		return nil

	case "list":
		if err := wantArgs("user list", pos, 0, ""); err != nil {
			return err
		}
		st, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		users, err := st.ListUsers(ctx)
		if err != nil {
			return fmt.Errorf("list users: %w", err)
		}
		return writeTable(env.Stdout, "NAME\tADMIN\tCREATED", users, func(u store.User) string {
			return fmt.Sprintf("%s\t%v\t%s", u.Name, u.Admin, listTime(u.Created))
		})
	}
	return usagef("unknown command \"user %s\"; want add, set-password or list", sub)
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
