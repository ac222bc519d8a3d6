package agent

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/prometheus/common/model"
)

// writeMMDB builds a tiny MaxMind database in the test: no download.
func writeMMDB(t *testing.T, path, dbType string, nets map[string]mmdbtype.Map) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range nets {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(en)}}
}

// Written from Promtail's geoip stage docs (the fields for City and ASN
// databases; country gives the country and continent fields).
func TestStageGeoIP(t *testing.T) {
	dir := t.TempDir()
	city := mmdbtype.Map{
		"city":         names("Kansas City"),
		"continent":    mmdbtype.Map{"code": mmdbtype.String("NA"), "names": mmdbtype.Map{"en": mmdbtype.String("North America")}},
		"country":      mmdbtype.Map{"iso_code": mmdbtype.String("US"), "names": mmdbtype.Map{"en": mmdbtype.String("United States")}},
		"location":     mmdbtype.Map{"latitude": mmdbtype.Float64(39.1027), "longitude": mmdbtype.Float64(-94.5778), "time_zone": mmdbtype.String("America/Chicago")},
		"postal":       mmdbtype.Map{"code": mmdbtype.String("64184")},
		"subdivisions": mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String("MO"), "names": mmdbtype.Map{"en": mmdbtype.String("Missouri")}}},
	}
	writeMMDB(t, filepath.Join(dir, "city.mmdb"), "GeoIP2-City", map[string]mmdbtype.Map{"34.120.0.0/16": city, "2001:db8::/32": city})
	writeMMDB(t, filepath.Join(dir, "asn.mmdb"), "GeoLite2-ASN", map[string]mmdbtype.Map{
		"34.120.0.0/16": {"autonomous_system_number": mmdbtype.Uint32(396982), "autonomous_system_organization": mmdbtype.String("GOOGLE-CLOUD-PLATFORM")},
	})
	writeMMDB(t, filepath.Join(dir, "country.mmdb"), "GeoLite2-Country", map[string]mmdbtype.Map{
		"34.120.0.0/16": {"continent": city["continent"], "country": city["country"]},
	})
	pipe := func(dbType string) string {
		return `
- regex: {expression: '^(?P<ip>\S+) .*'}
- geoip: {db: "` + filepath.Join(dir, dbType+".mmdb") + `", source: ip, db_type: ` + dbType + `}
`
	}
	line := `34.120.177.193 - "POST /loki/api/push/ HTTP/1.1" 200 932`
	for _, tc := range []struct {
		dbType, line string
		want         model.LabelSet
	}{
		{"city", line, model.LabelSet{
			"geoip_city_name": "Kansas City", "geoip_country_name": "United States", "geoip_continent_name": "North America",
			"geoip_continent_code": "NA", "geoip_location_latitude": "39.1027", "geoip_location_longitude": "-94.5778",
			"geoip_postal_code": "64184", "geoip_timezone": "America/Chicago", "geoip_subdivision_name": "Missouri",
			"geoip_subdivision_code": "MO",
		}},
		{"city", "2001:db8::1 ipv6 line", model.LabelSet{"geoip_city_name": "Kansas City"}},
		{"asn", line, model.LabelSet{"geoip_autonomous_system_number": "396982", "geoip_autonomous_system_organization": "GOOGLE-CLOUD-PLATFORM"}},
		{"country", line, model.LabelSet{"geoip_country_name": "United States", "geoip_continent_code": "NA", "geoip_continent_name": "North America"}},
	} {
		out := runStages(t, pipe(tc.dbType), model.LabelSet{"app": "a"}, tc.line)
		for k, v := range tc.want {
			eq(t, tc.dbType+" "+string(k), out[0].Labels[k], v)
		}
		if tc.dbType == "country" {
			if _, ok := out[0].Labels["geoip_city_name"]; ok {
				t.Error("country db set a city")
			}
		}
	}
	// Not in the database: no labels; not an IP: counted, line kept.
	out := runStages(t, pipe("city"), nil, "10.1.2.3 private")
	for k := range out[0].Labels {
		if strings.HasPrefix(string(k), "geoip_") {
			t.Errorf("unknown address got %s", k)
		}
	}
	out, reg := runStagesReg(t, pipe("city"), nil, "not-an-ip x")
	eq(t, "line kept", out[0].Line, "not-an-ip x")
	eq(t, "stage error", counterValue(reg, "nxwatcher_agent_stage_errors_total", "geoip"), 1)

	for _, bad := range []string{
		"- geoip: {source: ip, db_type: city}",
		"- geoip: {db: /nope.mmdb, source: ip, db_type: city}",
		"- geoip: {db: " + filepath.Join(dir, "city.mmdb") + ", source: ip, db_type: isp}",
	} {
		if _, err := NewPipeline(mustStages(t, bad), nil); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
