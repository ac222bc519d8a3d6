// The web UI is a Node project. This file makes web/ui its own (empty) Go
// module, so `go test ./...` and `go vet ./...` skip node_modules, where some
// npm packages ship Go sources.
module nxwatcher-web-ui-not-go

go 1.26
