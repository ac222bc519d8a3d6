//go:build slicelabels || dedupelabels

package promapi

// labelsShareStrings: these label builds keep the strings they are given,
// so views into the (reused) request buffer must be copied first.
const labelsShareStrings = true
