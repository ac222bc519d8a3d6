// Package chaos proves that `nxwatcher serve` loses nothing it acknowledged
// and stores nothing twice when it is killed under load, and that it
// refuses writes retryably, keeps answering queries and resumes by itself
// when its disk fills up.
//
// The harness builds the real binary once per test run, runs it as a
// subprocess on a temporary storage path and drives it only through its
// public APIs, as real clients would:
//
//   - Prometheus remote write 1.0 (POST /api/v1/write, prompb + snappy),
//   - Loki push (POST /loki/api/v1/push, protobuf + snappy),
//   - OTLP traces over gRPC (ptraceotlp client),
//   - a scrape target (an httptest server the config scrapes every second).
//
// Each sender records every write the server acknowledged and retries a
// refused or unanswered batch with exactly the same content, which is how
// at-least-once senders create duplicates. After each restart the harness
// reads everything back (/api/v1/query with a range selector,
// /loki/api/v1/query_range, /api/traces/<id>) and counts, per signal,
// acknowledged items, lost items (acknowledged but not found) and duplicated
// items (found more than once). Samples cannot be duplicated: the TSDB keeps
// one sample per series and timestamp.
//
// Tests:
//
//	go test ./bench/chaos                          # short: 5 kills + disk full (in make test)
//	go test ./bench/chaos -run CrashLoop -timeout 60m -chaos.kills=100 -v   # long
//
// TestDiskFull mounts a 256 MiB tmpfs (root only; -chaos.tmpfs-size), fills
// it while the load runs, frees it, and kills and restarts the server; it
// skips with a message when mount(2) is not permitted.
package chaos
