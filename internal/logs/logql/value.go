package logql

import (
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// Value is a query result: Streams, Matrix, Vector or Scalar.
type Value interface{ Type() string }

// StreamResult is one result stream of a log query.
type StreamResult struct {
	Labels  labels.Labels
	Entries []logstore.Entry
	// Categories is set, one per entry, when the query ran with
	// Params.Categorize: Labels then holds only the stream's index labels
	// and each entry's other labels are here, split as Loki's
	// categorize-labels encoding does.
	Categories []EntryLabels
}

// EntryLabels are an entry's labels besides its stream's: structured
// metadata as stored (detected_level included) and the labels its pipeline
// extracted or formatted (parsers, label_format, __error__).
type EntryLabels struct {
	StructuredMetadata labels.Labels
	Parsed             labels.Labels
}

// Streams is the result of a log query.
type Streams []StreamResult

// Point is a sample at a time in Unix milliseconds.
type Point struct {
	T int64
	V float64
}

// Series is one series of a matrix.
type Series struct {
	Metric labels.Labels
	Points []Point
}

// Matrix is the result of a range metric query.
type Matrix []Series

// Sample is one element of a vector.
type Sample struct {
	Metric labels.Labels
	T      int64
	V      float64
}

// Vector is the result of an instant metric query.
type Vector []Sample

// Scalar is a number at a time.
type Scalar struct {
	T int64
	V float64
}

func (Streams) Type() string { return "streams" }
func (Matrix) Type() string  { return "matrix" }
func (Vector) Type() string  { return "vector" }
func (Scalar) Type() string  { return "scalar" }
