// Package conflayer layers a daemon's settings the same way for the
// coordinator and the agent:
//
//	defaults → --config FILE (JSON) → environment → command-line flags
//
// and the caller then validates the result. Every setting is a flag, and its
// flag name is its key in every layer: the file key is the flag name as
// written on the command line ("data-dir"), the environment variable is a
// daemon prefix plus the name in upper snake case (HOSTPLANE_DATA_DIR for the
// coordinator, HOSTPLANE_AGENT_DATA_DIR for the agent, so both can share a
// host's environment). A daemon may accept older file keys as aliases (the
// agent's snake_case keys, "data_dir").
//
// File values: a string is used as given, a number or boolean as written, a
// list of strings is joined with commas (list flags split on them), null
// leaves the setting as it was. An empty environment variable is ignored.
package conflayer

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Flags is a set of flags bound to a configuration: setting one changes the
// configuration.
type Flags interface {
	// Names lists the flags.
	Names() []string
	Has(name string) bool
	Set(name, value string) error
}

// Setting is one flag given on the command line.
type Setting struct{ Name, Value string }

// Layers are the sources laid over the defaults (the flags' current values).
type Layers struct {
	// File is the --config file ("" for none).
	File string
	// Aliases maps older file keys to flag names.
	Aliases map[string]string
	// EnvPrefix starts every environment variable ("HOSTPLANE_").
	EnvPrefix string
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// CommandLine are the flags the user gave (StdVisited, PflagVisited);
	// names the set does not hold (--config) are skipped.
	CommandLine []Setting
}

// Load applies the layers to dst in order: file, environment, command line.
func Load(dst Flags, l Layers) error {
	if l.File != "" {
		if err := File(dst, l.File, l.Aliases); err != nil {
			return err
		}
	}
	if err := Env(dst, l.EnvPrefix, l.Getenv); err != nil {
		return err
	}
	for _, s := range l.CommandLine {
		if !dst.Has(s.Name) {
			continue
		}
		if err := dst.Set(s.Name, s.Value); err != nil {
			return fmt.Errorf("flag --%s: %w", s.Name, err)
		}
	}
	return nil
}

// EnvName is the environment variable of a flag.
func EnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// SnakeAliases maps each flag name's snake_case spelling to it ("data_dir" →
// "data-dir"), for config files written with snake_case keys.
func SnakeAliases(dst Flags) map[string]string {
	out := map[string]string{}
	for _, n := range dst.Names() {
		if s := strings.ReplaceAll(n, "-", "_"); s != n {
			out[s] = n
		}
	}
	return out
}

// File applies a JSON config file: an object whose keys are flag names (or
// aliases of them).
func File(dst Flags, path string, aliases map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if err := Decode(dst, b, aliases); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Decode applies the JSON object b (a config file's content) to dst.
func Decode(dst Flags, b []byte, aliases map[string]string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if raw == nil {
		return errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err == nil {
		return errors.New("data after the JSON object")
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys) // errors come out the same on every run
	from := map[string]string{}
	for _, k := range keys {
		name := k
		if a, ok := aliases[k]; ok && !dst.Has(k) {
			name = a
		}
		if !dst.Has(name) {
			return fmt.Errorf("unknown setting %q", k)
		}
		if prev, dup := from[name]; dup {
			return fmt.Errorf("%q and %q set the same setting", prev, k)
		}
		from[name] = k
		v, skip, err := value(raw[k])
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if skip {
			continue
		}
		if err := dst.Set(name, v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// value turns a JSON value into a flag value.
func value(r json.RawMessage) (v string, skip bool, err error) {
	r = bytes.TrimSpace(r)
	switch {
	case len(r) == 0 || string(r) == "null":
		return "", true, nil
	case r[0] == '"':
		err = json.Unmarshal(r, &v)
		return v, false, err
	case r[0] == '[':
		var list []string
		if err := json.Unmarshal(r, &list); err != nil {
			return "", false, errors.New("want a list of strings")
		}
		return strings.Join(list, ","), false, nil
	case r[0] == '{':
		return "", false, errors.New("want a string, number, boolean or list of strings, not an object")
	}
	return string(r), false, nil // a number or a boolean, as written
}

// Env applies PREFIX_FLAG_NAME variables; an empty one is ignored.
func Env(dst Flags, prefix string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, n := range dst.Names() {
		env := EnvName(prefix, n)
		if v := getenv(env); v != "" {
			if err := dst.Set(n, v); err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
		}
	}
	return nil
}

// Std adapts a standard library flag set.
func Std(fs *flag.FlagSet) Flags { return stdFlags{fs} }

type stdFlags struct{ fs *flag.FlagSet }

func (s stdFlags) Names() []string {
	var out []string
	s.fs.VisitAll(func(f *flag.Flag) { out = append(out, f.Name) })
	return out
}
func (s stdFlags) Has(name string) bool         { return s.fs.Lookup(name) != nil }
func (s stdFlags) Set(name, value string) error { return s.fs.Set(name, value) }

// Pflag adapts a pflag (cobra) flag set.
func Pflag(fs *pflag.FlagSet) Flags { return pflagFlags{fs} }

type pflagFlags struct{ fs *pflag.FlagSet }

func (p pflagFlags) Names() []string {
	var out []string
	p.fs.VisitAll(func(f *pflag.Flag) { out = append(out, f.Name) })
	return out
}
func (p pflagFlags) Has(name string) bool         { return p.fs.Lookup(name) != nil }
func (p pflagFlags) Set(name, value string) error { return p.fs.Set(name, value) }

// StdVisited lists the flags set on a parsed standard flag set.
func StdVisited(fs *flag.FlagSet) []Setting {
	var out []Setting
	fs.Visit(func(f *flag.Flag) { out = append(out, Setting{f.Name, f.Value.String()}) })
	return out
}

// PflagVisited lists the flags set on a parsed pflag flag set.
func PflagVisited(fs *pflag.FlagSet) []Setting {
	var out []Setting
	fs.Visit(func(f *pflag.Flag) { out = append(out, Setting{f.Name, f.Value.String()}) })
	return out
}

// SplitList is the items of a comma-separated list value ("a, b,,c" is a,
// b, c): each trimmed of white space, empty ones left out; nil for none.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
