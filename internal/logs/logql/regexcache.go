package logql

import (
	"regexp"
	"sync"
	"sync/atomic"
)

// Template functions get their pattern as an argument on every line, so
// compiled patterns are kept; a template has few distinct ones, and past
// maxCachedRegexps new patterns are compiled without being kept.
const maxCachedRegexps = 256

var (
	regexpCache     sync.Map // pattern -> *regexp.Regexp
	regexpCacheSize atomic.Int32
)

func cachedRegexp(pattern string) (*regexp.Regexp, error) {
	if r, ok := regexpCache.Load(pattern); ok {
		return r.(*regexp.Regexp), nil
	}
	r, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	if regexpCacheSize.Add(1) <= maxCachedRegexps {
		regexpCache.Store(pattern, r)
	}
	return r, nil
}

// RegexReplaceAll is the regexReplaceAll template function of LogQL's
// line_format/label_format and Promtail's template stage.
func RegexReplaceAll(pattern, s, repl string) (string, error) {
	r, err := cachedRegexp(pattern)
	if err != nil {
		return "", err
	}
	return r.ReplaceAllString(s, repl), nil
}

// RegexReplaceAllLiteral is regexReplaceAll without $-expansion in repl.
func RegexReplaceAllLiteral(pattern, s, repl string) (string, error) {
	r, err := cachedRegexp(pattern)
	if err != nil {
		return "", err
	}
	return r.ReplaceAllLiteralString(s, repl), nil
}
