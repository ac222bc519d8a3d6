package units

import "testing"

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Bytes
		wantErr bool
	}{
		{"512MiB", 512 << 20, false},
		{"8GiB", 8 << 30, false},
		{"1GB", 1000 * 1000 * 1000, false},
		{"4096", 4096, false},
		{"1.5KiB", 1536, false},
		{"", 0, true},
		{"ten MB", 0, true},
		{"-1MB", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseBytes(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseBytes(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("ParseBytes(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestBytesStringRoundTrip(t *testing.T) {
	for _, b := range []Bytes{0, 1, 1023, 1 << 10, 3 << 20, 8 << 30} {
		got, err := ParseBytes(b.String())
		if err != nil || got != b {
			t.Fatalf("round trip of %d via %q = %d, %v", b, b.String(), got, err)
		}
	}
}
