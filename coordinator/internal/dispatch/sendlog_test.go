package dispatch

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	pb "github.com/hostplane/hostplane/proto"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestSendLogLines: at the default (info) level an action sent for the
// first time logs one line, "action finished" with its outcome and the
// seconds since it was sent, not an "action sent" line as well; a resend
// (the action may have reached the agent before) is logged at info; at
// debug level the first send is logged too.
func TestSendLogLines(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  []string // lines of the first send, then of the resend
	}{
		{slog.LevelInfo, []string{"action finished", "action sent|action finished"}},
		{slog.LevelDebug, []string{"action sent|action finished", "action sent|action finished"}},
	} {
		r := newHeldRig(t, []*pb.Envelope{resultFrame("act_1")}, nil)
		var out framework.SyncBuilder // written from the dispatcher's goroutines
		r.d.s.Log = slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: tc.level}))
		read := 0 // of out: what the sends before logged
		for i, want := range tc.want {
			r.d.send(context.Background(), pendingAction())
			waitIdle(t, r.d)
			text := out.String()[read:]
			read += len(text)
			var msgs []string
			for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
				_, msg, _ := strings.Cut(line, "msg=")
				msg, _, _ = strings.Cut(strings.Trim(msg, `"`), `" `)
				msgs = append(msgs, msg)
				switch msg {
				case "action sent":
					if resend := i > 0; !strings.Contains(line, "level=") ||
						strings.Contains(line, "level=INFO") != resend || !strings.Contains(line, "action=act_1") {
						t.Errorf("level %s, send %d: %q: want the resend alone at INFO, naming the action", tc.level, i+1, line)
					}
				case "action finished":
					if !strings.Contains(line, "level=INFO") || !strings.Contains(line, "success=true") || !strings.Contains(line, " seconds=") {
						t.Errorf("level %s, send %d: %q: want INFO with its outcome and seconds", tc.level, i+1, line)
					}
				}
			}
			if got := strings.Join(msgs, "|"); got != want {
				t.Errorf("level %s, send %d logged %q (%s), want %q", tc.level, i+1, got, text, want)
			}
		}
	}
}
