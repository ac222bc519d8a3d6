package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"go.yaml.in/yaml/v2"
)

// positionsFile is Promtail's positions.yaml:
//
//	positions:
//	  /var/log/pods/ns_pod_uid/c/0.log: "1234"
//
// Offsets are strings, keyed by path, so a node can move between Promtail
// and the agent without re-shipping or skipping lines.
type positionsFile struct {
	Positions map[string]string `yaml:"positions"`
}

// Positions keeps read offsets and saves them atomically.
type Positions struct {
	mu       sync.Mutex
	filename string
	offsets  map[string]int64
	sources  map[string]func() int64
}

// LoadPositions reads filename. A missing file is an empty set. An invalid
// file is an error unless ignoreInvalid, when it is reported in warn and
// the agent starts from an empty set.
func LoadPositions(filename string, ignoreInvalid bool) (*Positions, error, error) {
	p := &Positions{filename: filename, offsets: map[string]int64{}, sources: map[string]func() int64{}}
	data, err := os.ReadFile(filename)
	if os.IsNotExist(err) {
		return p, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read positions file: %w", err)
	}
	var pf positionsFile
	perr := yaml.UnmarshalStrict(data, &pf)
	if perr == nil {
		for k, v := range pf.Positions {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				perr = fmt.Errorf("position of %s: %q is not an offset", k, v)
				break
			}
			p.offsets[k] = n
		}
	}
	if perr != nil {
		perr = fmt.Errorf("positions file %s is invalid: %w", filename, perr)
		if !ignoreInvalid {
			return nil, nil, fmt.Errorf("%w (set positions.ignore_invalid_yaml to start over)", perr)
		}
		p.offsets = map[string]int64{}
		return p, perr, nil
	}
	return p, nil, nil
}

// Get returns the saved offset of path.
func (p *Positions) Get(path string) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.offsets[path]
	return n, ok
}

// Track makes Save read path's offset from fn until Untrack.
func (p *Positions) Track(path string, fn func() int64) {
	p.mu.Lock()
	p.sources[path] = fn
	p.mu.Unlock()
}

// Untrack stops reading path's offset live; its last value stays.
func (p *Positions) Untrack(path string) {
	p.mu.Lock()
	if fn, ok := p.sources[path]; ok {
		p.offsets[path] = fn()
		delete(p.sources, path)
	}
	p.mu.Unlock()
}

// Remove forgets path (its file is gone).
func (p *Positions) Remove(path string) {
	p.mu.Lock()
	delete(p.offsets, path)
	delete(p.sources, path)
	p.mu.Unlock()
}

// Snapshot returns every offset now.
func (p *Positions) Snapshot() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.offsets)+len(p.sources))
	for k, v := range p.offsets {
		out[k] = v
	}
	for k, fn := range p.sources {
		out[k] = fn()
		p.offsets[k] = out[k]
	}
	return out
}

// Save writes the file atomically (temporary file, fsync, rename).
func (p *Positions) Save() error {
	snap := p.Snapshot()
	keys := make([]string, 0, len(snap))
	for k := range snap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pf := positionsFile{Positions: make(map[string]string, len(snap))}
	for _, k := range keys {
		pf.Positions[k] = strconv.FormatInt(snap[k], 10)
	}
	data, err := yaml.Marshal(pf)
	if err != nil {
		return fmt.Errorf("save positions: %w", err)
	}
	dir := filepath.Dir(p.filename)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save positions: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".positions-*.yaml")
	if err != nil {
		return fmt.Errorf("save positions: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save positions: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save positions: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save positions: %w", err)
	}
	if err := os.Rename(tmp.Name(), p.filename); err != nil {
		return fmt.Errorf("save positions: %w", err)
	}
	return nil
}
