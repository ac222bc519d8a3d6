package backlog

import (
	"errors"
	"fmt"
)

// Mode is `logs.mode` / `traces.mode`: what a node does with what it
// accepted (ADR 0008).
type Mode string

const (
	// ModeStore (the default, also spelled "") stores everything accepted
	// in the local store, and forwards it too when endpoints are set.
	ModeStore Mode = "store"
	// ModeForwardOnly keeps no local store or index: accepted data goes only
	// to the forward endpoints' disk backlogs, and the sender is answered
	// once it is in every backlog.
	ModeForwardOnly Mode = "forward-only"
)

// UnmarshalYAML refuses modes that do not exist.
func (m *Mode) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	if err := Mode(s).known(); err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	*m = Mode(s)
	return nil
}

func (m Mode) known() error {
	switch m {
	case "", ModeStore, ModeForwardOnly:
		return nil
	}
	return fmt.Errorf("%q is neither %q nor %q", string(m), ModeStore, ModeForwardOnly)
}

// ForwardOnly is true for ModeForwardOnly.
func (m Mode) ForwardOnly() bool { return m == ModeForwardOnly }

// Check validates the mode of section ("logs", "traces") against its number
// of forward endpoints: forward-only needs one, or everything accepted
// would be thrown away.
func (m Mode) Check(section string, endpoints int) error {
	if err := m.known(); err != nil {
		return fmt.Errorf("%s.mode: %w", section, err)
	}
	if m == ModeForwardOnly && endpoints == 0 {
		return fmt.Errorf("%s.mode: forward-only needs at least one %s.forward endpoint (it keeps no local store)", section, section)
	}
	return nil
}

// ValidateEndpoints reports every problem of a forward list (section is
// "logs.forward" or "traces.forward") at once: each endpoint's, as check
// finds it after setting its defaults, and two endpoints whose names share
// a backlog directory.
func ValidateEndpoints[C any](section string, cfgs []C, check func(*C) (name string, err error)) error {
	var errs []error
	seen := map[string]int{}
	for i := range cfgs {
		cfg := cfgs[i] // check sets defaults on a copy
		name, err := check(&cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", section, i, err))
			continue
		}
		d := DirName(name)
		if j, ok := seen[d]; ok {
			errs = append(errs, fmt.Errorf("%s[%d]: same name as %s[%d] (%q): set name", section, i, section, j, name))
		}
		seen[d] = i
	}
	return errors.Join(errs...)
}
