package promapi

import (
	"log/slog"
	"net/http"
	"sync"

	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// openAPINoPath is an OpenAPIOptions.IncludePaths entry that is the prefix
// of no path of the API. v1.NewAPI builds and renders its OpenAPI document
// (3.1 and 3.2) at once, ~38 MB of short-lived allocations at every
// start-up, 80 % of what serve allocates before it is ready; with this
// filter the document it builds holds no paths, and /api/v1/openapi.yaml is
// answered by lazyOpenAPI instead (ADR 0088).
const openAPINoPath = "\x00no path"

// lazyOpenAPI serves /api/v1/openapi.yaml with Prometheus's own builder
// and the options v1.NewAPI would have been given, built on the first
// request: the answer is upstream's byte for byte, and a server nobody
// asks for its OpenAPI document never builds it.
type lazyOpenAPI struct {
	opts   v1.OpenAPIOptions
	logger *slog.Logger

	once    sync.Once
	builder *v1.OpenAPIBuilder
}

func (l *lazyOpenAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.once.Do(func() { l.builder = v1.NewOpenAPIBuilder(l.opts, l.logger) })
	l.builder.ServeOpenAPI(w, r)
}
