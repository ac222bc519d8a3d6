package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/prometheus/common/model"
)

// GeoIPConfig is the geoip stage: look an extracted IP address up in a
// MaxMind database and set geoip_* labels, as Promtail documents it.
type GeoIPConfig struct {
	DB     string `yaml:"db"`
	Source string `yaml:"source"`
	// DBType is city, asn or country.
	DBType string `yaml:"db_type"`
}

// geoRecord holds the fields of GeoIP2/GeoLite2 City, Country and ASN
// records the stage reads.
type geoRecord struct {
	City struct {
		Names map[string]string `maxminddb:"names"`
	} `maxminddb:"city"`
	Continent struct {
		Code  string            `maxminddb:"code"`
		Names map[string]string `maxminddb:"names"`
	} `maxminddb:"continent"`
	Country struct {
		ISOCode string            `maxminddb:"iso_code"`
		Names   map[string]string `maxminddb:"names"`
	} `maxminddb:"country"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
		TimeZone  string   `maxminddb:"time_zone"`
	} `maxminddb:"location"`
	Postal struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"postal"`
	Subdivisions []struct {
		ISOCode string            `maxminddb:"iso_code"`
		Names   map[string]string `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	ASN    uint   `maxminddb:"autonomous_system_number"`
	ASNOrg string `maxminddb:"autonomous_system_organization"`
}

// Every tailed file has its own pipeline; the databases (memory-mapped,
// read-only) are opened once per path and version of the file and shared.
var geoDBs = struct {
	sync.Mutex
	m map[string]*maxminddb.Reader
}{m: map[string]*maxminddb.Reader{}}

func openGeoDB(path string) (*maxminddb.Reader, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", path, fi.Size(), fi.ModTime().UnixNano())
	geoDBs.Lock()
	defer geoDBs.Unlock()
	if r := geoDBs.m[key]; r != nil {
		return r, nil
	}
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, err
	}
	geoDBs.m[key] = r
	return r, nil
}

type geoIPStage struct {
	d      *PipelineDeps
	c      GeoIPConfig
	db     *maxminddb.Reader
	dbType string
}

func newGeoIPStage(c *GeoIPConfig, d *PipelineDeps) (*geoIPStage, error) {
	if c.DB == "" {
		return nil, errors.New("geoip: db is required")
	}
	if c.Source == "" {
		return nil, errors.New("geoip: source is required")
	}
	switch c.DBType {
	case "city", "asn", "country":
	default:
		return nil, fmt.Errorf("geoip: db_type %q is not city, asn or country", c.DBType)
	}
	db, err := openGeoDB(c.DB)
	if err != nil {
		return nil, fmt.Errorf("geoip: open db: %w", err)
	}
	return &geoIPStage{d: d, c: *c, db: db, dbType: c.DBType}, nil
}

func (*geoIPStage) name() string { return "geoip" }

func (s *geoIPStage) apply(e *Entry) bool {
	v, ok := e.lookup(s.c.Source)
	if !ok {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(v))
	if err != nil {
		s.d.stageError("geoip", fmt.Errorf("%q is not an IP address", v))
		return true
	}
	res := s.db.Lookup(ip)
	if !res.Found() {
		return true
	}
	var r geoRecord
	if err := res.Decode(&r); err != nil {
		s.d.stageError("geoip", err)
		return true
	}
	set := func(name, v string) {
		if v != "" {
			e.setLabel(model.LabelName(name), model.LabelValue(v))
		}
	}
	switch s.dbType {
	case "asn":
		if r.ASN != 0 {
			set("geoip_autonomous_system_number", strconv.FormatUint(uint64(r.ASN), 10))
		}
		set("geoip_autonomous_system_organization", r.ASNOrg)
	case "city":
		set("geoip_city_name", r.City.Names["en"])
		if r.Location.Latitude != nil && r.Location.Longitude != nil {
			set("geoip_location_latitude", strconv.FormatFloat(*r.Location.Latitude, 'f', -1, 64))
			set("geoip_location_longitude", strconv.FormatFloat(*r.Location.Longitude, 'f', -1, 64))
		}
		set("geoip_postal_code", r.Postal.Code)
		set("geoip_timezone", r.Location.TimeZone)
		if len(r.Subdivisions) > 0 {
			set("geoip_subdivision_name", r.Subdivisions[0].Names["en"])
			set("geoip_subdivision_code", r.Subdivisions[0].ISOCode)
		}
		fallthrough
	case "country":
		set("geoip_country_name", r.Country.Names["en"])
		set("geoip_continent_name", r.Continent.Names["en"])
		set("geoip_continent_code", r.Continent.Code)
	}
	return true
}
