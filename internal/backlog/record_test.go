package backlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, tenant := range []string{"", "team-a", strings.Repeat("x", maxTenantLen)} {
		rec := EncodeRecord(tenant, 42, []byte("payload"))
		gotTenant, n, payload, err := DecodeRecord(rec)
		if err != nil || gotTenant != tenant || n != 42 || string(payload) != "payload" {
			t.Errorf("tenant %q: got %q %d %q %v", tenant, gotTenant, n, payload, err)
		}
	}
	// A record of the layout before tenancy reads as tenant "".
	old := binary.BigEndian.AppendUint32(nil, 7)
	old = append(old, "body"...)
	if tenant, n, payload, err := DecodeRecord(old); err != nil || tenant != "" || n != 7 || !bytes.Equal(payload, []byte("body")) {
		t.Errorf("pre-tenancy record: %q %d %q %v", tenant, n, payload, err)
	}
	for _, bad := range [][]byte{nil, {1, 2}, {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}, {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 5, 'a'}} {
		if _, _, _, err := DecodeRecord(bad); err == nil {
			t.Errorf("%v decoded without error", bad)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(EncodeRecord("t", 1, []byte("x")))
	f.Add(EncodeRecord("", 1, []byte("x")))
	f.Fuzz(func(t *testing.T, rec []byte) {
		tenant, n, payload, err := DecodeRecord(rec)
		if err != nil || tenant == "" || len(tenant) > maxTenantLen {
			return
		}
		if again := EncodeRecord(tenant, n, payload); !bytes.Equal(again, rec) {
			t.Fatalf("re-encoding %x gave %x", rec, again)
		}
	})
}

func TestModeCheck(t *testing.T) {
	for _, tc := range []struct {
		mode      Mode
		endpoints int
		want      string
	}{
		{"", 0, ""}, {ModeStore, 0, ""}, {ModeForwardOnly, 1, ""},
		{ModeForwardOnly, 0, "logs.mode: forward-only needs at least one logs.forward endpoint"},
		{"local", 1, `logs.mode: "local" is neither "store" nor "forward-only"`},
	} {
		err := tc.mode.Check("logs", tc.endpoints)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q with %d endpoints: %v, want %q", tc.mode, tc.endpoints, err, tc.want)
		}
	}
}

func TestValidateEndpointsNamesClashes(t *testing.T) {
	type ep struct{ name string }
	check := func(c *ep) (string, error) {
		if c.name == "" {
			return "", errors.New("no name")
		}
		return c.name, nil
	}
	err := ValidateEndpoints("logs.forward", []ep{{"a"}, {""}, {"a"}}, check)
	for _, want := range []string{"logs.forward[1]: no name", `logs.forward[2]: same name as logs.forward[0] ("a")`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if err := ValidateEndpoints("logs.forward", []ep{{"a"}, {"b"}}, check); err != nil {
		t.Error(err)
	}
}
