package config

import (
	"maps"
	"slices"
	"strings"
)

// suggest returns the known field closest to an unknown key, or "" when none is close
// enough to be a likely typo. Close means an edit distance of at most a third of the
// key's length (at least 2), or one name containing the other (maxreplicas,
// autoscaling). Ties go to the field listed first.
func suggest(key string, known []string, ignored map[string]string) string {
	cands := append([]string(nil), known...)
	cands = append(cands, slices.Sorted(maps.Keys(ignored))...)
	lk := strings.ToLower(key)
	best, bestD := "", -1
	for _, c := range cands {
		d := distance(lk, c)
		if bestD < 0 || d < bestD || (d == bestD && rank(c, known) < rank(best, known)) {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	limit := max(2, len(key)/3)
	if bestD <= limit {
		return best
	}
	// A key that is a part of a field (or holds one), such as "autoscaling" for
	// "autoscaling_config"; only worth it for keys long enough to mean something.
	if len(lk) >= 4 {
		for _, c := range known {
			if strings.Contains(c, lk) || strings.Contains(lk, c) {
				return c
			}
		}
	}
	return ""
}

// rank orders candidates: known fields in their listed order, then ignored ones by name.
func rank(c string, known []string) int {
	for i, k := range known {
		if k == c {
			return i
		}
	}
	return len(known)
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
