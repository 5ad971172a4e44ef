package main

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/enipool/enipool"

// modulePackages returns the packages of the module (by path relative to its root, "." for
// the root) with the module packages each imports, tests left out: what ships.
func modulePackages(t *testing.T) map[string][]string {
	t.Helper()
	pkgs := map[string][]string{}
	err := filepath.WalkDir(".", func(dir string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); dir != "." && (name == "testdata" || name == "dist" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		p, err := build.Default.ImportDir(dir, 0)
		if err != nil {
			if _, none := err.(*build.NoGoError); none {
				return nil
			}
			return err
		}
		rel := filepath.ToSlash(dir)
		pkgs[rel] = []string{}
		for _, imp := range p.Imports {
			if local, ok := strings.CutPrefix(imp, module+"/"); ok {
				pkgs[rel] = append(pkgs[rel], local)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// deps returns every module package pkg depends on, directly or not, sorted.
func deps(pkgs map[string][]string, pkg string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, d := range pkgs[p] {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(pkg)
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// TestLayering holds the packages to their layers: the cloud interfaces and the clock are
// leaves, the engine stands on them alone, the handler on the engine (and the event and
// dead-letter formats), main on the handler and the SDK adapters, and the adapters on the
// cloud interfaces alone. Nothing the function is built from imports the local cloud.
func TestLayering(t *testing.T) {
	pkgs := modulePackages(t)
	allowed := map[string][]string{
		"cloud":      {},
		"clock":      {},
		"event":      {"deadletter"},
		"deadletter": {},
		"engine":     {"cloud", "clock"},
		"handler":    {"cloud", "clock", "engine", "event", "deadletter"},
		"alicloud":   {"cloud", "internal/mnsdial"},
		// mnsdial is the MNS dial transport alicloud and the local cloud's tests share: it
		// imports nothing of enipool.
		"internal/mnsdial": {},
		".":                {"cloud", "clock", "engine", "handler", "event", "deadletter", "alicloud", "config", "internal/mnsdial"},
	}
	for pkg, ok := range allowed {
		if _, found := pkgs[pkg]; !found {
			t.Errorf("package %s is missing", pkg)
			continue
		}
		for _, d := range deps(pkgs, pkg) {
			if !slices.Contains(ok, d) {
				t.Errorf("%s depends on %s; its layer allows only %v", pkg, d, ok)
			}
		}
	}
	for _, d := range deps(pkgs, ".") {
		if d == "localcloud" || strings.HasPrefix(d, "localcloud/") {
			t.Errorf("the function depends on the local cloud (%s)", d)
		}
	}
	// Only the test beds import the local cloud outside tests: its own commands, the test
	// bed and the demo command on it, the benchmark and the simulation.
	for pkg, imps := range pkgs {
		if strings.HasPrefix(pkg, "localcloud") || strings.HasPrefix(pkg, "bench") || strings.HasPrefix(pkg, "internal/testbed") ||
			pkg == "internal/cmd/demo" || pkg == "sim" {
			continue
		}
		for _, imp := range imps {
			if imp == "localcloud" || strings.HasPrefix(imp, "localcloud/") {
				t.Errorf("%s imports %s outside its tests", pkg, imp)
			}
		}
	}
}

// wallClock are the calls that read or wait on the system clock. The function reads time only
// through its injected clock.Clock, so that tests and simulations decide what time it is.
var wallClock = map[string][]string{
	"time":    {"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "NewTimer", "NewTicker", "Tick"},
	"context": {"WithTimeout", "WithTimeoutCause"},
}

// TestOneClock fails when a package the function is built from calls the system clock
// directly. Only main.go, the SDK adapters (alicloud) and the real clock (clock.Real) may.
func TestOneClock(t *testing.T) {
	pkgs := modulePackages(t)
	for _, pkg := range append(deps(pkgs, "."), ".") {
		if pkg == "alicloud" || pkg == "clock" {
			continue
		}
		p, err := build.Default.ImportDir(pkg, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range p.GoFiles {
			file := path.Join(pkg, name)
			if file == "main.go" {
				continue
			}
			for _, use := range clockCalls(t, file) {
				t.Errorf("%s: calls %s directly; use the injected clock.Clock", use.pos, use.call)
			}
		}
	}
}

type clockCall struct{ pos, call string }

// clockCalls finds the wallClock calls in file, whatever name it imports their package as.
func clockCalls(t *testing.T, file string) []clockCall {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{} // local name -> import path
	for _, imp := range f.Imports {
		p := strings.Trim(imp.Path.Value, `"`)
		if _, watched := wallClock[p]; !watched {
			continue
		}
		name := path.Base(p)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		names[name] = p
	}
	var out []clockCall
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok || id.Obj != nil { // a local variable, not the package
			return true
		}
		if p, ok := names[id.Name]; ok && slices.Contains(wallClock[p], sel.Sel.Name) {
			out = append(out, clockCall{fset.Position(sel.Pos()).String(), p + "." + sel.Sel.Name})
		}
		return true
	})
	return out
}

// TestOneClockFinds proves the scan sees a call however its package is named.
func TestOneClockFinds(t *testing.T) {
	dir := t.TempDir()
	src := "package x\n\nimport (\n\t\"context\"\n\tt \"time\"\n)\n\nfunc f(ctx context.Context) {\n\t_ = t.Now()\n\t_, _ = context.WithTimeout(ctx, t.Second)\n\t_ = t.Second\n}\n"
	file := filepath.Join(dir, "x.go")
	if err := writeFile(file, src); err != nil {
		t.Fatal(err)
	}
	got := clockCalls(t, file)
	if len(got) != 2 || got[0].call != "time.Now" || got[1].call != "context.WithTimeout" {
		t.Fatalf("found %v, want time.Now and context.WithTimeout", got)
	}
}

func writeFile(name, text string) error { return os.WriteFile(name, []byte(text), 0o644) }
