// Package logs holds the log benchmarks (go test -bench ./bench/logs/) and,
// in rss/, a paced-ingest tool that reports RSS; see bench/README.md ("logs")
// for the commands and the figures measured.
package logs
