package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// Free returns a loopback port that nothing listens on now and that lies outside the
// kernel's ephemeral port range.
func Free() (int, error) {
	lo, hi := span()
	return freeIn(lo, hi)
}

// freeIn draws a port from [lo, hi).
func freeIn(lo, hi int) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		if handed[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		handed[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free loopback port in [%d, %d) after 200 tries", lo, hi)
}

// span is the range ports are drawn from: from 10000 up to the start of the ephemeral
// range, or above its end when it starts too low to leave room below.
func span() (lo, hi int) {
	eLo, eHi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, errA := strconv.Atoi(f[0])
			z, errZ := strconv.Atoi(f[1])
			if errA == nil && errZ == nil && a <= z {
				eLo, eHi = a, z
			}
		}
	}
	if eLo-10000 >= 2000 {
		return 10000, eLo
	}
	if 65535-eHi >= 2000 {
		return eHi + 1, 65536
	}
	return 10000, 65536 // the whole space is ephemeral: the best left is a random pick
}
