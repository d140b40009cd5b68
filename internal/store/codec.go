package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// AuditCap is how many audit entries are kept per deployment. Appending one more drops
// the oldest of that deployment in the same write, so the log cannot grow without bound.
const AuditCap = 1000

// ErrClosed is returned by every method of a Store after Close.
var ErrClosed = errors.New("store is closed")

// Both implementations keep State and audit entries as JSON, so they share one set of
// semantics: Save and Load copy (a caller can never alias what is stored), times lose
// their monotonic reading, and nil maps come back non-nil.

func encodeState(st *State) ([]byte, error) {
	if st == nil {
		return nil, errors.New("save state: nil state")
	}
	data, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("save state: %w", err)
	}
	return data, nil
}

// decodeState turns saved JSON into a State whose maps are all non-nil, so callers can
// assign into them without checks. data == nil means nothing was ever saved.
func decodeState(data []byte) (*State, error) {
	st := &State{}
	if data != nil {
		if err := json.Unmarshal(data, st); err != nil {
			return nil, fmt.Errorf("load state: %w", err)
		}
	}
	if st.Apps == nil {
		st.Apps = map[string]*AppState{}
	}
	if st.Tokens == nil {
		st.Tokens = map[string]*Token{}
	}
	for _, app := range st.Apps {
		if app != nil && app.Deployments == nil {
			app.Deployments = map[string]*DeploymentState{}
		}
	}
	return st, nil
}

// auditRecord is one stored audit entry. seq is a store-wide sequence number: it orders
// entries of different deployments when an application's log is read as a whole.
type auditRecord struct {
	seq  uint64
	data []byte
}

// mergeNewest merges per-deployment lists (each newest first) into at most limit
// entries, newest first, and decodes them. limit <= 0 means no limit.
func mergeNewest(lists [][]auditRecord, limit int) ([]AuditEntry, error) {
	var all []auditRecord
	if len(lists) == 1 {
		all = lists[0]
	} else {
		for _, l := range lists {
			all = append(all, l...)
		}
		slices.SortFunc(all, func(a, b auditRecord) int {
			switch {
			case a.seq > b.seq:
				return -1
			case a.seq < b.seq:
				return 1
			}
			return 0
		})
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	out := make([]AuditEntry, len(all))
	for i, r := range all {
		if err := json.Unmarshal(r.data, &out[i]); err != nil {
			return nil, fmt.Errorf("read audit entry %d: %w", r.seq, err)
		}
	}
	return out, nil
}
