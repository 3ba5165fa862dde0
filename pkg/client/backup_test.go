package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// slowWriter takes pause over its first write, as a slow output downstream
// (a disk that stalls once).
type slowWriter struct {
	bytes.Buffer
	pause  time.Duration
	paused bool
}

func (s *slowWriter) Write(p []byte) (int, error) {
	if !s.paused {
		s.paused = true
		time.Sleep(s.pause)
	}
	return s.Buffer.Write(p)
}

// TestBackupWithEndsAStalledStream: a backup whose coordinator stops
// sending (a leader that hangs after it started the stream, or before it
// answers) ends after Admin.BackupStall without data, with an error
// wrapping ErrBackupStalled, what arrived written to w; time spent writing
// to a slow w does not count; BackupStall below 0 leaves only the context.
// Before, BackupWith waited for as long as the context and the HTTP
// client's timeout allowed.
func TestBackupWithEndsAStalledStream(t *testing.T) {
	chunk := bytes.Repeat([]byte("s"), 64<<10)
	admin := func(t *testing.T, sends int, hang bool) *Admin {
		return adminServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Hostplane-Node", "c1")
			for range sends {
				_, _ = w.Write(chunk)
				w.(http.Flusher).Flush()
			}
			if hang {
				<-r.Context().Done()
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The stall is a second: a loaded machine can leave the reading
	// goroutine unscheduled for a few hundred milliseconds (364 ms seen),
	// which is no stall of the coordinator's. ErrBackupStalled is only
	// returned when the guard cut the call, and the context still running
	// after it shows the stall ended it, not the context.
	const stall = time.Second
	for _, sends := range []int{1, 0} {
		a := admin(t, sends, true)
		a.BackupStall = stall
		var out bytes.Buffer
		start := time.Now()
		_, err := a.BackupWith(ctx, &out, false)
		if took := time.Since(start); !errors.Is(err, ErrBackupStalled) || ctx.Err() != nil || out.Len() != sends*len(chunk) {
			t.Fatalf("%d chunks, then silence: %v after %v, %d bytes written; want ErrBackupStalled before the 10 s context ends, the %d bytes sent written",
				sends, err, took, out.Len(), sends*len(chunk))
		}
	}

	// A write to w that takes twice the stall does not count as one.
	a := admin(t, 3, false)
	a.BackupStall = stall
	out := &slowWriter{pause: 2 * stall}
	info, err := a.BackupWith(ctx, out, false)
	if err != nil || out.Len() != 3*len(chunk) || info.Node != "c1" || !out.paused {
		t.Fatalf("a whole stream written to a slow output: %+v, %v, %d bytes; want it all, from c1", info, err, out.Len())
	}

	a = admin(t, 1, true)
	a.BackupStall = -1
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := a.BackupWith(short, io.Discard, false); err == nil || errors.Is(err, ErrBackupStalled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("BackupStall -1, a 1 s context: %v; want the context's end, not a stall", err)
	}
}
