package store

import (
	"encoding/json"
	"fmt"
	"sync"
)

var _ Store = (*Memory)(nil)

// Memory is a Store held in memory, for tests of the packages around the store. It
// behaves like Bolt — same copies, same audit order, cap and limits — without a disk.
type Memory struct {
	auditCap int // entries kept per deployment; AuditCap unless a test lowers it

	mu     sync.Mutex      // guards everything below
	state  []byte          // JSON of the saved State; nil before the first Save
	apps   map[string]bool // the applications of state, so that Save sees which ones it deletes
	seq    uint64          // last audit sequence number handed out
	audit  map[memAuditKey][]auditRecord
	closed bool
}

type memAuditKey struct{ app, dep string }

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{auditCap: AuditCap, audit: map[memAuditKey][]auditRecord{}, apps: map[string]bool{}}
}

// Load returns a copy of the saved state, or an empty State when none was saved.
func (m *Memory) Load() (*State, error) {
	m.mu.Lock()
	data, closed := m.state, m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return decodeState(data)
}

// Save replaces the saved state with a copy of st, and drops the audit log of every
// application that st no longer has.
func (m *Memory) Save(st *State) error {
	data, err := encodeState(st)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.state = data
	for app := range m.apps {
		if _, kept := st.Apps[app]; !kept {
			m.dropAuditLocked(app)
		}
	}
	m.apps = appNames(st.Apps)
	return nil
}

// AppendAudit adds e, dropping the oldest entries of its deployment beyond the cap.
func (m *Memory) AppendAudit(e AuditEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.seq++
	k := memAuditKey{e.App, e.Deployment}
	l := append(m.audit[k], auditRecord{seq: m.seq, data: data})
	if over := len(l) - m.auditCap; over > 0 {
		// Copy rather than reslice so the dropped entries do not stay reachable.
		l = append([]auditRecord(nil), l[over:]...)
	}
	m.audit[k] = l
	return nil
}

// Audit returns up to limit newest entries of app (of dep alone, when dep is not ""),
// newest first. limit <= 0 means every kept entry.
func (m *Memory) Audit(app, dep string, limit int) ([]AuditEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	var lists [][]auditRecord
	for k, l := range m.audit {
		if k.app != app || (dep != "" && k.dep != dep) {
			continue
		}
		lists = append(lists, newestOf(l, limit))
	}
	return mergeNewest(lists, limit)
}

// DropAudit removes every audit entry of app.
func (m *Memory) DropAudit(app string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.dropAuditLocked(app)
	return nil
}

func (m *Memory) dropAuditLocked(app string) {
	for k := range m.audit {
		if k.app == app {
			delete(m.audit, k)
		}
	}
}

// newestOf returns up to limit records of l (oldest first) as a new list, newest first.
func newestOf(l []auditRecord, limit int) []auditRecord {
	n := len(l)
	if limit > 0 && n > limit {
		n = limit
	}
	out := make([]auditRecord, n)
	for i := range out {
		out[i] = l[len(l)-1-i]
	}
	return out
}

// Close makes every later call fail with ErrClosed. Closing twice is not an error.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
