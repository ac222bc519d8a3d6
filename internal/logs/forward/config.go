package forward

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/nx-watcher/nxwatcher/internal/backlog"
	"github.com/nx-watcher/nxwatcher/internal/units"
)

// EndpointConfig is one entry of `logs.forward`: a Loki-compatible push
// endpoint that receives every accepted line.
type EndpointConfig struct {
	// URL is the push endpoint, e.g. http://loki:3100/loki/api/v1/push.
	URL string `yaml:"url"`
	// Name names the endpoint in metrics and its backlog directory;
	// defaults to the URL's host and path.
	Name string `yaml:"name"`
	// TenantID is sent as X-Scope-OrgID when set.
	TenantID string            `yaml:"tenant_id"`
	Headers  map[string]string `yaml:"headers"`
	// HTTPClientConfig carries basic_auth, authorization, oauth2,
	// tls_config, proxy_url and the rest of Prometheus's HTTP client config.
	HTTPClientConfig commoncfg.HTTPClientConfig `yaml:",inline"`
	Timeout          model.Duration             `yaml:"timeout"`
	MinBackoff       model.Duration             `yaml:"min_backoff"`
	MaxBackoff       model.Duration             `yaml:"max_backoff"`
	// MaxBacklog bounds the endpoint's disk backlog; past it the oldest
	// unsent segments are dropped (and counted).
	MaxBacklog units.Bytes `yaml:"max_backlog"`
	// SegmentSize is the size at which the backlog starts a new file.
	SegmentSize units.Bytes `yaml:"segment_size"`
}

// Defaults for an endpoint.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultMaxBacklog  = units.Bytes(1 << 30)
	DefaultSegmentSize = units.Bytes(8 << 20)
)

// SetDefaults fills unset fields.
func (c *EndpointConfig) SetDefaults() {
	if c.Timeout == 0 {
		c.Timeout = model.Duration(DefaultTimeout)
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = model.Duration(DefaultMinBackoff)
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = model.Duration(DefaultMaxBackoff)
	}
	if c.MaxBacklog == 0 {
		c.MaxBacklog = DefaultMaxBacklog
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
}

// Validate reports every problem of the endpoint at once.
func (c *EndpointConfig) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("url: must be set"))
	case err != nil:
		errs = append(errs, fmt.Errorf("url: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("url: scheme must be http or https, not %q", u.Scheme))
	case u.Host == "":
		errs = append(errs, errors.New("url: has no host"))
	}
	if err := c.HTTPClientConfig.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 {
		errs = append(errs, errors.New("timeout, min_backoff and max_backoff must not be negative"))
	}
	if c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff {
		errs = append(errs, errors.New("min_backoff must not exceed max_backoff"))
	}
	if c.MaxBacklog < 0 || c.SegmentSize < 0 {
		errs = append(errs, errors.New("max_backlog and segment_size must not be negative"))
	}
	if c.MaxBacklog > 0 && c.SegmentSize > 0 && c.MaxBacklog < 2*c.SegmentSize {
		errs = append(errs, errors.New("max_backlog must hold at least two segments (2 × segment_size)"))
	}
	return errors.Join(errs...)
}

func (c *EndpointConfig) name() string {
	if c.Name != "" {
		return c.Name
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return c.URL
	}
	return u.Host + u.Path
}

// Mode is `logs.mode`: store (the default) or forward-only, which keeps no
// local store or index and refuses log queries (ADR 0008).
type Mode = backlog.Mode

// The modes.
const (
	ModeStore       = backlog.ModeStore
	ModeForwardOnly = backlog.ModeForwardOnly
)

// ValidateMode checks logs.mode against logs.forward.
func ValidateMode(m Mode, endpoints []EndpointConfig) error { return m.Check("logs", len(endpoints)) }
