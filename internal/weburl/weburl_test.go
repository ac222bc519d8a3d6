package weburl

import (
	"net/url"
	"testing"
)

func TestNormalizeAndRoutePrefix(t *testing.T) {
	for _, tc := range []struct{ in, want, prefix string }{
		{"http://h:9090", "http://h:9090", "/"},
		{"http://h:9090/", "http://h:9090", "/"},
		{"https://h/prom/", "https://h/prom", "/prom"},
		{"https://h/a/b//", "https://h/a/b", "/a/b"},
	} {
		u, _ := url.Parse(tc.in)
		got, err := Normalize(u)
		if err != nil || got.String() != tc.want {
			t.Errorf("Normalize(%s) = %v, %v; want %s", tc.in, got, err, tc.want)
			continue
		}
		if p := RoutePrefix("", got); p != tc.prefix {
			t.Errorf("RoutePrefix of %s = %q, want %q", tc.in, p, tc.prefix)
		}
	}
	if _, err := Normalize(&url.URL{Path: "/x"}); err == nil {
		t.Error("a relative URL must be refused")
	}
	if p := RoutePrefix("/x/", &url.URL{Path: "/y"}); p != "/x" {
		t.Errorf("explicit prefix = %q, want /x", p)
	}
}
