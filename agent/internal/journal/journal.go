// Package journal is the node's bbolt database: the operation journal that makes
// every agent operation safe to repeat, and the registry of templates and VMs those
// operations produced.
package journal

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hostplane/hostplane/pkg/api"
)

// Bucket names: the whole schema.
var (
	bucketMeta      = []byte("meta")      // hmac-key, schema
	bucketOps       = []byte("ops")       // op id → Record
	bucketTemplates = []byte("templates") // name → Template
	bucketVMs       = []byte("vms")       // name → VM
)

const schemaVersion = 1

var (
	// ErrInputMismatch: the operation id is known with other input.
	ErrInputMismatch = errors.New("operation id already used with different input")
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("not found")
)

// Record is one journaled operation.
type Record struct {
	Version    int               `json:"v"`
	ID         string            `json:"id"`
	Kind       string            `json:"kind"`
	Target     string            `json:"target"`
	InputHash  string            `json:"input_hash"`
	Input      json.RawMessage   `json:"input,omitempty"` // redacted: never a plaintext password
	State      string            `json:"state"`
	Step       string            `json:"step,omitempty"`  // last step reached, for crash recovery
	Notes      map[string]string `json:"notes,omitempty"` // recovery data (e.g. the volumes being replaced)
	StartedAt  time.Time         `json:"started_at"`
	FinishedAt time.Time         `json:"finished_at,omitzero"`
	Error      *api.NodeError    `json:"error,omitempty"`
	Result     *api.NodeOpResult `json:"result,omitempty"`
}

// DecodeRecord parses and checks a stored record.
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("decode journal record: %w", err)
	}
	if dec.More() {
		return Record{}, errors.New("decode journal record: trailing data")
	}
	if r.Version != 1 {
		return Record{}, fmt.Errorf("decode journal record: unknown version %d", r.Version)
	}
	if r.ID == "" || r.Kind == "" || r.InputHash == "" {
		return Record{}, errors.New("decode journal record: missing id, kind or input hash")
	}
	switch r.State {
	case api.NodeOpRunning, api.NodeOpSucceeded, api.NodeOpFailed:
	default:
		return Record{}, fmt.Errorf("decode journal record: unknown state %q", r.State)
	}
	if r.State == api.NodeOpFailed && r.Error == nil {
		return Record{}, errors.New("decode journal record: failed without error")
	}
	return r, nil
}

// Operation converts a record to its wire form.
func (r Record) Operation() *api.NodeOperation {
	op := &api.NodeOperation{ID: r.ID, Kind: r.Kind, Target: r.Target, State: r.State, StartedAt: r.StartedAt, Error: r.Error, Result: r.Result}
	if !r.FinishedAt.IsZero() {
		t := r.FinishedAt
		op.FinishedAt = &t
	}
	return op
}

// Template is a registered OS template.
type Template struct {
	api.NodeTemplate
	BasePath string `json:"base_path"` // path of the base volume
}

// VM is a VM the agent created. Secrets are stored as hashes only.
type VM struct {
	Name         string       `json:"name"`
	UUID         string       `json:"uuid"`
	Template     string       `json:"template"`
	Plan         api.NodePlan `json:"plan"`
	MAC          string       `json:"mac"`
	Network      string       `json:"network"`
	Hostname     string       `json:"hostname"`
	DomainType   string       `json:"domain_type"`
	DiskVolume   string       `json:"disk_volume"`
	SeedVolume   string       `json:"seed_volume"`
	ConsoleLog   string       `json:"console_log"`
	PasswordHash string       `json:"password_hash,omitempty"`
	SSHKeys      []string     `json:"ssh_keys,omitempty"`
	IPv4         string       `json:"ipv4,omitempty"`
	Gateway4     string       `json:"gateway4,omitempty"`
	InstalledAt  time.Time    `json:"installed_at"`
	CreatedAt    time.Time    `json:"created_at"`
	// Bridge is set when the NIC is on that bridge with the traffic filter;
	// IPv6, Gateway6 and Resolvers go into the seed as IPv4 does.
	Bridge    string   `json:"bridge,omitempty"`
	IPv6      string   `json:"ipv6,omitempty"`
	Gateway6  string   `json:"gateway6,omitempty"`
	Resolvers []string `json:"resolvers,omitempty"`
}

// DB is the open journal.
type DB struct {
	db  *bolt.DB
	key []byte
}

// Open opens or creates the journal at path.
func Open(path string) (*DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	j := &DB{db: db}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketOps, bucketTemplates, bucketVMs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		if v := m.Get([]byte("schema")); v != nil && string(v) != fmt.Sprint(schemaVersion) {
			return fmt.Errorf("journal schema %s, agent knows %d", v, schemaVersion)
		}
		if err := m.Put([]byte("schema"), []byte(fmt.Sprint(schemaVersion))); err != nil {
			return err
		}
		if k := m.Get([]byte("hmac-key")); k != nil {
			j.key = append([]byte(nil), k...)
			return nil
		}
		j.key = make([]byte, 32)
		if _, err := rand.Read(j.key); err != nil {
			return err
		}
		return m.Put([]byte("hmac-key"), j.key)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	return j, nil
}

// Close closes the database.
func (j *DB) Close() error { return j.db.Close() }

// InputHash returns a keyed hash of an operation's full input (plaintext secrets
// included), so a replay can be compared without storing the secrets.
func (j *DB) InputHash(kind, target string, input any) (string, error) {
	b, err := json.Marshal(input)
	if err != nil {
		return "", fmt.Errorf("hash operation input: %w", err)
	}
	m := hmac.New(sha256.New, j.key)
	fmt.Fprintf(m, "%s\x00%s\x00", kind, target)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil)), nil
}

// Begin records a new running operation, or returns the existing record for the id
// (existed = true). A known id with another input hash gives ErrInputMismatch.
func (j *DB) Begin(r Record) (rec Record, existed bool, err error) {
	r.Version = 1
	r.State = api.NodeOpRunning
	err = j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOps)
		if v := b.Get([]byte(r.ID)); v != nil {
			old, err := DecodeRecord(v)
			if err != nil {
				return fmt.Errorf("operation %s: %w", r.ID, err)
			}
			if old.InputHash != r.InputHash || old.Kind != r.Kind || old.Target != r.Target {
				return fmt.Errorf("operation %s (%s %s): %w", r.ID, old.Kind, old.Target, ErrInputMismatch)
			}
			rec, existed = old, true
			return nil
		}
		rec = r
		return putJSON(b, r.ID, r)
	})
	return rec, existed, err
}

// Update stores a changed record (a step reached, or the final state).
func (j *DB) Update(r Record) error {
	return j.db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketOps), r.ID, r)
	})
}

// Get returns the record of an operation.
func (j *DB) Get(id string) (Record, error) {
	var r Record
	err := j.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOps).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("operation %s: %w", id, ErrNotFound)
		}
		var err error
		r, err = DecodeRecord(v)
		return err
	})
	return r, err
}

// Running returns every record still marked running (after a crash).
func (j *DB) Running() ([]Record, error) {
	var out []Record
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOps).ForEach(func(k, v []byte) error {
			r, err := DecodeRecord(v)
			if err != nil {
				return fmt.Errorf("operation %s: %w", k, err)
			}
			if r.State == api.NodeOpRunning {
				out = append(out, r)
			}
			return nil
		})
	})
	return out, err
}

// Prune deletes the finished operations (succeeded or failed) that finished
// before cutoff and returns how many; running operations are never deleted,
// nor are records that do not decode (they are left for an operator to see).
func (j *DB) Prune(cutoff time.Time) (int, error) {
	n := 0
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOps)
		var old [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			r, err := DecodeRecord(v)
			if err == nil && r.State != api.NodeOpRunning && !r.FinishedAt.IsZero() && r.FinishedAt.Before(cutoff) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, err
}

// PruneEvery prunes operations older than retention now and then every interval
// until ctx ends.
func (j *DB) PruneEvery(ctx context.Context, retention, interval time.Duration, now func() time.Time, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := j.Prune(now().Add(-retention)); err != nil {
			log.Warn("journal prune failed", "err", err)
		} else if n > 0 {
			log.Info("journal pruned", "operations", n, "older_than", retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PutTemplate stores a template.
func (j *DB) PutTemplate(t Template) error { return j.put(bucketTemplates, t.Name, t) }

// DeleteTemplate removes a template record.
func (j *DB) DeleteTemplate(name string) error { return j.delete(bucketTemplates, name) }

// GetTemplate returns a template or ErrNotFound.
func (j *DB) GetTemplate(name string) (Template, error) {
	return get[Template](j.db, bucketTemplates, name)
}

// Templates lists templates by name.
func (j *DB) Templates() ([]Template, error) { return list[Template](j.db, bucketTemplates) }

// PutVM stores a VM.
func (j *DB) PutVM(v VM) error { return j.put(bucketVMs, v.Name, v) }

// DeleteVM removes a VM record.
func (j *DB) DeleteVM(name string) error { return j.delete(bucketVMs, name) }

// GetVM returns a VM or ErrNotFound.
func (j *DB) GetVM(name string) (VM, error) { return get[VM](j.db, bucketVMs, name) }

// VMs lists VMs by name.
func (j *DB) VMs() ([]VM, error) { return list[VM](j.db, bucketVMs) }

// TemplateInUse reports the VMs whose disk is an overlay of the template.
func (j *DB) TemplateInUse(name string) ([]string, error) {
	vms, err := j.VMs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vms {
		if v.Template == name {
			out = append(out, v.Name)
		}
	}
	return out, nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// put stores v as JSON under key in bucket.
func (j *DB) put(bucket []byte, key string, v any) error {
	return j.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucket), key, v) })
}

// delete removes key from bucket.
func (j *DB) delete(bucket []byte, key string) error {
	return j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte(key)) })
}

// get decodes the JSON record under key in bucket, or returns ErrNotFound.
func get[T any](db *bolt.DB, bucket []byte, key string) (T, error) {
	var v T
	err := db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucket).Get([]byte(key))
		if data == nil {
			return fmt.Errorf("%s %s: %w", bucket[:len(bucket)-1], key, ErrNotFound)
		}
		return json.Unmarshal(data, &v)
	})
	return v, err
}

// list decodes every JSON record of bucket, in key order.
func list[T any](db *bolt.DB, bucket []byte) ([]T, error) {
	var out []T
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(_, b []byte) error {
			var v T
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	return out, err
}
