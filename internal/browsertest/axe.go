package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// axePath is where `npm ci --prefix tools/axe` puts axe-core, relative to
// the module's root.
const axePath = "tools/axe/node_modules/axe-core/axe.min.js"

// Axe holds axe-core's script, read once per test.
type Axe struct {
	script string
}

// LoadAxe reads axe-core from tools/axe. Without it, the test is skipped on
// a developer's machine and fails under CI, where .ci/run installs it.
func LoadAxe(t testing.TB) *Axe {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root not found above the test's directory")
		}
		dir = parent
	}
	b, err := os.ReadFile(filepath.Join(dir, axePath))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("axe-core missing (%v); run `npm ci --prefix tools/axe`", err)
		}
		t.Skipf("axe-core missing; run `npm ci --prefix tools/axe` to check accessibility (%v)", err)
	}
	return &Axe{script: string(b)}
}

// violation is the part of axe-core's result a failure message needs.
type violation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// Check runs axe-core on the page shown in ctx in the light and the dark
// colour scheme and reports every violation, of any impact, as a test
// error naming the page. The colour scheme is left at light.
func (a *Axe) Check(t testing.TB, ctx context.Context, page string) {
	t.Helper()
	for _, scheme := range []string{"light", "dark"} {
		a.checkScheme(t, ctx, page, scheme)
	}
	a.setScheme(t, ctx, "light")
}

func (a *Axe) setScheme(t testing.TB, ctx context.Context, scheme string) {
	t.Helper()
	params := emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, params)
		return err
	}))
	if err != nil {
		t.Fatalf("emulate %s colour scheme: %v", scheme, err)
	}
}

func (a *Axe) checkScheme(t testing.TB, ctx context.Context, page, scheme string) {
	t.Helper()
	a.setScheme(t, ctx, scheme)
	js := `(async () => {
  if (!window.axe) { ` + a.script + `
  }
  const r = await window.axe.run(document, { resultTypes: ["violations"] });
  return JSON.stringify(r.violations);
})()`
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe-core on %s (%s): %v", page, scheme, err)
	}
	var vs []violation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("axe-core result on %s: %v", page, err)
	}
	for _, v := range vs {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target)+": "+strings.ReplaceAll(n.Summary, "\n", " "))
		}
		t.Errorf("accessibility, %s (%s colour scheme): %s [%s] %s\n  %s", page, scheme, v.ID, v.Impact, v.Help, strings.Join(where, "\n  "))
	}
}
