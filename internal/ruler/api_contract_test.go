package ruler

import (
	"github.com/prometheus/prometheus/rules"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// The foundation passes Manager() and the Ruler to web/api/v1.NewAPI.
var (
	_ v1.RulesRetriever        = (*rules.Manager)(nil)
	_ v1.AlertmanagerRetriever = (*Ruler)(nil)
	_ func() *rules.Manager    = (*Ruler)(nil).Manager
)
