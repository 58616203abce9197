package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// programs are the binaries the deployment files run, with the prefix of
// their environment variables.
var programs = map[string]string{"signal": "SIGNAL_", "sfu": "SFU_", "turnd": "TURND_"}

// flagsOf builds the three programs and reads each one's flags from -h.
func flagsOf(t *testing.T) map[string]map[string]bool {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "../cmd/signal", "../cmd/sfu", "../cmd/turnd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`)
	flags := map[string]map[string]bool{}
	for bin := range programs {
		var help bytes.Buffer
		cmd := exec.Command(filepath.Join(dir, bin), "-h")
		cmd.Stdout, cmd.Stderr = &help, &help
		_ = cmd.Run() // -h exits non-zero with the usage
		flags[bin] = map[string]bool{}
		for _, m := range line.FindAllStringSubmatch(help.String(), -1) {
			flags[bin][m[1]] = true
		}
		if !flags[bin]["log-level"] || !flags[bin]["config"] {
			t.Fatalf("%s -h lists no flags:\n%s", bin, help.String())
		}
	}
	return flags
}

// setting is one flag a deployment file passes to a program.
type setting struct{ where, bin, flag string }

// TestDeploymentFilesPassOnlyExistingFlags reads compose.yaml and every
// Kubernetes manifest, and checks each flag, environment variable and key
// of a secret configuration file they give a program against its flags.
func TestDeploymentFilesPassOnlyExistingFlags(t *testing.T) {
	files, _ := filepath.Glob("kubernetes/*.yaml")
	files = append(files, "compose.yaml")
	var settings []setting
	for _, file := range files {
		for _, doc := range documents(t, file) {
			settings = append(settings, settingsIn(t, file, doc)...)
		}
	}
	for _, bin := range []string{"signal", "sfu", "turnd"} {
		if !slices.ContainsFunc(settings, func(s setting) bool { return s.bin == bin && strings.HasPrefix(s.where, "compose") }) ||
			!slices.ContainsFunc(settings, func(s setting) bool { return s.bin == bin && strings.HasPrefix(s.where, "kubernetes") }) {
			t.Errorf("%s is not configured in both compose.yaml and kubernetes/", bin)
		}
	}
	flags := flagsOf(t)
	for _, s := range settings {
		if !flags[s.bin][s.flag] {
			t.Errorf("%s: %s has no flag -%s", s.where, s.bin, s.flag)
		}
	}
}

func documents(t *testing.T, file string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return docs
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		docs = append(docs, doc)
	}
}

// settingsIn finds the containers of a document (compose services, pod
// templates, Secrets holding a program's configuration file).
func settingsIn(t *testing.T, file string, doc map[string]any) []setting {
	var out []setting
	if services, ok := doc["services"].(map[string]any); ok {
		for name, v := range services {
			svc := v.(map[string]any)
			bin := program(svc["image"])
			if bin == "" {
				continue
			}
			out = append(out, argSettings(file+" "+name, bin, svc["command"])...)
			env, _ := svc["environment"].(map[string]any)
			for k := range env {
				out = append(out, envSetting(t, file+" "+name, bin, k))
			}
		}
	}
	if doc["kind"] == "Secret" {
		data, _ := doc["stringData"].(map[string]any)
		for name, v := range data {
			bin := strings.TrimSuffix(name, "-secrets.toml")
			if _, ok := programs[bin]; ok {
				for _, m := range regexp.MustCompile(`(?m)^([a-z0-9-]+)\s*=`).FindAllStringSubmatch(v.(string), -1) {
					out = append(out, setting{file + " " + name, bin, m[1]})
				}
			}
		}
	}
	spec, _ := dig(doc, "spec", "template", "spec").(map[string]any)
	containers, _ := spec["containers"].([]any)
	for _, c := range containers {
		c := c.(map[string]any)
		bin := program(c["image"])
		if bin == "" {
			continue
		}
		where := file + " " + c["name"].(string)
		out = append(out, argSettings(where, bin, c["args"])...)
		env, _ := c["env"].([]any)
		for _, e := range env {
			e := e.(map[string]any)
			if dig(e, "valueFrom", "fieldRef") != nil {
				continue // the pod's own fields, for $(NAME) in the arguments
			}
			out = append(out, envSetting(t, where, bin, e["name"].(string)))
		}
	}
	return out
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func program(image any) string {
	s, _ := image.(string)
	for bin := range programs {
		if strings.Contains(s, "openconsult/"+bin+":") {
			return bin
		}
	}
	return ""
}

func argSettings(where, bin string, args any) []setting {
	list, _ := args.([]any)
	var out []setting
	for _, a := range list {
		s, _ := a.(string)
		if !strings.HasPrefix(s, "-") {
			// Values are written -flag=value, so a bare word is a mistake.
			out = append(out, setting{where, bin, "(argument " + s + ")"})
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(s, "-"), "=")
		out = append(out, setting{where, bin, name})
	}
	return out
}

func envSetting(t *testing.T, where, bin, name string) setting {
	rest, ok := strings.CutPrefix(name, programs[bin])
	if !ok {
		t.Errorf("%s: %s does not read %s", where, bin, name)
	}
	return setting{where, bin, strings.ReplaceAll(strings.ToLower(rest), "_", "-")}
}

// TestDeploymentFilesRunSeveralSignalReplicas checks that the files run
// two or more signal replicas the way they must: on PostgreSQL and Redis,
// every replica behind the load balancer, each with checkpoints of its own.
func TestDeploymentFilesRunSeveralSignalReplicas(t *testing.T) {
	for _, doc := range documents(t, "kubernetes/signal.yaml") {
		if doc["kind"] != "Deployment" {
			continue
		}
		if r, _ := dig(doc, "spec", "replicas").(int); r < 2 {
			t.Errorf("signal Deployment has replicas %v, want 2 or more", dig(doc, "spec", "replicas"))
		}
		if s := dig(doc, "spec", "strategy", "type"); s != "RollingUpdate" {
			t.Errorf("signal Deployment strategy %v: replicas hand their consults over, so updates need not stop them all", s)
		}
	}
	compose := documents(t, "compose.yaml")[0]
	services := compose["services"].(map[string]any)
	var replicas []string
	checkpoints := map[string]bool{}
	for name, v := range services {
		svc := v.(map[string]any)
		if program(svc["image"]) != "signal" {
			continue
		}
		if svc["profiles"] != nil {
			t.Errorf("compose.yaml keeps signal replica %s under a profile", name)
		}
		replicas = append(replicas, name)
		for _, vol := range svc["volumes"].([]any) {
			if src, dst, _ := strings.Cut(vol.(string), ":"); strings.HasPrefix(dst, "/var/lib/openconsult-audit") {
				if checkpoints[src] {
					t.Errorf("compose.yaml: two replicas write their audit checkpoints to the volume %s", src)
				}
				checkpoints[src] = true
			}
		}
		if deps := fmt.Sprint(svc["depends_on"]); !strings.Contains(deps, "redis") || !strings.Contains(deps, "postgres") {
			t.Errorf("compose.yaml: %s does not wait for PostgreSQL and Redis: %s", name, deps)
		}
	}
	if len(replicas) < 2 {
		t.Errorf("compose.yaml starts signal replicas %v, want two or more", replicas)
	}
	if r, ok := services["redis"].(map[string]any); !ok || r["profiles"] != nil {
		t.Error("compose.yaml does not start Redis")
	}
	nginx, err := os.ReadFile("compose/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range replicas {
		if !strings.Contains(string(nginx), "server "+name+":8443;") {
			t.Errorf("compose/nginx.conf does not send requests to %s", name)
		}
	}
}
