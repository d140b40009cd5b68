package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var _ Store = (*Bolt)(nil)

const (
	dbFile  = "shoal.db"
	pidFile = "shoal.pid"

	// lockTimeout is how long Open waits for another process's lock. Short: a second
	// shoal should fail at once with a clear message, not hang.
	lockTimeout = 200 * time.Millisecond
)

// Layout of the database:
//
//	state/state               JSON of State
//	audit/                    NextSequence() numbers every entry store-wide
//	  <sha256(app)><sha256(dep)>/   one bucket per deployment; Sequence() = its entry count
//	    <seq, 8 bytes big-endian>   JSON of AuditEntry, so keys sort oldest first
//
// Deployment buckets are named by hashes so that any name fits bbolt's key limit and all
// deployments of an application are adjacent (a prefix scan finds them).
var (
	stateBucket = []byte("state")
	stateKey    = []byte("state")
	auditBucket = []byte("audit")
)

// Bolt is the Store of a local shoal: a bbolt database in the state directory, locked
// against a second process for as long as it is open.
type Bolt struct {
	db       *bolt.DB
	pidPath  string
	auditCap int // entries kept per deployment; AuditCap unless a test lowers it
	closed   atomic.Bool
	log      atomic.Pointer[slog.Logger] // nil: slog.Default()

	saveMu sync.Mutex // serialises Save; guards apps
	// apps names the applications of the state as last saved (nil: unknown, until the
	// first Save, which reads them from the database), so that Save sees which ones it
	// deletes without decoding the previous state every time.
	apps map[string]bool
}

// LockedError says that another process holds the state directory. It matches ErrLocked
// with errors.Is.
type LockedError struct {
	Dir string // the state directory, absolute when it could be made so
	PID int    // the holder's process id, 0 when unknown
}

func (e *LockedError) Error() string {
	who := "another shoal"
	if e.PID > 0 {
		who = fmt.Sprintf("another shoal (pid %d)", e.PID)
	}
	return fmt.Sprintf("%s is using state directory %s; stop it first or pass another --state-dir", who, e.Dir)
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Open opens (creating it if needed) the store in stateDir. When another process — or
// another Open in this process — holds it, Open returns a *LockedError without having
// written anything.
func Open(stateDir string) (*Bolt, error) {
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	path := filepath.Join(stateDir, dbFile)
	// bbolt takes an exclusive flock on the file before reading or writing it, so a
	// second opener that fails here has not touched the database. The lock belongs to
	// the open file description: the kernel drops it when the holder dies, even by
	// SIGKILL, so there is never a stale lock to clean up.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, &LockedError{Dir: stateDir, PID: lockHolder(filepath.Join(stateDir, pidFile))}
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	b := &Bolt{db: db, pidPath: filepath.Join(stateDir, pidFile), auditCap: AuditCap}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{stateBucket, auditBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = writePID(b.pidPath)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return b, nil
}

// writePID records this process as the lock holder, only so that a second shoal can say
// who holds the lock: flock cannot tell. Written whole through a rename so a reader never
// sees half a number.
func writePID(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lockHolder reads the pid file and returns the pid when that process is alive, or 0.
// The file can be stale only in the instant between another shoal taking the lock and
// writing it, or after that shoal was killed; a dead pid is not reported.
func lockHolder(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return 0
	}
	if err := p.Signal(syscall.Signal(0)); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0
	}
	return pid
}

// Load returns the saved state, or an empty State with non-nil maps when none.
func (b *Bolt) Load() (*State, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	var st *State
	err := b.db.View(func(tx *bolt.Tx) error {
		var err error
		// Decoded inside the transaction: the value is only valid until it ends.
		st, err = decodeState(tx.Bucket(stateBucket).Get(stateKey))
		return err
	})
	return st, err
}

// Save replaces the saved state in one transaction and returns once it is fsynced. The
// audit buckets of applications that st no longer has are deleted in the same
// transaction. A saved state that cannot be decoded (a damaged database) does not stop
// Save from replacing it: the audit of its applications is then kept, and a warning
// logged.
func (b *Bolt) Save(st *State) error {
	if b.closed.Load() {
		return ErrClosed
	}
	data, err := encodeState(st)
	if err != nil {
		return err
	}
	b.saveMu.Lock()
	defer b.saveMu.Unlock()
	err = b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(stateBucket)
		prev := b.apps
		if prev == nil {
			old, err := decodeState(bk.Get(stateKey))
			if err != nil {
				b.logger().Warn("the saved state cannot be read, so the audit of the applications it had is kept; the state is replaced",
					"err", err)
			} else {
				prev = appNames(old.Apps)
			}
		}
		if err := bk.Put(stateKey, data); err != nil {
			return err
		}
		for app := range prev {
			if _, kept := st.Apps[app]; !kept {
				if err := dropAuditIn(tx, app); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	b.apps = appNames(st.Apps)
	return nil
}

// SetLogger makes the store log through l (default slog.Default()).
func (b *Bolt) SetLogger(l *slog.Logger) { b.log.Store(l) }

func (b *Bolt) logger() *slog.Logger {
	if l := b.log.Load(); l != nil {
		return l
	}
	return slog.Default()
}

// AppendAudit adds e durably; in the same transaction it drops the oldest entries of
// e's deployment beyond the cap.
func (b *Bolt) AppendAudit(e AuditEntry) error {
	if b.closed.Load() {
		return ErrClosed
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(auditBucket)
		seq, err := root.NextSequence()
		if err != nil {
			return err
		}
		dep, err := root.CreateBucketIfNotExists(auditBucketName(e.App, e.Deployment))
		if err != nil {
			return err
		}
		if err := dep.Put(binary.BigEndian.AppendUint64(nil, seq), data); err != nil {
			return err
		}
		// The bucket's own sequence counts its entries, so trimming needs no scan.
		n := dep.Sequence() + 1
		c := dep.Cursor()
		for ; n > uint64(b.auditCap); n-- {
			if k, _ := c.First(); k == nil {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return dep.SetSequence(n)
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// Audit returns up to limit newest entries of app (of dep alone, when dep is not ""),
// newest first. limit <= 0 means every kept entry.
func (b *Bolt) Audit(app, dep string, limit int) ([]AuditEntry, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	var out []AuditEntry
	err := b.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(auditBucket)
		var lists [][]auditRecord
		if dep != "" {
			if bk := root.Bucket(auditBucketName(app, dep)); bk != nil {
				lists = append(lists, newestIn(bk, limit))
			}
		} else {
			prefix := nameHash(app)
			c := root.Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if v == nil { // a nested bucket
					lists = append(lists, newestIn(root.Bucket(k), limit))
				}
			}
		}
		var err error
		out, err = mergeNewest(lists, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}

// DropAudit deletes the audit buckets of every deployment of app.
func (b *Bolt) DropAudit(app string) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if err := b.db.Update(func(tx *bolt.Tx) error { return dropAuditIn(tx, app) }); err != nil {
		return fmt.Errorf("drop audit of %q: %w", app, err)
	}
	return nil
}

// dropAuditIn deletes app's audit buckets: those named with its hash as a prefix.
func dropAuditIn(tx *bolt.Tx, app string) error {
	root := tx.Bucket(auditBucket)
	prefix := nameHash(app)
	var names [][]byte
	c := root.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if v == nil {
			names = append(names, bytes.Clone(k))
		}
	}
	// Deleted after the scan: deleting under a cursor would move it.
	for _, name := range names {
		if err := root.DeleteBucket(name); err != nil {
			return err
		}
	}
	return nil
}

// newestIn returns up to limit records of bk, newest first. The data slices point into
// the transaction's pages and must be decoded before it ends.
func newestIn(bk *bolt.Bucket, limit int) []auditRecord {
	var out []auditRecord
	c := bk.Cursor()
	for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
		out = append(out, auditRecord{seq: binary.BigEndian.Uint64(k), data: v})
	}
	return out
}

func nameHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func auditBucketName(app, dep string) []byte {
	return append(nameHash(app), nameHash(dep)...)
}

// Close releases the lock and the database. Closing twice is not an error.
func (b *Bolt) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	// Remove the pid file while still holding the lock, and only if it names us.
	if data, err := os.ReadFile(b.pidPath); err == nil && strings.TrimSpace(string(data)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(b.pidPath)
	}
	return b.db.Close()
}
