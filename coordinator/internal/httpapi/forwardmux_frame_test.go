package httpapi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// rawFrame is a frame as the channel carries it: its length (the kind,
// id and payload), kind, id, payload.
func rawFrame(kind byte, id uint64, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(9+len(payload)))
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, id)
	return append(b, payload...)
}

// TestReadFrameCutMidway: a connection that ends at a frame's boundary is
// io.EOF (the peer closed the channel), and one that ends anywhere inside a
// frame, in its head or its payload, is io.ErrUnexpectedEOF (the frame was
// cut, also right after its head), never a frame nor a clean end; the
// frames before the cut are read whole.
func TestReadFrameCutMidway(t *testing.T) {
	first := rawFrame(1, 7, []byte("first frame"))
	second := rawFrame(2, 1<<40+3, []byte("the second one, cut"))
	stream := append(append([]byte{}, first...), second...)

	if _, _, _, err := readFrame(bufio.NewReader(bytes.NewReader(nil)), maxFrame); err != io.EOF {
		t.Fatalf("an empty stream: %v, want io.EOF", err)
	}
	for cut := len(first); cut <= len(stream); cut++ {
		br := bufio.NewReader(bytes.NewReader(stream[:cut]))
		kind, id, payload, err := readFrame(br, maxFrame)
		if err != nil || kind != 1 || id != 7 || string(payload) != "first frame" {
			t.Fatalf("cut at %d: the whole first frame read as kind %d id %d %q, %v", cut, kind, id, payload, err)
		}
		kind, id, payload, err = readFrame(br, maxFrame)
		switch {
		case cut == len(first):
			if err != io.EOF {
				t.Fatalf("ended at the frames' boundary: %v, want io.EOF", err)
			}
		case cut == len(stream):
			if err != nil || kind != 2 || id != 1<<40+3 || string(payload) != "the second one, cut" {
				t.Fatalf("the whole second frame read as kind %d id %d %q, %v", kind, id, payload, err)
			}
		default:
			if !errors.Is(err, io.ErrUnexpectedEOF) || payload != nil {
				t.Fatalf("cut %d bytes into the second frame (head %d bytes): %q, %v; want io.ErrUnexpectedEOF", cut-len(first), frameHead, payload, err)
			}
		}
	}
}
