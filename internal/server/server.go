// Package server owns the HTTP listener of `nxwatcher serve`: one listener,
// one mux built in routes.go, and the middleware that counts every request.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
)

// Server is the main HTTP listener.
type Server struct {
	logger   *slog.Logger
	listener net.Listener
	http     *http.Server
	ran      atomic.Bool
	// webConfigFile is an exporter-toolkit web config (TLS, basic auth,
	// headers), as Prometheus's --web.config.file; "" serves plain HTTP.
	webConfigFile string
}

// UseWebConfig serves TLS and basic auth as the exporter-toolkit web config
// file at path says (Prometheus's --web.config.file). The file is checked
// now and re-read on every connection and request, so certificate and user
// changes apply without a restart. Call it before Run.
func (s *Server) UseWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("web config %s: %w", path, err)
	}
	s.webConfigFile = path
	return nil
}

// Listen binds the address now, so a busy port fails start-up early and a
// ":0" address has its real port before anything needs it.
func Listen(addr string, logger *slog.Logger) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return &Server{logger: logger.With("component", "web"), listener: l}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Serve sets the handler; call it once before Run.
func (s *Server) Serve(h http.Handler) {
	s.http = &http.Server{
		Handler: h,
		// A client that dribbles its headers is cut off; idle keep-alive
		// connections are closed. Bodies may be slow (push, tail), so there
		// is no ReadTimeout; handlers bound their own work.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
}

// Run serves until ctx ends, then drains in-flight requests.
func (s *Server) Run(ctx context.Context) error {
	s.ran.Store(true)
	errc := make(chan error, 1)
	if s.webConfigFile != "" {
		path := s.webConfigFile
		go func() {
			// exporter-toolkit logs its own "Listening on" and TLS lines.
			errc <- web.Serve(s.listener, s.http, &web.FlagConfig{WebConfigFile: &path}, s.logger)
		}()
	} else {
		go func() { errc <- s.http.Serve(s.listener) }()
	}
	if s.webConfigFile != "" {
		s.logger.Info("Listening", "address", s.listener.Addr().String(), "web_config", s.webConfigFile)
	} else {
		s.logger.Info("Listening", "address", s.listener.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		s.logger.Warn("HTTP shutdown did not drain", "err", err)
		_ = s.http.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Close releases the listener when Run never started.
func (s *Server) Close() error {
	if s.ran.Load() {
		return nil // Run's shutdown closed it.
	}
	return s.listener.Close()
}

// Instrumentation counts requests per route, so rejected input shows as
// 4xx in nxwatcher_http_requests_total{handler,code}.
type Instrumentation struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewInstrumentation registers the HTTP metrics.
func NewInstrumentation(reg prometheus.Registerer) *Instrumentation {
	in := &Instrumentation{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_http_requests_total",
			Help: "HTTP requests served, by route and status code.",
		}, []string{"handler", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "nxwatcher_http_request_duration_seconds",
			Help:                            "Time to serve HTTP requests, by route.",
			Buckets:                         []float64{.005, .025, .1, .5, 1, 5, 30, 120},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"handler"}),
	}
	reg.MustRegister(in.requests, in.duration)
	return in
}

// Wrap instruments one route under its name.
func (in *Instrumentation) Wrap(name string, h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		in.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
		in.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}
}

// WrapFunc is Wrap for routers that name their own routes.
func (in *Instrumentation) WrapFunc(name string, h http.HandlerFunc) http.HandlerFunc {
	return in.Wrap(name, h)
}

type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses streaming.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer
// (WebSocket hijacking, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
