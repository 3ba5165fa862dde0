package fsm

import (
	"sort"
	"testing"
)

// levelOneCommands are the command types of the release that introduced
// semantics levels (4f8b13c): the only ones that may apply at level 1. Never
// add to it: a command type added since needs an entry in commandLevel with
// the level of the release that adds it, or an older coordinator in a rolling
// upgrade skips the entry its upgraded peers apply.
var levelOneCommands = []CommandType{
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 20, 21, 22, 23, 24, 25,
	40, 41, 42, 43, 44, 45, 46, 47, 48, 60, 61, 62, 63, 64, 65, 66, 67,
	80, 81, 82, 83, 90, 91, 92, 100, 101, 120, 121, 122, 123, 124, 125,
	126, 127, 128, 129, 150, 151, 152, 153, 154, 155, 156, 157, 158,
	200, 201, 202, 203, 220, 300, 301, 302, 303, 330, 331, 340, 341, 342,
	343, 370, 390, 440, 570,
}

// TestNewCommandsNeedALevel holds every command type the FSM applies to the
// rule in level.go: one added after level 1 is listed in commandLevel
// (docs/architecture.md's endpoint recipe said so; no test caught a missing
// entry).
func TestNewCommandsNeedALevel(t *testing.T) {
	old := map[CommandType]bool{}
	for _, c := range levelOneCommands {
		old[c] = true
	}
	var missing []int
	for c := range handlers {
		if !old[c] && LevelOf(c) < 2 {
			missing = append(missing, int(c))
		}
	}
	sort.Ints(missing)
	if len(missing) > 0 {
		t.Fatalf("command types %v were added after level 1 but have no entry in commandLevel (level.go): list each with the semantics level of the release that adds it", missing)
	}
	for _, c := range levelOneCommands {
		if _, ok := handlers[c]; !ok {
			t.Errorf("level-1 command type %d has no handler: a command type is never removed (old logs hold it)", c)
		}
	}
}
