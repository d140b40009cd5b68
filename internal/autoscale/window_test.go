package autoscale

import (
	"math"
	"testing"
	"time"
)

func TestWindowAverage(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	cases := []struct {
		name     string
		samples  [][2]float64 // {t, v}
		now      float64
		lookBack time.Duration
		want     float64
	}{
		{name: "an empty window averages to zero", now: 10, lookBack: 30 * time.Second, want: 0},
		{name: "one sample holds until now", samples: [][2]float64{{0, 4}}, now: 10, lookBack: 30 * time.Second, want: 4},
		{name: "samples are weighted by how long they held", samples: [][2]float64{{0, 0}, {5, 10}}, now: 10, lookBack: 30 * time.Second, want: 5},
		{name: "only the look-back period counts", samples: [][2]float64{{0, 100}, {20, 2}}, now: 30, lookBack: 10 * time.Second, want: 2},
		{name: "a sample older than the period holds at its start", samples: [][2]float64{{0, 6}, {25, 0}}, now: 30, lookBack: 10 * time.Second, want: 3},
		{name: "a sample taken now alone is the average", samples: [][2]float64{{10, 7}}, now: 10, lookBack: 30 * time.Second, want: 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w Window
			for _, s := range tc.samples {
				w.Add(at(s[0]), s[1])
			}
			if got := w.Average(at(tc.now), tc.lookBack); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("average %g, want %g", got, tc.want)
			}
		})
	}
}

func TestWindowDropsSamplesThatNoLongerMatter(t *testing.T) {
	var w Window
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < 10_000; i++ {
		w.Add(t0.Add(time.Duration(i)*100*time.Millisecond), 1)
		w.Average(t0.Add(time.Duration(i)*100*time.Millisecond), 30*time.Second)
	}
	if n := len(w.samples); n > 302 {
		t.Fatalf("window holds %d samples for a 30 s look-back at 10 samples/s, want at most 302", n)
	}
}
