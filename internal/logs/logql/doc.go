// Package logql parses and evaluates LogQL, written from Loki's public
// documentation. ParseExpr is a hand-written recursive-descent parser whose
// errors are *ParseError with line and column; every Expr prints back
// (String) to a form that parses to the same tree. Engine.Exec evaluates log
// queries (Streams) and metric queries (Matrix, Vector, Scalar) against any
// Storage (*logstore.DB), pushing leading `|=` filters into the store's
// bloom filters and chunk scans, and evaluating streams in parallel. Range
// metric queries are evaluated at multiples of the step (AlignSteps), as
// Loki does. Script tests in testdata/*.test pin the behaviour; ADR 0011
// lists where it differs from Loki and ADR 0019 the Loki 3 answers of
// issue 9 (step alignment, pipeline errors, ip(), group_left/right,
// label_replace, template functions).
package logql
