package testport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortsAreFreeOutsideTheEphemeralRangeAndNeverHandedOutTwice(t *testing.T) {
	lo, hi := span()
	seen := map[int]bool{}
	for range 50 {
		p, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if p < lo || p >= hi {
			t.Fatalf("port %d outside [%d, %d)", p, lo, hi)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d was handed out but cannot be bound: %v", p, err)
		}
		ln.Close()
	}
}

func TestABusyPortIsNotHandedOut(t *testing.T) {
	// A window of 8 ports, all but one held by this test: the free one is what comes
	// out, and then nothing, for it was handed out already.
	lo, _ := span()
	var free []int
	for base := lo + 5000; base < lo+6000 && free == nil; base += 8 {
		var held []net.Listener
		for p := base; p < base+8; p++ {
			// A port busy elsewhere counts as held.
			if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
				held = append(held, ln)
			}
		}
		if len(held) == 0 {
			continue
		}
		held[0].Close()
		want := held[0].Addr().(*net.TCPAddr).Port
		p, err := freeIn(base, base+8)
		if err != nil || p != want {
			t.Errorf("freeIn(%d, %d) with only %d free = %d, %v; want %d", base, base+8, want, p, err, want)
		}
		if p, err := freeIn(base, base+8); err == nil {
			t.Errorf("freeIn handed out %d again, or a held port", p)
		}
		for _, ln := range held[1:] {
			ln.Close()
		}
		free = append(free, want)
	}
	if free == nil {
		t.Fatal("no window of 8 loopback ports could be held")
	}
}
