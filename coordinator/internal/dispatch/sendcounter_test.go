package dispatch

import (
	"maps"
	"strconv"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/prometheus/client_golang/prometheus"
)

// TestSendCounterIsTheVectorsSeries: sendCounter counts in the sends
// vector's series of its command and resend, the one a scrape reads, from
// the first call and from the cache after it.
func TestSendCounterIsTheVectorsSeries(t *testing.T) {
	d := New(Deps{})
	for range 3 {
		d.sendCounter(api.ActionServerProvision, false).Inc()
	}
	d.sendCounter(api.ActionServerProvision, true).Inc()
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.sends)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"command=" + api.ActionServerProvision + " resend=false ": 3, "command=" + api.ActionServerProvision + " resend=true ": 1}
	if !maps.Equal(got, want) {
		t.Fatalf("series %v, want %v", got, want)
	}
}

// BenchmarkSendCounter is the count of one send: through the vector's
// WithLabelValues, as startExchange counted it before, and through
// sendCounter.
func BenchmarkSendCounter(b *testing.B) {
	d := New(Deps{})
	b.Run("WithLabelValues", func(b *testing.B) {
		for b.Loop() {
			d.sends.WithLabelValues(api.ActionServerProvision, strconv.FormatBool(false)).Inc()
		}
	})
	b.Run("sendCounter", func(b *testing.B) {
		for b.Loop() {
			d.sendCounter(api.ActionServerProvision, false).Inc()
		}
	})
}
