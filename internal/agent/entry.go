package agent

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
)

// tenantLabel is the reserved label the tenant stage sets; clients read it as
// the X-Scope-OrgID of the entry and remove it, as Promtail does.
const tenantLabel = "__tenant_id__"

// Entry is one log line travelling through a pipeline to the clients.
type Entry struct {
	Labels    model.LabelSet
	Time      time.Time
	Line      string
	Metadata  model.LabelSet // structured metadata
	Extracted map[string]any
	// ack settles the line's file offset once every client has it.
	ack *ackRef
	// shared marks Labels as the target's own set: copy before writing.
	shared bool
}

// setLabel sets a label, copying a shared set first.
func (e *Entry) setLabel(name model.LabelName, v model.LabelValue) {
	e.ownLabels()
	e.Labels[name] = v
}

func (e *Entry) delLabel(name model.LabelName) {
	if _, ok := e.Labels[name]; !ok {
		return
	}
	e.ownLabels()
	delete(e.Labels, name)
}

func (e *Entry) ownLabels() {
	if e.shared || e.Labels == nil {
		e.Labels = e.Labels.Clone()
		if e.Labels == nil {
			e.Labels = model.LabelSet{}
		}
		e.shared = false
	}
}

func (e *Entry) extracted() map[string]any {
	if e.Extracted == nil {
		e.Extracted = map[string]any{}
	}
	return e.Extracted
}

// lookup returns a source's value as a string: an extracted value, or the
// line itself when source is empty.
func (e *Entry) lookup(source string) (string, bool) {
	if source == "" {
		return e.Line, true
	}
	v, ok := e.Extracted[source]
	if !ok {
		return "", false
	}
	s, err := stringify(v)
	if err != nil {
		return "", false
	}
	return s, true
}

// stringify turns an extracted value into text as Promtail does: strings as
// they are, numbers and booleans printed, objects and arrays as JSON.
func stringify(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case json.Number:
		return x.String(), nil
	case []byte:
		return string(x), nil
	case fmt.Stringer:
		return x.String(), nil
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
}
