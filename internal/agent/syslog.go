package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// SyslogTargetConfig is a scrape config's syslog block, as Promtail
// documents it: the job listens for syslog messages (RFC 5424, or RFC 3164
// with syslog_format) over TCP — octet-counted or newline-framed, detected
// per connection — or UDP (one message per datagram).
type SyslogTargetConfig struct {
	ListenAddress        string         `yaml:"listen_address"`
	ListenProtocol       string         `yaml:"listen_protocol"`
	IdleTimeout          model.Duration `yaml:"idle_timeout"`
	LabelStructuredData  bool           `yaml:"label_structured_data"`
	Labels               model.LabelSet `yaml:"labels"`
	UseIncomingTimestamp bool           `yaml:"use_incoming_timestamp"`
	UseRFC5424Message    bool           `yaml:"use_rfc5424_message"`
	MaxMessageLength     int            `yaml:"max_message_length"`
	SyslogFormat         string         `yaml:"syslog_format"`
	// TLSConfig serves TCP syslog over TLS (cert_file, key_file; with
	// ca_file, client certificates signed by it are required).
	TLSConfig *commoncfg.TLSConfig `yaml:"tls_config,omitempty"`
}

const (
	defaultSyslogIdle   = 120 * time.Second
	defaultSyslogMaxLen = 8192
)

func (c *SyslogTargetConfig) validate() []error {
	var errs []error
	if c.ListenAddress == "" {
		errs = append(errs, errors.New("syslog.listen_address is required"))
	}
	switch c.ListenProtocol {
	case "", "tcp", "udp":
	default:
		errs = append(errs, fmt.Errorf("syslog.listen_protocol: %q is not tcp or udp", c.ListenProtocol))
	}
	switch c.SyslogFormat {
	case "", "rfc5424", "rfc3164":
	default:
		errs = append(errs, fmt.Errorf("syslog.syslog_format: %q is not rfc5424 or rfc3164", c.SyslogFormat))
	}
	if err := c.Labels.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("syslog.labels: %w", err))
	}
	if c.TLSConfig != nil {
		if c.ListenProtocol == "udp" {
			errs = append(errs, errors.New("syslog.tls_config: TLS needs listen_protocol tcp"))
		}
		if c.TLSConfig.CertFile == "" || c.TLSConfig.KeyFile == "" {
			errs = append(errs, errors.New("syslog.tls_config: cert_file and key_file are both required"))
		}
	}
	return errs
}

type syslogTarget struct {
	src     *lineSource
	cfg     SyslogTargetConfig
	logger  *slog.Logger
	tcp     net.Listener
	udp     net.PacketConn
	maxLen  int
	idle    time.Duration
	rfc3164 bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newSyslogTarget(src *lineSource, cfg SyslogTargetConfig, logger *slog.Logger) (*syslogTarget, error) {
	t := &syslogTarget{
		src: src, cfg: cfg, logger: logger.With("job", src.job, "source", "syslog"),
		maxLen: cfg.MaxMessageLength, idle: time.Duration(cfg.IdleTimeout),
		rfc3164: cfg.SyslogFormat == "rfc3164", conns: map[net.Conn]struct{}{},
	}
	if t.maxLen <= 0 {
		t.maxLen = defaultSyslogMaxLen
	}
	if t.idle <= 0 {
		t.idle = defaultSyslogIdle
	}
	var err error
	if cfg.ListenProtocol == "udp" {
		t.udp, err = net.ListenPacket("udp", cfg.ListenAddress)
	} else {
		t.tcp, err = net.Listen("tcp", cfg.ListenAddress)
	}
	if err != nil {
		return nil, fmt.Errorf("syslog job %q: listen %s: %w", src.job, cfg.ListenAddress, err)
	}
	if cfg.TLSConfig != nil && t.tcp != nil {
		tc, err := syslogServerTLS(cfg.TLSConfig)
		if err != nil {
			_ = t.tcp.Close()
			return nil, fmt.Errorf("syslog job %q: tls_config: %w", src.job, err)
		}
		t.tcp = tls.NewListener(t.tcp, tc)
	}
	return t, nil
}

// syslogServerTLS builds the server side of syslog over TLS (RFC 5425):
// the certificate is re-read for every handshake, so a renewed one applies
// without a restart; a ca_file makes client certificates mandatory.
func syslogServerTLS(c *commoncfg.TLSConfig) (*tls.Config, error) {
	load := func() (*tls.Certificate, error) {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		return &cert, nil
	}
	if _, err := load(); err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return load() },
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no certificates", c.CAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func (t *syslogTarget) addr() string {
	if t.udp != nil {
		return t.udp.LocalAddr().String()
	}
	return t.tcp.Addr().String()
}

func (t *syslogTarget) close() {
	if t.udp != nil {
		_ = t.udp.Close()
	} else {
		_ = t.tcp.Close()
	}
}

func (t *syslogTarget) parser() syslog.Machine {
	if t.rfc3164 {
		return rfc3164.NewParser(rfc3164.WithBestEffort(), rfc3164.WithYear(rfc3164.CurrentYear{}))
	}
	return rfc5424.NewParser(rfc5424.WithBestEffort())
}

// run receives until ctx ends; then the listener and every connection are
// closed and run returns once their readers have.
func (t *syslogTarget) run(ctx context.Context) {
	t.logger.Info("Receiving syslog", "addr", t.addr(), "protocol", map[bool]string{true: "udp", false: "tcp"}[t.udp != nil])
	stop := context.AfterFunc(ctx, func() {
		t.close()
		t.mu.Lock()
		for c := range t.conns {
			_ = c.Close()
		}
		t.mu.Unlock()
	})
	defer stop()
	if t.udp != nil {
		t.runUDP(ctx)
		return
	}
	for {
		c, err := t.tcp.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				t.logger.Warn("accept", "err", err)
				continue
			}
			break
		}
		t.mu.Lock()
		if ctx.Err() != nil {
			t.mu.Unlock()
			_ = c.Close()
			break
		}
		t.conns[c] = struct{}{}
		t.mu.Unlock()
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.serveConn(ctx, c)
			t.mu.Lock()
			delete(t.conns, c)
			t.mu.Unlock()
			_ = c.Close()
		}()
	}
	t.wg.Wait()
}

func (t *syslogTarget) runUDP(ctx context.Context) {
	buf := make([]byte, 65536)
	p := t.parser()
	for {
		n, from, err := t.udp.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		msg := buf[:n]
		// A datagram may still carry octet-counting or a trailing newline.
		if i := strings.IndexByte(string(msg[:min(len(msg), 8)]), ' '); i > 0 && isDigits(msg[:i]) {
			msg = msg[i+1:]
		}
		for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == 0) {
			msg = msg[:len(msg)-1]
		}
		t.handleFrame(ctx, p, msg, from)
	}
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// serveConn reads frames from one TCP connection: octet-counted when it
// starts with a digit (RFC 6587 3.4.1), newline-terminated otherwise.
func (t *syslogTarget) serveConn(ctx context.Context, c net.Conn) {
	r := bufio.NewReaderSize(c, 4096)
	p := t.parser()
	for {
		_ = c.SetReadDeadline(time.Now().Add(t.idle))
		b, err := r.Peek(1)
		if err != nil {
			return
		}
		var frame []byte
		if b[0] >= '0' && b[0] <= '9' {
			frame, err = t.readOctetCounted(r)
		} else {
			frame, err = t.readLine(r)
		}
		if frame != nil {
			t.handleFrame(ctx, p, frame, c.RemoteAddr())
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				var ne net.Error
				if !(errors.As(err, &ne) && ne.Timeout()) {
					t.src.m.dropped.WithLabelValues(t.src.job, t.src.kind, "bad_frame").Inc()
					t.logger.Debug("syslog connection closed", "remote", c.RemoteAddr().String(), "err", err)
				}
			}
			return
		}
	}
}

func (t *syslogTarget) readOctetCounted(r *bufio.Reader) ([]byte, error) {
	lenStr, err := r.ReadString(' ')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(lenStr))
	if err != nil || n <= 0 || len(lenStr) > 11 {
		return nil, fmt.Errorf("bad octet count %q", lenStr)
	}
	if n > t.maxLen {
		// Too long: skip it, keep the connection.
		t.src.m.dropped.WithLabelValues(t.src.job, t.src.kind, "too_long").Inc()
		_, err := r.Discard(n)
		return nil, err
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(r, frame); err != nil {
		return nil, err
	}
	for len(frame) > 0 && frame[len(frame)-1] == '\n' {
		frame = frame[:len(frame)-1]
	}
	return frame, nil
}

// readLine reads one newline- (or NUL-) terminated message; a longer one
// than max_message_length is dropped and counted.
func (t *syslogTarget) readLine(r *bufio.Reader) ([]byte, error) {
	var frame []byte
	tooLong := false
	for {
		b, err := r.ReadSlice('\n')
		if !tooLong {
			frame = append(frame, b...)
			if len(frame) > t.maxLen+1 {
				tooLong, frame = true, nil
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			t.src.m.dropped.WithLabelValues(t.src.job, t.src.kind, "too_long").Inc()
			if err != nil {
				return nil, err
			}
			return nil, nil
		}
		frame = []byte(strings.TrimRight(string(frame), "\r\n\x00"))
		if len(frame) == 0 {
			return nil, err
		}
		return frame, err
	}
}

// handleFrame parses one message and hands it to the job.
func (t *syslogTarget) handleFrame(ctx context.Context, p syslog.Machine, frame []byte, remote net.Addr) {
	msg, err := p.Parse(frame)
	if err != nil && msg == nil {
		t.src.m.dropped.WithLabelValues(t.src.job, t.src.kind, "parse_error").Inc()
		return
	}
	var base *syslog.Base
	var sd *map[string]map[string]string
	switch m := msg.(type) {
	case *rfc5424.SyslogMessage:
		base, sd = &m.Base, m.StructuredData
	case *rfc3164.SyslogMessage:
		base = &m.Base
	default:
		t.src.m.dropped.WithLabelValues(t.src.job, t.src.kind, "parse_error").Inc()
		return
	}
	ls := model.LabelSet{}
	if host, _, err := net.SplitHostPort(remote.String()); err == nil {
		ls["__syslog_connection_ip_address"] = model.LabelValue(host)
	}
	set := func(name string, v *string) {
		if v != nil && *v != "" && *v != "-" {
			ls[model.LabelName(name)] = model.LabelValue(*v)
		}
	}
	set("__syslog_message_severity", msg.SeverityLevel())
	set("__syslog_message_facility", msg.FacilityLevel())
	set("__syslog_message_hostname", base.Hostname)
	set("__syslog_message_app_name", base.Appname)
	set("__syslog_message_proc_id", base.ProcID)
	set("__syslog_message_msg_id", base.MsgID)
	if sd != nil && t.cfg.LabelStructuredData {
		// [example@99999 test="yes"] → __syslog_message_sd_example_99999_test="yes"
		for id, params := range *sd {
			for k, v := range params {
				ls[model.LabelName("__syslog_message_sd_"+sanitizeLabelName(id)+"_"+sanitizeLabelName(k))] = model.LabelValue(v)
			}
		}
	}
	line := ""
	if base.Message != nil {
		line = *base.Message
	}
	if t.cfg.UseRFC5424Message {
		line = string(frame)
	}
	e := Entry{Time: time.Now(), Line: line}
	if t.cfg.UseIncomingTimestamp && base.Timestamp != nil {
		e.Time = *base.Timestamp
	}
	t.src.handle(ctx, ls, e)
}
