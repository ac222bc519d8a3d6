package logql

import (
	"fmt"
	"net/netip"
	"strings"
)

// ipPattern is the argument of ip("…"): a single address, a range
// "from-to" (inclusive, both of one family) or a CIDR prefix, IPv4 or IPv6.
type ipPattern struct {
	from, to netip.Addr
	prefix   netip.Prefix
	isPrefix bool
}

func compileIPPattern(s string) (*ipPattern, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("invalid CIDR %q: %w", s, err)
		}
		return &ipPattern{prefix: p.Masked(), isPrefix: true}, nil
	case strings.Contains(s, "-"):
		a, b, _ := strings.Cut(s, "-")
		from, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			return nil, fmt.Errorf("invalid IP range %q: %w", s, err)
		}
		to, err := netip.ParseAddr(strings.TrimSpace(b))
		if err != nil {
			return nil, fmt.Errorf("invalid IP range %q: %w", s, err)
		}
		from, to = from.Unmap(), to.Unmap()
		if from.Is4() != to.Is4() {
			return nil, fmt.Errorf("invalid IP range %q: both ends must be IPv4 or both IPv6", s)
		}
		if to.Less(from) {
			return nil, fmt.Errorf("invalid IP range %q: start is after end", s)
		}
		return &ipPattern{from: from, to: to}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, fmt.Errorf("invalid IP address %q: %w", s, err)
	}
	a = a.Unmap()
	return &ipPattern{from: a, to: a}, nil
}

func (p *ipPattern) contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if p.isPrefix {
		return p.prefix.Contains(a)
	}
	return a.Is4() == p.from.Is4() && a.Compare(p.from) >= 0 && a.Compare(p.to) <= 0
}

// matchValue reports whether a whole label value is an address in the pattern.
func (p *ipPattern) matchValue(v string) bool {
	a, err := netip.ParseAddr(strings.TrimSpace(v))
	return err == nil && p.contains(a)
}

// matchLine reports whether any address written in the line is in the
// pattern. Candidates are the runs of hex digits, '.' and ':' in the line
// (so "10.0.0.1:8080" and "[::1]:80" give their addresses too).
func (p *ipPattern) matchLine(line string) bool {
	i := 0
	for i < len(line) {
		if !isIPChar(line[i]) {
			i++
			continue
		}
		j := i
		for j < len(line) && isIPChar(line[j]) {
			j++
		}
		if p.matchCandidate(line[i:j]) {
			return true
		}
		i = j
	}
	return false
}

func (p *ipPattern) matchCandidate(c string) bool {
	if len(c) < 2 || !strings.ContainsAny(c, ".:") {
		return false
	}
	c = strings.Trim(c, ".")
	if strings.HasPrefix(c, ":") && !strings.HasPrefix(c, "::") {
		c = c[1:] // "ip:2001:db8::1"
	}
	if strings.HasSuffix(c, ":") && !strings.HasSuffix(c, "::") {
		c = c[:len(c)-1]
	}
	if a, err := netip.ParseAddr(c); err == nil {
		return p.contains(a)
	}
	// IPv4 addresses inside a longer run: "10.0.0.1:8080", "addr:10.0.0.1".
	for i := 0; i < len(c); {
		if !(c[i] >= '0' && c[i] <= '9') {
			i++
			continue
		}
		j := i
		for j < len(c) && (c[j] >= '0' && c[j] <= '9' || c[j] == '.') {
			j++
		}
		if a, err := netip.ParseAddr(strings.TrimRight(c[i:j], ".")); err == nil && p.contains(a) {
			return true
		}
		i = j
	}
	return false
}

func isIPChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':'
}
