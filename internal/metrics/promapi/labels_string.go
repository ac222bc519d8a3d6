//go:build !slicelabels && !dedupelabels

package promapi

// labelsShareStrings: with stringlabels (Prometheus's default) a built
// labels.Labels is one new string, so label views into the request bytes
// may be handed to the builder.
const labelsShareStrings = false
