package deadletter

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// TestEscapedLen pins escapedLen to what encoding/json writes, so that
// Marshal finds the truncation point in one pass.
func TestEscapedLen(t *testing.T) {
	for r := rune(0); r < 0x3000; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(string(r)); err != nil {
			t.Fatal(err)
		}
		want := buf.Len() - len(`""`+"\n")
		if got := escapedLen(r, utf8.RuneLen(r)); got != want {
			t.Errorf("escapedLen(%U) = %d, encoding/json writes %d bytes", r, got, want)
		}
	}
}
