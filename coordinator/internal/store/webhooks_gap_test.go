package store

import (
	"slices"
	"testing"
)

// TestAddWebhookGap: a gap the dispatcher read past is dropped, the others
// kept oldest first; past MaxWebhookGaps the two oldest merge.
func TestAddWebhookGap(t *testing.T) {
	gaps := AddWebhookGap(nil, IndexRange{10, 12}, 0)
	gaps = AddWebhookGap(gaps, IndexRange{14, 15}, 5)
	if !slices.Equal(gaps, []IndexRange{{10, 12}, {14, 15}}) {
		t.Fatalf("two pauses behind the cursor: %v", gaps)
	}
	gaps = AddWebhookGap(gaps, IndexRange{20, 21}, 12)
	if !slices.Equal(gaps, []IndexRange{{14, 15}, {20, 21}}) {
		t.Fatalf("the cursor at the first gap's end: %v", gaps)
	}
	w := Webhook{Active: true, Gaps: gaps}
	for idx, want := range map[uint64]bool{13: true, 14: false, 15: false, 16: true, 20: false, 22: true} {
		if w.Takes(idx) != want {
			t.Errorf("event at %d taken: %v", idx, !want)
		}
	}
	gaps = nil
	for i := uint64(0); i < MaxWebhookGaps+2; i++ {
		gaps = AddWebhookGap(gaps, IndexRange{100 + 10*i, 105 + 10*i}, 0)
	}
	if len(gaps) != MaxWebhookGaps || gaps[0] != (IndexRange{100, 125}) || gaps[len(gaps)-1] != (IndexRange{100 + 10*(MaxWebhookGaps+1), 105 + 10*(MaxWebhookGaps+1)}) {
		t.Fatalf("past the bound: %d gaps %v", len(gaps), gaps)
	}
}
