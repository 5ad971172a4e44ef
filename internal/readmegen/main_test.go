package main

import (
	"bytes"
	"os"
	"testing"
)

// The README's configuration and error tables are what the code says.
func TestREADMEIsUpToDate(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Render(readme)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, readme) {
		t.Fatal("README.md's generated tables are out of date: run make docs")
	}
}
