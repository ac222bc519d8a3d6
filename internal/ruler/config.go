package ruler

import (
	"errors"
	"time"

	"github.com/prometheus/common/model"
)

// Config holds the ruler knobs that Prometheus has as flags (rule_files,
// evaluation_interval and the alertmanagers come from the prometheus.yml
// given to ApplyConfig).
type Config struct {
	// OutageTolerance is the longest outage after which `for` state is
	// still restored from ALERTS_FOR_STATE (--rules.alert.for-outage-tolerance).
	OutageTolerance model.Duration `yaml:"for_outage_tolerance,omitempty"`
	// ForGracePeriod is the minimum `for` left after a restore
	// (--rules.alert.for-grace-period).
	ForGracePeriod model.Duration `yaml:"for_grace_period,omitempty"`
	// ResendDelay is the minimum wait before resending a firing alert
	// (--rules.alert.resend-delay).
	ResendDelay model.Duration `yaml:"resend_delay,omitempty"`
	// NotificationQueueCapacity bounds alerts queued for external
	// Alertmanagers (--alertmanager.notification-queue-capacity).
	NotificationQueueCapacity int `yaml:"notification_queue_capacity,omitempty"`
}

// DefaultConfig returns Prometheus's flag defaults.
func DefaultConfig() Config {
	return Config{
		OutageTolerance:           model.Duration(time.Hour),
		ForGracePeriod:            model.Duration(10 * time.Minute),
		ResendDelay:               model.Duration(time.Minute),
		NotificationQueueCapacity: 10000,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.OutageTolerance <= 0 {
		errs = append(errs, errors.New("ruler.for_outage_tolerance: must be positive"))
	}
	if c.ForGracePeriod < 0 {
		errs = append(errs, errors.New("ruler.for_grace_period: must not be negative"))
	}
	if c.ResendDelay <= 0 {
		errs = append(errs, errors.New("ruler.resend_delay: must be positive"))
	}
	if c.NotificationQueueCapacity <= 0 {
		errs = append(errs, errors.New("ruler.notification_queue_capacity: must be positive"))
	}
	return errors.Join(errs...)
}
