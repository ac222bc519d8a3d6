// Package weburl normalises the externally visible URL and route prefix the
// way Prometheus and Alertmanager treat --web.external-url and
// --web.route-prefix, so serve, the ruler and the Alertmanager agree.
package weburl

import (
	"fmt"
	"net/url"
	"strings"
)

// Normalize returns a copy of u that is absolute, has no trailing "/" and a
// path that is empty or starts with "/".
func Normalize(u *url.URL) (*url.URL, error) {
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute URL", u.String())
	}
	c := *u
	c.Path = strings.TrimRight(c.Path, "/")
	if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
		c.Path = "/" + c.Path
	}
	c.RawPath = ""
	return &c, nil
}

// RoutePrefix is "/" or "/x/y" (no trailing "/"); "" takes ext's path.
func RoutePrefix(prefix string, ext *url.URL) string {
	if prefix == "" {
		prefix = ext.Path
	}
	return "/" + strings.Trim(prefix, "/")
}
