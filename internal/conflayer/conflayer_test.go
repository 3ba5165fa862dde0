package conflayer

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type settings struct {
	Name  string
	Count int
	Wait  time.Duration
	On    bool
	List  string
}

// binder is what *flag.FlagSet and *pflag.FlagSet both offer.
type binder interface {
	StringVar(p *string, name, value, usage string)
	IntVar(p *int, name string, value int, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
}

func bind[F binder](fs F, s *settings) F {
	fs.StringVar(&s.Name, "pool-name", s.Name, "")
	fs.IntVar(&s.Count, "stats-ring", s.Count, "")
	fs.DurationVar(&s.Wait, "stop-grace", s.Wait, "")
	fs.BoolVar(&s.On, "bootstrap", s.On, "")
	fs.StringVar(&s.List, "coordinators", s.List, "")
	return fs
}

func stdSet(s *settings) *flag.FlagSet {
	return bind(flag.NewFlagSet("t", flag.ContinueOnError), s)
}

func pflagSet(s *settings) *pflag.FlagSet {
	return bind(pflag.NewFlagSet("t", pflag.ContinueOnError), s)
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOneLayeringForBothFlagLibraries: defaults < file < environment <
// command line, the same through the standard library and pflag.
func TestOneLayeringForBothFlagLibraries(t *testing.T) {
	file := writeFile(t, `{"pool-name":"file","stats-ring":5,"stop-grace":"5s","bootstrap":true,"coordinators":["a:1","b:2"]}`)
	env := map[string]string{"HP_STATS_RING": "7", "HP_POOL_NAME": "", "HP_STOP_GRACE": "9s"}
	getenv := func(k string) string { return env[k] }
	want := settings{Name: "file", Count: 7, Wait: 3 * time.Second, On: true, List: "a:1,b:2"}

	// load parses args with cmd (which must succeed), layers them over
	// defaults through into and compares with want.
	load := func(lib string, cmdParse func([]string) error, args []string, into func(*settings) Flags, visited func() []Setting) {
		t.Helper()
		if err := cmdParse(args); err != nil {
			t.Fatal(err)
		}
		got := settings{Name: "default", Count: 1}
		if err := Load(into(&got), Layers{File: file, EnvPrefix: "HP_", Getenv: getenv, CommandLine: visited()}); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s: %+v, want %+v", lib, got, want)
		}
	}

	cmd := flag.NewFlagSet("cmd", flag.ContinueOnError)
	cmd.String("config", "", "")
	var scratch settings
	stdSet(&scratch).VisitAll(func(f *flag.Flag) { cmd.Var(f.Value, f.Name, "") })
	load("std", cmd.Parse, []string{"-config", file, "-stop-grace", "3s"},
		func(s *settings) Flags { return Std(stdSet(s)) }, func() []Setting { return StdVisited(cmd) })

	pcmd := pflagSet(&settings{})
	pcmd.String("config", "", "")
	load("pflag", pcmd.Parse, []string{"--config", file, "--stop-grace", "3s"},
		func(s *settings) Flags { return Pflag(pflagSet(s)) }, func() []Setting { return PflagVisited(pcmd) })
}

func TestFileKeysAndValues(t *testing.T) {
	s := settings{Name: "default", Count: 1}
	f := Std(stdSet(&s))
	aliases := SnakeAliases(f)
	if aliases["pool_name"] != "pool-name" || aliases["bootstrap"] != "" {
		t.Fatalf("aliases %v", aliases)
	}
	// snake_case aliases; null leaves the default.
	if err := Decode(f, []byte(`{"pool_name":"old","stats-ring":null,"stop_grace":"1m"}`), aliases); err != nil {
		t.Fatal(err)
	}
	if s.Name != "old" || s.Count != 1 || s.Wait != time.Minute {
		t.Fatalf("%+v", s)
	}
	for body, says := range map[string]string{
		`{"no-such":1}`:                       `unknown setting "no-such"`,
		`{"pool_name":"a","pool-name":"b"}`:   "set the same setting",
		`{"pool-name":{"x":1}}`:               "not an object",
		`{"coordinators":[1,2]}`:              "list of strings",
		`{"stats-ring":"many"}`:               "stats-ring",
		`{"stop-grace":60}`:                   "stop-grace",
		`[1]`:                                 "",
		`{"pool-name":"a"} {"pool-name":"b"}`: "data after",
		`null`:                                "not a JSON object",
	} {
		err := Decode(f, []byte(body), aliases)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("Decode(%s) = %v, want an error saying %q", body, err, says)
		}
	}
	if err := File(f, filepath.Join(t.TempDir(), "missing.json"), nil); err == nil || !strings.Contains(err.Error(), "config file") {
		t.Fatalf("missing file: %v", err)
	}
	if err := Env(f, "HP_", func(k string) string { return map[string]string{"HP_STATS_RING": "x"}[k] }); err == nil || !strings.Contains(err.Error(), "HP_STATS_RING") {
		t.Fatalf("bad env value: %v", err)
	}
	if EnvName("HOSTPLANE_AGENT_", "pool-name") != "HOSTPLANE_AGENT_POOL_NAME" {
		t.Fatal(EnvName("HOSTPLANE_AGENT_", "pool-name"))
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"pool-name":"x","stats-ring":3,"coordinators":["a:1"]}`))
	f.Add([]byte(`{"pool_name":null,"bootstrap":true}`))
	f.Add([]byte(`{"stop-grace":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := settings{}
		fs := Std(stdSet(&s))
		_ = Decode(fs, b, SnakeAliases(fs)) // must not panic
	})
}

func TestSplitList(t *testing.T) {
	for in, want := range map[string][]string{
		"":                    nil,
		" , ,":                nil,
		"a":                   {"a"},
		" a, b ,,c ":          {"a", "b", "c"},
		"10.0.0.0/8, ::1/128": {"10.0.0.0/8", "::1/128"},
	} {
		if got := SplitList(in); !slices.Equal(got, want) || (want == nil) != (got == nil) {
			t.Errorf("SplitList(%q) = %q, want %q", in, got, want)
		}
	}
}
