package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/internal/tabletest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// stdoutOf runs fn with os.Stdout sent to a pipe and returns what it wrote.
func stdoutOf(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	return captured(t, &os.Stdout, fn)
}

// stderrOf runs fn with os.Stderr captured and returns what it wrote there.
func stderrOf(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	return captured(t, &os.Stderr, fn)
}

// captured runs fn with *std (os.Stdout or os.Stderr) sent to a pipe, puts
// it back, and returns what fn wrote there.
func captured(t *testing.T, std **os.File, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := *std
	*std = w
	out := make(chan string)
	go func() { b, _ := io.ReadAll(r); out <- string(b) }()
	ferr := fn()
	*std = old
	w.Close()
	s := <-out
	r.Close()
	return s, ferr
}

// listJSON runs the command `list args…` with run, whose globals ask for
// --json, and decodes what it printed as a T; a failed command or an output
// that is not a T fails the test.
func listJSON[T any](t *testing.T, run func(args ...string) error, args ...string) T {
	t.Helper()
	out, err := stdoutOf(t, func() error { return run(append([]string{"list"}, args...)...) })
	if err != nil {
		t.Fatalf("list %v: %v", args, err)
	}
	var l T
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("list %v --json: %v: %s", args, err, out)
	}
	return l
}

// TestTicketQueueCLI: `hostplanectl ticket list|show|reply|close` work the
// support queue of a real coordinator: the list holds every account's
// tickets newest first with their accounts, filtered by --status (several
// at once) and --account (id or email); show prints the thread; a staff
// reply answers it; close closes it. A bad flag is a usage error naming it
// before the coordinator is asked; the coordinator refuses a bad query with
// a 400 naming the parameter and an unknown ticket or account with a 404.
func TestTicketQueueCLI(t *testing.T) {
	run := func(g *globals, args ...string) error { return execQuiet(newTicketCmd(g), args...) }
	quiet := &globals{socket: "/nonexistent/admin.sock"}
	wantUsageErrors(t, func(args ...string) error { return run(quiet, args...) },
		[]string{"list", "--status", "pending"},
		[]string{"list", "--status", "open,bogus"},
		[]string{"list", "--limit", "0"},
		[]string{"list", "--limit", "1001"},
		[]string{"list", "--account", " "},
		[]string{"reply", "tkt_x"},
		[]string{"reply", "tkt_x", "--body", "  "},
	)
	var ue usageError
	for flag, args := range map[string][]string{"--status": {"list", "--status", "nope"}, "--limit": {"list", "--limit", "5000"}, "--body": {"reply", "tkt_x"}} {
		if err := run(quiet, args...); !errors.As(err, &ue) || !strings.Contains(ue.msg, flag) {
			t.Errorf("%v: want a usage error naming %s, got %v", args, flag, err)
		}
	}
	c, g, adm := cliCluster(t)
	ctx := context.Background()
	accA, keyA := c.NewAccount("queue-a@example.com", api.ScopeTicketsWrite, api.ScopeTicketsRead)
	accB, keyB := c.NewAccount("queue-b@example.com", api.ScopeTicketsWrite)
	open := func(key, subject string) api.Ticket {
		t.Helper()
		tk, err := c.Client(0, key).CreateTicket(ctx, api.TicketCreateRequest{Subject: subject, Message: "first message of " + subject}, "")
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	a1, a2, b1 := open(keyA, "disk full"), open(keyA, "invoice question"), open(keyB, "dns")

	list := func(args ...string) api.AdminTicketList {
		t.Helper()
		return listJSON[api.AdminTicketList](t, func(args ...string) error { return run(g, args...) }, args...)
	}
	ids := func(l api.AdminTicketList) []string {
		var out []string
		for _, tk := range l.Data {
			out = append(out, tk.ID)
		}
		return out
	}
	same := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	all := list()
	same("every ticket, newest first", ids(all), b1.ID, a2.ID, a1.ID)
	if all.Total != 3 || all.Data[0].AccountID != accB.ID || all.Data[1].AccountID != accA.ID || all.Data[0].Status != api.TicketOpen || len(all.Data[0].Messages) != 0 {
		t.Errorf("list %+v", all)
	}
	same("--account by email", ids(list("--account", "Queue-A@example.com")), a2.ID, a1.ID)
	same("--account by id", ids(list("--account", accB.ID)), b1.ID)
	if l := list("--limit", "1"); l.Total != 3 || len(l.Data) != 1 || l.Data[0].ID != b1.ID {
		t.Errorf("--limit 1: %+v", l)
	}

	// A staff reply answers a1; the customer's reply on b1 is customer_reply.
	out, err := stdoutOf(t, func() error { return run(g, "reply", a1.ID, "--body", "We freed 20 GB.", "--as", "Ayşe") })
	if err != nil || !strings.Contains(out, `"status": "answered"`) {
		t.Fatalf("reply: %v %s", err, out)
	}
	if _, err := c.Client(0, keyB).ReplyTicket(ctx, b1.ID, api.TicketReplyRequest{Body: "still broken"}, ""); err != nil {
		t.Fatal(err)
	}
	same("--status answered", ids(list("--status", "answered")), a1.ID)
	same("--status customer_reply,answered", ids(list("--status", "customer_reply,answered")), b1.ID, a1.ID)
	same("--status open", ids(list("--status", "open")), a2.ID)
	same("--status open --status answered --account", ids(list("--status", "open", "--status", "answered", "--account", accA.ID)), a2.ID, a1.ID)

	// show: the thread, in JSON and as text.
	out, err = stdoutOf(t, func() error { return run(g, "show", a1.ID) })
	var shown api.AdminTicket
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || shown.AccountID != accA.ID || len(shown.Messages) != 2 ||
		shown.Messages[1].Author != "staff" || shown.Messages[1].StaffName != "Ayşe" || shown.Messages[1].Body != "We freed 20 GB." {
		t.Fatalf("show --json: %v %s", err, out)
	}
	text := &globals{socket: g.socket}
	out, err = stdoutOf(t, func() error { return run(text, "show", a1.ID) })
	if err != nil || !containsAll(out, "#1", a1.ID, accA.ID, "disk full", "answered", "first message of disk full", "staff (Ayşe)", "We freed 20 GB.") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	out, err = stdoutOf(t, func() error { return run(text, "list", "--status", "answered") })
	if err != nil || !containsAll(out, "ID", "ACCOUNT", "STATUS", "SUBJECT", a1.ID, accA.ID, "disk full") || strings.Contains(out, a2.ID) {
		t.Fatalf("list as text: %v\n%s", err, out)
	}

	// close
	out, err = stdoutOf(t, func() error { return run(g, "close", a2.ID) })
	if err != nil || !strings.Contains(out, `"status": "closed"`) {
		t.Fatalf("close: %v %s", err, out)
	}
	same("--status closed", ids(list("--status", "closed")), a2.ID)
	if got, err := c.Client(0, keyA).Ticket(ctx, a2.ID); err != nil || got.Status != api.TicketClosed {
		t.Fatalf("the customer sees %+v (%v); want closed", got, err)
	}

	// Refusals from the coordinator.
	var ae *api.Error
	for _, args := range [][]string{{"show", "tkt_00000000000000000000000000"}, {"close", "tkt_00000000000000000000000000"}, {"list", "--account", "acc_00000000000000000000000000"}, {"list", "--account", "nobody@example.com"}} {
		if err := run(g, args...); api.StatusOf(err) != 404 {
			t.Errorf("%v: want 404, got %v", args, err)
		}
	}
	if _, err := adm.Tickets(ctx, client.AdminTicketQuery{Statuses: []string{"pending"}}); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, `"status"`) {
		t.Errorf("a bad status: want a 400 naming status, got %v", err)
	}
	if _, err := adm.Tickets(ctx, client.AdminTicketQuery{Limit: 1001}); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, `"limit"`) {
		t.Errorf("a bad limit: want a 400 naming limit, got %v", err)
	}
}

// TestPrintable: customer text printed to the operator's terminal carries no
// control characters (an escape sequence could rewrite the screen).
func TestPrintable(t *testing.T) {
	tabletest.Equal(t, "printable", func(s string) string { return printable(s, false) }, map[string]string{
		"plain Ayşe":          "plain Ayşe",
		"\x1b[2J\x1b[31mred":  "\uFFFD[2J\uFFFD[31mred",
		"a\nb\tc\r":           "a\uFFFDb\uFFFDc\uFFFD",
		"bad \xff utf8":       "bad \uFFFD utf8",
		"rtl \u202e override": "rtl \uFFFD override",
		"bell\a":              "bell\uFFFD",
	})
	if got := printable("line one\n\tline two\x1b]0;title\a", true); got != "line one\n\tline two\uFFFD]0;title\uFFFD" {
		t.Errorf("multiline: %q", got)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
