package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// ErrConflict is returned by (*Kube).Save when another writer changed the saved state
// since this store last read or wrote it: a shoal that lost its leadership must not
// overwrite its successor. Load, then decide again.
var ErrConflict = errors.New("state was changed by another writer")

// ErrNotLeader is returned by the writes of a Kube store that is not leading (see
// SetLeading): only the elected shoal writes.
var ErrNotLeader = errors.New("not the leader: only the elected shoal writes state")

// Keys, labels and annotations of the objects a Kube store keeps.
const (
	kubeStateKey   = "state.json"
	kubeTokensKey  = "tokens.json"
	kubeEntriesKey = "entries.json"
	kubeLabelStore = "shoal.dev/store"
	kubeLabelAudit = "shoal.dev/audit-app" // hash of the application name
	kubeAnnotApp   = "shoal.dev/app"
	kubeAnnotDep   = "shoal.dev/deployment"
	// kubeTimeout bounds every API call: a write that cannot reach the API server fails
	// instead of hanging the intent that waits on it.
	kubeTimeout = 15 * time.Second
	// kubeAuditRetries bounds the read-modify-write loop of an audit append when other
	// writers keep changing the same ConfigMap.
	kubeAuditRetries = 10
	// kubeAuditMaxBytes bounds the entries of one audit ConfigMap, in bytes of JSON: the
	// API server refuses a ConfigMap over 1 MiB, so an append that would grow past this
	// drops the oldest entries until it fits, whatever their count.
	kubeAuditMaxBytes = 768 << 10
)

var _ Store = (*Kube)(nil)

// Kube is a Store kept in the Kubernetes API server, in one namespace, under a name:
//
//   - ConfigMap <name>, key state.json: the state without its tokens (config, targets);
//   - Secret <name>-tokens, key tokens.json: the application tokens;
//   - ConfigMap <name>-audit-<hash> per deployment, key entries.json: its audit log,
//     capped at AuditCap entries and at kubeAuditMaxBytes (under a ConfigMap's 1 MiB).
//
// A write returns once the API server has accepted it (etcd has committed it). Writes
// use optimistic concurrency: Save updates the objects at the resourceVersion this store
// last read or wrote, so a stale shoal gets ErrConflict rather than overwriting; audit
// appends commute, so they re-read and retry on a conflict.
//
// Save writes the Secret only when the tokens changed, then the ConfigMap; a Save that
// changes both and fails between the two leaves the new tokens with the old state (and
// returns the error, so the change was not acknowledged).
type Kube struct {
	client        kubernetes.Interface
	ns, name      string
	auditCap      int // entries kept per deployment; AuditCap unless a test lowers it
	auditMaxBytes int // bytes of entries kept per deployment; kubeAuditMaxBytes unless a test lowers it

	mu       sync.Mutex // guards everything below, and serialises writes
	closed   bool
	leading  bool
	stateRV  string // resourceVersion of the state ConfigMap as last read or written; "" = unknown
	tokensRV string // the same for the tokens Secret
	tokens   []byte // tokens.json as last read or written, to skip unchanged writes
	seq      uint64 // last audit sequence number handed out
	// apps names the applications of the state as last read or written (nil: unknown),
	// so that Save sees which ones it deletes.
	apps map[string]bool
	// dropping holds deleted applications whose audit ConfigMaps are still to be deleted:
	// a deletion that failed is tried again at the next Save.
	dropping map[string]bool
}

// NewKube returns a Store kept in namespace ns under name (a DNS subdomain, short enough
// for the suffixes above). Nothing is read or written until the first call.
func NewKube(client kubernetes.Interface, ns, name string) *Kube {
	return &Kube{
		client: client, ns: ns, name: name, auditCap: AuditCap, auditMaxBytes: kubeAuditMaxBytes,
		leading: true, dropping: map[string]bool{},
	}
}

// SetLeading turns writes on or off. A store that is not leading reads as usual and
// fails Save, AppendAudit and DropAudit with ErrNotLeader. A new Kube leads, for a single shoal.
func (k *Kube) SetLeading(leading bool) {
	k.mu.Lock()
	k.leading = leading
	k.mu.Unlock()
}

func (k *Kube) tokensName() string { return k.name + "-tokens" }

func (k *Kube) auditName(app, dep string) string {
	return k.name + "-audit-" + shortHash(app+"\x00"+dep)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}

func (k *Kube) labels() map[string]string {
	return map[string]string{"app.kubernetes.io/managed-by": "shoal", kubeLabelStore: k.name}
}

// Revision returns the resourceVersion of the saved state as the API server has it now
// ("" when nothing was saved). A follower polls it to know when to Load again.
func (k *Kube) Revision() (string, error) {
	if err := k.check(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
	defer cancel()
	cm, err := k.client.CoreV1().ConfigMaps(k.ns).Get(ctx, k.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read state revision: %w", err)
	}
	return cm.ResourceVersion, nil
}

func (k *Kube) check() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	return nil
}

// Load reads the state and the tokens from the API server.
func (k *Kube) Load() (*State, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
	defer cancel()

	var data []byte
	cm, err := k.client.CoreV1().ConfigMaps(k.ns).Get(ctx, k.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		k.stateRV = ""
	case err != nil:
		return nil, fmt.Errorf("load state: %w", err)
	default:
		k.stateRV = cm.ResourceVersion
		if s, ok := cm.Data[kubeStateKey]; ok {
			data = []byte(s)
		}
	}
	st, err := decodeState(data)
	if err != nil {
		return nil, err
	}
	k.apps = appNames(st.Apps)

	sec, err := k.client.CoreV1().Secrets(k.ns).Get(ctx, k.tokensName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		k.tokensRV, k.tokens = "", nil
	case err != nil:
		return nil, fmt.Errorf("load tokens: %w", err)
	default:
		k.tokensRV, k.tokens = sec.ResourceVersion, sec.Data[kubeTokensKey]
		if len(k.tokens) > 0 {
			if err := json.Unmarshal(k.tokens, &st.Tokens); err != nil {
				return nil, fmt.Errorf("load tokens: %w", err)
			}
		}
	}
	if st.Tokens == nil {
		st.Tokens = map[string]*Token{}
	}
	return st, nil
}

// Save writes st: the tokens to the Secret when they changed, the rest to the ConfigMap.
func (k *Kube) Save(st *State) error {
	if st == nil {
		return errors.New("save state: nil state")
	}
	rest := *st
	rest.Tokens = nil
	data, err := encodeState(&rest)
	if err != nil {
		return err
	}
	tokens, err := json.Marshal(st.Tokens)
	if err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	if len(st.Tokens) == 0 {
		tokens = nil
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	if !k.leading {
		return fmt.Errorf("save state: %w", ErrNotLeader)
	}
	ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
	defer cancel()

	if string(tokens) != string(k.tokens) || k.tokensRV == "" {
		if err := k.saveTokens(ctx, tokens); err != nil {
			return err
		}
	}
	if err := k.saveState(ctx, data); err != nil {
		return err
	}
	k.forgetDeleted(ctx, st.Apps)
	return nil
}

// forgetDeleted drops the audit ConfigMaps of the applications that the state just
// saved no longer has. The state is saved already, so a failure does not fail the Save:
// the application stays in dropping and the next Save tries again.
func (k *Kube) forgetDeleted(ctx context.Context, apps map[string]*AppState) {
	for app := range k.apps {
		if _, kept := apps[app]; !kept {
			k.dropping[app] = true
		}
	}
	k.apps = appNames(apps)
	for app := range apps {
		delete(k.dropping, app) // deployed again: its entries are its own once more
	}
	for app := range k.dropping {
		if k.dropAuditLocked(ctx, app) == nil {
			delete(k.dropping, app)
		}
	}
}

func appNames(apps map[string]*AppState) map[string]bool {
	out := make(map[string]bool, len(apps))
	for app := range apps {
		out[app] = true
	}
	return out
}

func (k *Kube) saveTokens(ctx context.Context, tokens []byte) error {
	secrets := k.client.CoreV1().Secrets(k.ns)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: k.tokensName(), Namespace: k.ns, Labels: k.labels(), ResourceVersion: k.tokensRV},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{kubeTokensKey: tokens},
	}
	if k.tokensRV == "" {
		// Never read: the Secret may exist all the same (the manifests create it empty,
		// so shoal's Role needs no create on Secrets). Take it as it is.
		cur, err := secrets.Get(ctx, sec.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			got, err := secrets.Create(ctx, sec, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("save tokens: %w", kubeErr(err))
			}
			k.tokensRV, k.tokens = got.ResourceVersion, tokens
			return nil
		case err != nil:
			return fmt.Errorf("save tokens: %w", err)
		}
		sec.ResourceVersion = cur.ResourceVersion
	}
	got, err := secrets.Update(ctx, sec, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("save tokens: %w", kubeErr(err))
	}
	k.tokensRV, k.tokens = got.ResourceVersion, tokens
	return nil
}

func (k *Kube) saveState(ctx context.Context, data []byte) error {
	cms := k.client.CoreV1().ConfigMaps(k.ns)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: k.name, Namespace: k.ns, Labels: k.labels(), ResourceVersion: k.stateRV},
		Data:       map[string]string{kubeStateKey: string(data)},
	}
	if k.stateRV == "" {
		cur, err := cms.Get(ctx, k.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			got, err := cms.Create(ctx, cm, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("save state: %w", kubeErr(err))
			}
			k.stateRV = got.ResourceVersion
			return nil
		case err != nil:
			return fmt.Errorf("save state: %w", err)
		}
		cm.ResourceVersion = cur.ResourceVersion
		if prev, err := decodeState([]byte(cur.Data[kubeStateKey])); err == nil && k.apps == nil {
			k.apps = appNames(prev.Apps)
		}
	}
	got, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("save state: %w", kubeErr(err))
	}
	k.stateRV = got.ResourceVersion
	return nil
}

// kubeErr turns the API server's conflict answers into ErrConflict.
func kubeErr(err error) error {
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("%w (%v)", ErrConflict, err)
	}
	return err
}

// kubeRecord is one audit entry as kept in a ConfigMap.
type kubeRecord struct {
	Seq   uint64          `json:"seq"`
	Entry json.RawMessage `json:"entry"`
}

// AppendAudit adds e to its deployment's audit ConfigMap, dropping the oldest entries
// beyond the cap, and then as many as it takes to fit the byte bound, in the same write.
func (k *Kube) AppendAudit(e AuditEntry) error {
	entry, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	if !k.leading {
		return fmt.Errorf("append audit: %w", ErrNotLeader)
	}
	// Sequence numbers follow the wall clock (nanoseconds), so entries written by
	// successive leaders still merge in time order; within one store they only grow.
	k.seq = max(k.seq+1, uint64(time.Now().UnixNano()))
	rec := kubeRecord{Seq: k.seq, Entry: entry}

	ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
	defer cancel()
	cms := k.client.CoreV1().ConfigMaps(k.ns)
	name := k.auditName(e.App, e.Deployment)
	for range kubeAuditRetries {
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: k.ns, Labels: k.labels(),
				Annotations: map[string]string{kubeAnnotApp: e.App, kubeAnnotDep: e.Deployment},
			}}
			cm.Labels[kubeLabelAudit] = shortHash(e.App)
		} else if err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		recs, err := readRecords(cm)
		if err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		recs = append(recs, rec)
		if len(recs) > k.auditCap {
			recs = recs[len(recs)-k.auditCap:]
		}
		data, err := boundedRecords(recs, k.auditMaxBytes)
		if err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		cm.Data = map[string]string{kubeEntriesKey: string(data)}
		if cm.ResourceVersion == "" {
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
		} else {
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			continue // another writer appended meanwhile: read again
		}
		if err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		return nil
	}
	return fmt.Errorf("append audit: %w", ErrConflict)
}

// boundedRecords encodes recs (oldest first) as a JSON array of at most maxBytes,
// leaving out the oldest records that do not fit. The newest record is always kept.
func boundedRecords(recs []kubeRecord, maxBytes int) ([]byte, error) {
	parts := make([][]byte, len(recs))
	size := 1 // "[" and "]", less the comma the first record does not need
	for i, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		parts[i] = b
		size += len(b) + 1
	}
	for len(parts) > 1 && size > maxBytes {
		size -= len(parts[0]) + 1
		parts = parts[1:]
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i, p := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, p...)
	}
	return append(out, ']'), nil
}

// readRecords decodes a ConfigMap's audit records, oldest first.
func readRecords(cm *corev1.ConfigMap) ([]kubeRecord, error) {
	var recs []kubeRecord
	if s := cm.Data[kubeEntriesKey]; s != "" {
		if err := json.Unmarshal([]byte(s), &recs); err != nil {
			return nil, fmt.Errorf("read audit %s: %w", cm.Name, err)
		}
	}
	return recs, nil
}

// newestFirst turns records (oldest first) into auditRecords, newest first.
func newestFirst(recs []kubeRecord) []auditRecord {
	out := make([]auditRecord, 0, len(recs))
	for _, r := range slices.Backward(recs) {
		out = append(out, auditRecord{seq: r.Seq, data: r.Entry})
	}
	return out
}

// Audit returns up to limit newest entries of app (and dep, when not ""), newest first.
func (k *Kube) Audit(app, dep string, limit int) ([]AuditEntry, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
	defer cancel()
	cms := k.client.CoreV1().ConfigMaps(k.ns)

	var found []corev1.ConfigMap
	if dep != "" {
		cm, err := cms.Get(ctx, k.auditName(app, dep), metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		if err == nil {
			found = append(found, *cm)
		}
	} else {
		sel := labels.Set{kubeLabelStore: k.name, kubeLabelAudit: shortHash(app)}
		list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		found = list.Items
	}
	var lists [][]auditRecord
	for i := range found {
		cm := &found[i]
		// The hash in the name and label could collide; the annotations cannot.
		if cm.Annotations[kubeAnnotApp] != app || (dep != "" && cm.Annotations[kubeAnnotDep] != dep) {
			continue
		}
		recs, err := readRecords(cm)
		if err != nil {
			return nil, err
		}
		lists = append(lists, newestFirst(recs))
	}
	if len(lists) == 0 {
		return []AuditEntry{}, nil
	}
	return mergeNewest(lists, limit)
}

// DropAudit deletes the audit ConfigMaps of every deployment of app.
func (k *Kube) DropAudit(app string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	if !k.leading {
		return fmt.Errorf("drop audit of %q: %w", app, ErrNotLeader)
	}
	ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
	defer cancel()
	return k.dropAuditLocked(ctx, app)
}

func (k *Kube) dropAuditLocked(ctx context.Context, app string) error {
	cms := k.client.CoreV1().ConfigMaps(k.ns)
	sel := labels.Set{kubeLabelStore: k.name, kubeLabelAudit: shortHash(app)}
	list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return fmt.Errorf("drop audit of %q: %w", app, err)
	}
	for i := range list.Items {
		cm := &list.Items[i]
		// The label is a hash and could collide; the annotation cannot.
		if cm.Annotations[kubeAnnotApp] != app {
			continue
		}
		err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("drop audit of %q: %w", app, err)
		}
	}
	return nil
}

// Close makes every later call fail with ErrClosed. Nothing is held open.
func (k *Kube) Close() error {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	return nil
}
