package apidoc

import "testing"

func TestAttachErrors(t *testing.T) {
	codes, err := AttachErrors("../..")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if seen[c.Code] {
			t.Errorf("%s listed twice", c.Code)
		}
		seen[c.Code] = true
		if c.HTTPStatus < 400 || c.HTTPStatus > 599 {
			t.Errorf("%s: HTTP %d is not an error status", c.Code, c.HTTPStatus)
		}
	}
	// Spot checks against the reference: one code of each status it uses.
	for code, status := range map[string]int{"MissingParameter": 400, "Forbidden.SubUser": 403, "InvalidEniId.NotFound": 404} {
		found := false
		for _, c := range codes {
			if c.Code == code {
				found = c.HTTPStatus == status
			}
		}
		if !found {
			t.Errorf("%s: want HTTP %d in the table", code, status)
		}
	}
}

func TestAttachErrorsRefusesAMissingFile(t *testing.T) {
	if _, err := AttachErrors(t.TempDir()); err == nil {
		t.Fatal("no error for a folder without the reference")
	}
}
