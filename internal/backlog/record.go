package backlog

import (
	"encoding/binary"
	"errors"
)

// The forwarders' records: a big-endian uint32 count of the items (lines,
// spans) and the payload. A record of a tenant (logs.auth_enabled,
// traces.multitenancy_enabled) starts with tenantMark instead, then the
// count, the tenant ID's length in one byte and the ID. Records written
// before tenancy existed keep reading as tenant "".
const tenantMark = 0xFFFFFFFF

// maxTenantLen is Loki's longest tenant ID.
const maxTenantLen = 150

// EncodeRecord builds a record; tenant "" writes the tenant-less layout.
func EncodeRecord(tenant string, count int, payload []byte) []byte {
	if tenant == "" {
		rec := make([]byte, 4+len(payload))
		binary.BigEndian.PutUint32(rec, uint32(count))
		copy(rec[4:], payload)
		return rec
	}
	if len(tenant) > maxTenantLen {
		panic("backlog: tenant ID longer than 150 bytes") // validated at the API
	}
	rec := make([]byte, 9+len(tenant)+len(payload))
	binary.BigEndian.PutUint32(rec, tenantMark)
	binary.BigEndian.PutUint32(rec[4:], uint32(count))
	rec[8] = byte(len(tenant))
	copy(rec[9:], tenant)
	copy(rec[9+len(tenant):], payload)
	return rec
}

// ErrBadRecord is a record too short for its header.
var ErrBadRecord = errors.New("backlog: record shorter than its header")

// DecodeRecord splits a record built by EncodeRecord.
func DecodeRecord(rec []byte) (tenant string, count int, payload []byte, err error) {
	if len(rec) < 4 {
		return "", 0, nil, ErrBadRecord
	}
	if binary.BigEndian.Uint32(rec) != tenantMark {
		return "", int(binary.BigEndian.Uint32(rec)), rec[4:], nil
	}
	if len(rec) < 9 || len(rec) < 9+int(rec[8]) {
		return "", 0, nil, ErrBadRecord
	}
	n := int(rec[8])
	return string(rec[9 : 9+n]), int(binary.BigEndian.Uint32(rec[4:])), rec[9+n:], nil
}
