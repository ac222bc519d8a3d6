// Package logql parses and evaluates LogQL, written from Loki's public
// documentation. ParseExpr is a hand-written recursive-descent parser whose
// errors are *ParseError with line and column; every Expr prints back
// (String) to a form that parses to the same tree. Engine.Exec evaluates log
// queries (Streams) and metric queries (Matrix, Vector, Scalar) against any
// Storage (*logstore.DB), pushing leading `|=` filters into the store's
// bloom filters and chunk scans, and evaluating streams in parallel.
// Script tests in testdata/*.test pin the behaviour; ADR 0011 lists where
// it differs from Loki.
package logql
